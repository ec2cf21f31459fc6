#include "storage/fault_store.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "storage/test_util.h"

namespace weir {
namespace {

using storage_test::CommitAndWait;
using storage_test::DeleteAndWait;
using storage_test::MakeResult;
using storage_test::TempDir;

std::unique_ptr<FaultInjectingStore> OpenFaulty(const TempDir& dir) {
  StoreOptions o;
  o.path = dir.file("weir.db");
  o.max_bytes = 0;
  auto inner = Store::Open(o);
  EXPECT_TRUE(inner.ok()) << inner.status().ToString();
  return std::make_unique<FaultInjectingStore>(std::move(*inner));
}

CommitBatch OneResult(int i) {
  CommitBatch b;
  b.outbox.push_back(MakeResult("gw/p/d/" + std::to_string(i), 0, i, i + 1));
  return b;
}

TEST(FaultInjectingStore, FailsTheNthCommitInOrderOnTheWorker) {
  TempDir dir;
  auto store = OpenFaulty(dir);
  store->FailNthCommit(2, FaultInjectingStore::DiskFull(store->path()));
  std::mutex mu;
  std::vector<std::pair<int, CommitResult>> results;
  std::thread::id caller = std::this_thread::get_id();
  bool on_worker = true;
  for (int i = 1; i <= 3; ++i) {
    store->Commit(OneResult(i), [&, i](CommitResult&& r) {
      std::lock_guard<std::mutex> l(mu);
      if (std::this_thread::get_id() == caller) on_worker = false;
      results.emplace_back(i, std::move(r));
    });
  }
  ASSERT_TRUE(store->Flush().ok());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(on_worker);
  EXPECT_EQ(results[0].first, 1);
  EXPECT_EQ(results[1].first, 2);
  EXPECT_EQ(results[2].first, 3);
  EXPECT_TRUE(results[0].second.status.ok());
  const Status& failed = results[1].second.status;
  EXPECT_EQ(failed.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(failed.message().find("full"), std::string::npos) << failed.ToString();
  EXPECT_TRUE(results[1].second.outbox_positions.empty());
  ASSERT_EQ(results[1].second.batch.outbox.size(), 1u);  // handed back
  EXPECT_EQ(results[1].second.batch.outbox[0].id, "gw/p/d/2");
  EXPECT_TRUE(results[2].second.status.ok());
  EXPECT_EQ(store->stats().outbox_rows, 2);  // nothing of the failed batch written

  CommitResult retry = CommitAndWait(store.get(), std::move(results[1].second.batch));
  EXPECT_TRUE(retry.status.ok());
  EXPECT_EQ(store->stats().outbox_rows, 3);
}

TEST(FaultInjectingStore, FailsEverythingUntilCleared) {
  TempDir dir;
  auto store = OpenFaulty(dir);
  store->FailAllCommits(FaultInjectingStore::IoError(store->path()));
  store->FailDeletes(FaultInjectingStore::IoError(store->path()));
  for (int i = 0; i < 3; ++i) {
    CommitResult r = CommitAndWait(store.get(), OneResult(i));
    EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.ToString();
  }
  EXPECT_EQ(store->stats().outbox_rows, 0);
  store->ClearFaults();
  CommitResult ok = CommitAndWait(store.get(), OneResult(9));
  ASSERT_TRUE(ok.status.ok());
  store->FailDeletes(FaultInjectingStore::IoError(store->path()));
  DeleteResult d = DeleteAndWait(store.get(), {{ok.outbox_positions[0], 0}});
  EXPECT_EQ(d.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->stats().outbox_rows, 1);  // still pending: it will be sent again
  store->ClearFaults();
  EXPECT_EQ(DeleteAndWait(store.get(), {{ok.outbox_positions[0], 0}}).deleted, 1);
  EXPECT_EQ(store->commits_seen(), 4);
}

}  // namespace
}  // namespace weir
