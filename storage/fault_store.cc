#include "storage/fault_store.h"

#include <utility>

#include "storage/sqlite_util.h"

namespace weir {

void FaultInjectingStore::FailNthCommit(int n, Status status) {
  std::lock_guard<std::mutex> l(mu_);
  fail_in_ = n;
  nth_status_ = std::move(status);
}

void FaultInjectingStore::FailAllCommits(Status status) {
  std::lock_guard<std::mutex> l(mu_);
  fail_all_ = true;
  all_status_ = std::move(status);
}

void FaultInjectingStore::FailDeletes(Status status) {
  std::lock_guard<std::mutex> l(mu_);
  fail_deletes_ = true;
  delete_status_ = std::move(status);
}

void FaultInjectingStore::ClearFaults() {
  std::lock_guard<std::mutex> l(mu_);
  fail_in_ = 0;
  fail_all_ = false;
  fail_deletes_ = false;
}

Status FaultInjectingStore::DiskFull(const std::string& path) {
  return storage_internal::SqliteError(SQLITE_FULL, "commit", "database or disk is full", path);
}

Status FaultInjectingStore::IoError(const std::string& path) {
  return storage_internal::SqliteError(SQLITE_IOERR_WRITE, "commit", "disk I/O error", path);
}

void FaultInjectingStore::Commit(CommitBatch batch, CommitCallback done) {
  commits_seen_.fetch_add(1);
  Status fail;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (fail_all_) {
      fail = all_status_;
    } else if (fail_in_ > 0 && --fail_in_ == 0) {
      fail = nth_status_;
    }
  }
  if (fail.ok()) {
    inner_->Commit(std::move(batch), std::move(done));
    return;
  }
  // Pass an empty batch through the worker so that the failure arrives on the
  // same thread and in the same order as a real one would; hand the caller's
  // batch back untouched.
  auto held = std::make_shared<CommitBatch>(std::move(batch));
  inner_->Commit(CommitBatch(), [held, fail, done = std::move(done)](CommitResult&& r) {
    CommitResult out;
    out.status = fail;
    out.checkpoint_seq = r.checkpoint_seq;
    out.batch = std::move(*held);
    if (done) done(std::move(out));
  });
}

void FaultInjectingStore::DeleteDelivered(std::vector<OutboxKey> keys, DeleteCallback done) {
  Status fail;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (fail_deletes_) fail = delete_status_;
  }
  if (fail.ok()) {
    inner_->DeleteDelivered(std::move(keys), std::move(done));
    return;
  }
  inner_->DeleteDelivered({}, [fail, done = std::move(done)](const DeleteResult&) {
    if (done) done({fail, 0});
  });
}

}  // namespace weir
