#include "ingest/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace weir {
namespace {

TEST(BoundedQueueTest, KeepsOrderAndWakesTheIdleConsumerOnce) {
  std::atomic<int> wakes{0};
  BoundedQueue<int> q(4, [&] { ++wakes; });
  // A new queue's consumer is idle: the first push wakes it, and it stays
  // awake (no further hook calls) until it arms the hook again.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.Push(i));
  EXPECT_EQ(wakes.load(), 1);
  std::deque<int> out;
  EXPECT_EQ(q.PopSome(&out, 10), 3u);
  EXPECT_EQ(out, (std::deque<int>{0, 1, 2}));
  EXPECT_EQ(q.size(), 0u);
  ASSERT_TRUE(q.Push(3));
  EXPECT_EQ(wakes.load(), 1);
}

TEST(BoundedQueueTest, ArmWakeRefusesWhileItemsWaitAndOtherwiseWakesOnTheNextPush) {
  std::atomic<int> wakes{0};
  BoundedQueue<int> q(4, [&] { ++wakes; });
  ASSERT_TRUE(q.Push(1));  // wakes the (initially idle) consumer
  ASSERT_EQ(wakes.load(), 1);
  // Work is waiting: the consumer must not go idle, and no push wakes it.
  EXPECT_FALSE(q.ArmWake());
  ASSERT_TRUE(q.Push(2));
  EXPECT_EQ(wakes.load(), 1);
  std::deque<int> out;
  ASSERT_EQ(q.PopSome(&out, 10), 2u);
  // Empty now: arming succeeds, and exactly the next push wakes.
  EXPECT_TRUE(q.ArmWake());
  ASSERT_TRUE(q.Push(3));
  ASSERT_TRUE(q.Push(4));
  EXPECT_EQ(wakes.load(), 2);
}

TEST(BoundedQueueTest, FullQueueBlocksThePusherUntilThereIsRoom) {
  BoundedQueue<int> q(2);
  ASSERT_TRUE(q.Push(1));
  ASSERT_TRUE(q.Push(2));
  std::atomic<bool> third_pushed{false};
  std::thread producer([&] {
    q.Push(3);
    third_pushed = true;
  });
  // The producer must be waiting: wait (with a deadline) until it counted a
  // full wait, then check it has not pushed.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (q.full_waits() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(q.full_waits(), 1u);
  EXPECT_FALSE(third_pushed.load());
  int v = 0;
  ASSERT_TRUE(q.TryPop(&v));
  EXPECT_EQ(v, 1);
  producer.join();
  EXPECT_TRUE(third_pushed.load());
  std::deque<int> out;
  q.PopSome(&out, 10);
  EXPECT_EQ(out, (std::deque<int>{2, 3}));
  EXPECT_EQ(q.high_water(), 2u);
}

TEST(BoundedQueueTest, CloseReleasesAWaitingPusherWhichGetsFalse) {
  BoundedQueue<int> q(1);
  ASSERT_TRUE(q.Push(1));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = q.Push(2) ? 1 : 0; });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (q.full_waits() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  q.Close();
  producer.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_FALSE(q.Push(3));
  int v = 0;
  ASSERT_TRUE(q.TryPop(&v));  // items queued before Close stay poppable
  EXPECT_EQ(v, 1);
}

}  // namespace
}  // namespace weir
