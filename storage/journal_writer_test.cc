#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "storage/store.h"
#include "storage/test_util.h"

namespace weir {
namespace {

using storage_test::CommitAndWait;
using storage_test::QueryText;
using storage_test::TempDir;

StoreOptions Options(const TempDir& dir) {
  StoreOptions o;
  o.path = dir.file("weir.db");
  o.max_bytes = 0;
  o.gateway = "gw-01";
  return o;
}

TEST(JournalWriter, AppendsSurviveReopenAndTheTailFollowsTheCheckpoint) {
  TempDir dir;
  auto o = Options(dir);
  std::vector<Message> sent;
  {
    auto store = Store::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto journal = (*store)->NewJournalWriter();
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    for (int i = 0; i < 10; ++i) {
      Message m{1000 + i, "sensors/d" + std::to_string(i) + "/telemetry",
                i == 3 ? std::string() : std::string("b\0in", 4) + std::to_string(i)};
      ASSERT_TRUE((*journal)->Append(&m).ok());
      EXPECT_EQ(m.journal_seq, i + 1);
      sent.push_back(m);
    }
  }
  auto store = Store::Open(o);
  ASSERT_TRUE(store.ok());
  auto reader = StoreReader::Open(o.path, false);
  ASSERT_TRUE(reader.ok());
  std::vector<Message> got;
  auto collect = [&](const Message& m) {
    got.push_back(m);
    return Status::Ok();
  };
  ASSERT_TRUE((*reader)->ForEachJournal((*reader)->CheckpointSeq().value(), collect).ok());
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].journal_seq, sent[i].journal_seq);
    EXPECT_EQ(got[i].arrival_ms, sent[i].arrival_ms);
    EXPECT_EQ(got[i].topic, sent[i].topic);
    EXPECT_EQ(got[i].payload, sent[i].payload);
  }
  // A checkpoint at 6: the tail is 7..10, and 1..6 are gone from the file.
  CommitBatch b;
  b.checkpoint_seq = 6;
  ASSERT_TRUE(CommitAndWait(store->get(), std::move(b)).status.ok());
  EXPECT_EQ((*store)->stats().journal_seq, 10);
  EXPECT_EQ((*store)->stats().journal_rows, 4);
  got.clear();
  ASSERT_TRUE((*reader)->ForEachJournal((*reader)->CheckpointSeq().value(), collect).ok());
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].journal_seq, 7);
  EXPECT_EQ(QueryText(o.path, "SELECT count(*) FROM journal"), "4");

  // Everything covered, then a restart: seqs continue, never reused.
  CommitBatch all;
  all.checkpoint_seq = 10;
  ASSERT_TRUE(CommitAndWait(store->get(), std::move(all)).status.ok());
  (*store)->Close();
  store = Store::Open(o);
  ASSERT_TRUE(store.ok());
  auto journal = (*store)->NewJournalWriter();
  ASSERT_TRUE(journal.ok());
  Message m{2000, "t", "after"};
  ASSERT_TRUE((*journal)->Append(&m).ok());
  EXPECT_EQ(m.journal_seq, 11);
  got.clear();
  ASSERT_TRUE((*reader)->ForEachJournal((*reader)->CheckpointSeq().value(), collect).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "after");
}

TEST(JournalWriter, ConcurrentCallersAreAllCommittedOnce) {
  TempDir dir;
  auto o = Options(dir);
  auto store = Store::Open(o);
  ASSERT_TRUE(store.ok());
  auto journal = (*store)->NewJournalWriter();
  ASSERT_TRUE(journal.ok());
  constexpr int kThreads = 4, kPerThread = 250;
  std::mutex mu;
  std::vector<int64_t> seqs;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int64_t last = 0;
      for (int i = 0; i < kPerThread; ++i) {
        Message m{i, "t" + std::to_string(t), std::to_string(t * 100000 + i)};
        Status st = (*journal)->Append(&m);
        EXPECT_TRUE(st.ok()) << st.ToString();
        EXPECT_GT(m.journal_seq, last);  // one caller's rows stay in order
        last = m.journal_seq;
        std::lock_guard<std::mutex> l(mu);
        seqs.push_back(m.journal_seq);
      }
    });
  }
  // Group commits on the worker connection interleave with the appends.
  for (int i = 0; i < 20; ++i) {
    CommitBatch b;
    b.counters.push_back({"x", i});
    EXPECT_TRUE(CommitAndWait(store->get(), std::move(b)).status.ok());
  }
  for (auto& th : threads) th.join();
  std::sort(seqs.begin(), seqs.end());
  ASSERT_EQ(seqs.size(), size_t{kThreads * kPerThread});
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], static_cast<int64_t>(i + 1));
  EXPECT_EQ(QueryText(o.path, "SELECT count(DISTINCT payload) FROM journal"),
            std::to_string(kThreads * kPerThread));
}

TEST(JournalWriter, FullDatabaseIsResourceExhausted) {
  TempDir dir;
  auto o = Options(dir);
  o.max_bytes = 256 * 1024;
  auto store = Store::Open(o);
  ASSERT_TRUE(store.ok());
  auto journal = (*store)->NewJournalWriter();
  ASSERT_TRUE(journal.ok());
  Status st;
  int appended = 0;
  for (; appended < 1000 && st.ok(); ++appended) {
    Message m{appended, "t", std::string(4000, 'p')};
    st = (*journal)->Append(&m);
    if (!st.ok()) {
      EXPECT_EQ(m.journal_seq, 0);
    }
  }
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_LT(appended, 1000);
  // Once a checkpoint trims the journal, appends work again.
  CommitBatch b;
  b.checkpoint_seq = appended;
  ASSERT_TRUE(CommitAndWait(store->get(), std::move(b)).status.ok());
  Message m{1, "t", std::string(4000, 'p')};
  EXPECT_TRUE((*journal)->Append(&m).ok());
}

}  // namespace
}  // namespace weir
