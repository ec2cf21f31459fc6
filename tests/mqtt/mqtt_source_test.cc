// MqttSource against a real Mosquitto: delivery, the handler running before
// the PUBACK (a killed subscriber gets the message again), and backpressure
// through a tiny BoundedQueue losing nothing.
#include "ingest/mqtt_source.h"

#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "ingest/bounded_queue.h"
#include "tests/mqtt/test_broker.h"

namespace weir {
namespace {

using testing::TestBroker;
using testing::WaitFor;

// Publishes QoS 1 messages and waits for every PUBACK.
void PublishAll(const std::string& uri,
                const std::vector<std::pair<std::string, std::string>>& msgs) {
  // Paho C refuses more than maxBufferedMessages (default 100) queued
  // publishes; this publisher queues them all at once.
  mqtt::create_options create(MQTTVERSION_3_1_1, 100000);
  create.set_send_while_disconnected(false);
  mqtt::async_client pub(uri, "test-publisher-" + std::to_string(getpid()), create, nullptr);
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  opts.set_max_inflight(1000);
  pub.connect(opts)->wait();
  std::vector<mqtt::delivery_token_ptr> toks;
  for (const auto& [topic, payload] : msgs) toks.push_back(pub.publish(topic, payload, 1, false));
  for (auto& t : toks) t->wait();
  pub.disconnect()->wait();
}

MqttSourceOptions Options(const TestBroker& broker, const std::string& client_id) {
  MqttSourceOptions o;
  o.broker = broker.uri();
  o.client_id = client_id;
  o.filters = {"sensors/+/telemetry"};
  o.clock_ms = [] { return int64_t{1700000000123}; };
  return o;
}

TEST(MqttSourceTest, DeliversMessagesWithTopicPayloadAndInjectedArrivalTime) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::mutex mu;
  std::vector<Message> got;
  MqttSource source(Options(broker, "src-deliver"), [&](Message&& m) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(std::move(m));
  });
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(source.WaitConnected(10000));
  EXPECT_EQ(source.stats().mqtt_version, 5);  // Mosquitto 2 speaks MQTT 5

  PublishAll(broker.uri(), {{"sensors/d1/telemetry", "{\"ts\":1}"},
                            {"other/d1/telemetry", "not subscribed"},
                            {"sensors/d2/telemetry", "{\"ts\":2}"}});
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return got.size() >= 2;
      },
      10000));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].topic, "sensors/d1/telemetry");
  EXPECT_EQ(got[0].payload, "{\"ts\":1}");
  EXPECT_EQ(got[0].arrival_ms, 1700000000123);
  EXPECT_EQ(got[0].journal_seq, 0);
  EXPECT_EQ(got[1].topic, "sensors/d2/telemetry");
}

// A config reload changes topic filters in the running session: no new
// connection, an added filter delivers, a removed one stops delivering.
TEST(MqttSourceTest, SubscribeAndUnsubscribeInTheRunningSession) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::mutex mu;
  std::vector<std::string> got;
  MqttSource source(Options(broker, "src-filters"), [&](Message&& m) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(m.topic + " " + m.payload);
  });
  auto received = [&](const std::string& what) {
    return WaitFor(
        [&] {
          std::lock_guard<std::mutex> l(mu);
          return std::find(got.begin(), got.end(), what) != got.end();
        },
        10000);
  };
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(source.WaitConnected(10000));

  source.Subscribe({"extra/+/data"});
  ASSERT_TRUE(WaitFor([&] { return source.stats().filter_changes == 1; }, 10000));
  PublishAll(broker.uri(), {{"extra/x1/data", "1"}});
  ASSERT_TRUE(received("extra/x1/data 1"));

  source.Unsubscribe({"extra/+/data"});
  ASSERT_TRUE(WaitFor([&] { return source.stats().filter_changes == 2; }, 10000));
  // From one publisher, in order: had "2" been delivered it would come first.
  PublishAll(broker.uri(), {{"extra/x1/data", "2"}, {"sensors/d1/telemetry", "3"}});
  ASSERT_TRUE(received("sensors/d1/telemetry 3"));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(got, (std::vector<std::string>{"extra/x1/data 1", "sensors/d1/telemetry 3"}));
  EXPECT_EQ(source.stats().connects, 1u);
}

// Removed while stopped: the filter leaves the persistent session at the
// next connect, so nothing published on it afterwards arrives.
TEST(MqttSourceTest, UnsubscribeWhileStoppedAppliesAtTheNextConnect) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::mutex mu;
  std::vector<std::string> got;
  MqttSourceOptions o = Options(broker, "src-filters-later");
  o.filters.push_back("extra/+/data");
  MqttSource source(o, [&](Message&& m) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(m.topic + " " + m.payload);
  });
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(source.WaitConnected(10000));
  source.Stop();
  source.Unsubscribe({"extra/+/data"});
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(source.WaitConnected(10000));
  ASSERT_TRUE(WaitFor([&] { return source.stats().filter_changes == 1; }, 10000));
  PublishAll(broker.uri(), {{"extra/x1/data", "1"}, {"sensors/d1/telemetry", "2"}});
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return !got.empty();
      },
      10000));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(got, (std::vector<std::string>{"sensors/d1/telemetry 2"}));
}

// The subscriber runs in a child process whose handler blocks on the second
// message; the child is killed there. If the PUBACK had gone out before the
// handler ran (Paho C < 1.3.10, or a consumer queue), the broker would not
// deliver that message again to the persistent session.
TEST(MqttSourceTest, HandlerRunsBeforePubackSoAKilledSubscriberGetsTheMessageAgain) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipefd[0]);
    MqttSourceOptions o = Options(broker, "src-killed");
    MqttSource source(o, [&](Message&& m) {
      std::string line = m.payload + "\n";
      if (write(pipefd[1], line.data(), line.size()) < 0) _exit(3);
      if (m.payload == "second") pause();  // killed in here, before the PUBACK
    });
    if (!source.Start().ok() || !source.WaitConnected(10000)) _exit(2);
    if (write(pipefd[1], "ready\n", 6) < 0) _exit(3);
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  std::string seen;
  auto read_until = [&](const std::string& word) {
    char buf[256];
    while (seen.find(word + "\n") == std::string::npos) {
      ssize_t n = read(pipefd[0], buf, sizeof buf);
      if (n <= 0) return false;
      seen.append(buf, static_cast<size_t>(n));
    }
    return true;
  };
  ASSERT_TRUE(read_until("ready"));
  PublishAll(broker.uri(), {{"sensors/d1/telemetry", "first"}, {"sensors/d1/telemetry", "second"}});
  ASSERT_TRUE(read_until("second"));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(pipefd[0]);

  std::mutex mu;
  std::vector<std::string> again;
  MqttSource source(Options(broker, "src-killed"), [&](Message&& m) {
    std::lock_guard<std::mutex> lock(mu);
    again.push_back(m.payload);
  });
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return !again.empty() && again.back() == "second";
      },
      10000));
}

// A queue of two messages and a slow consumer: the Paho callback waits, the
// broker holds the rest, and every message arrives exactly once, in order.
TEST(MqttSourceTest, BackpressureThroughATinyQueueLosesNothing) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::atomic<int> wakes{0};
  BoundedQueue<Message> queue(2, [&] { ++wakes; });
  MqttSource source(Options(broker, "src-backpressure"),
                    [&](Message&& m) { queue.Push(std::move(m)); });
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(source.WaitConnected(10000));

  constexpr int kCount = 400;
  std::vector<std::pair<std::string, std::string>> msgs;
  for (int i = 0; i < kCount; ++i) msgs.emplace_back("sensors/d1/telemetry", std::to_string(i));
  std::thread publisher([&] { PublishAll(broker.uri(), msgs); });

  std::vector<int> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < kCount && std::chrono::steady_clock::now() < deadline) {
    Message m;
    if (queue.TryPop(&m)) {
      got.push_back(std::stoi(m.payload));
      // A slow loop: the queue stays full most of the time.
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  publisher.join();
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], i) << "at " << i;
  EXPECT_GT(queue.full_waits(), 0u);  // the callback really had to wait
  EXPECT_EQ(queue.high_water(), 2u);
  // This consumer polls and never arms the wake-up hook again (ArmWake), so
  // only the first push, which found the new queue's consumer idle, ran it.
  EXPECT_EQ(wakes.load(), 1);
  source.Stop();
  EXPECT_EQ(source.stats().messages, static_cast<uint64_t>(kCount));
}

// A broker that restarts with no memory (persistence off) has forgotten the
// subscription: the source reconnects on its own and subscribes again.
TEST(MqttSourceTest, ReconnectsAndResubscribesAfterABrokerRestart) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::mutex mu;
  std::vector<std::string> got;
  MqttSource source(Options(broker, "src-restart"), [&](Message&& m) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(m.payload);
  });
  ASSERT_TRUE(source.Start().ok());
  ASSERT_TRUE(source.WaitConnected(10000));
  broker.Stop();
  ASSERT_TRUE(WaitFor([&] { return source.stats().state != SourceState::kConnected; }, 10000));
  ASSERT_TRUE(broker.Start());
  ASSERT_TRUE(WaitFor([&] { return source.stats().connects == 2; }, 20000));
  EXPECT_FALSE(source.stats().session_present);  // the broker forgot it
  PublishAll(broker.uri(), {{"sensors/d9/telemetry", "after restart"}});
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return got.size() == 1;
      },
      10000));
  EXPECT_EQ(got[0], "after restart");
  EXPECT_EQ(source.stats().connection_losses, 1u);
}

}  // namespace
}  // namespace weir
