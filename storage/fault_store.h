// FaultInjectingStore: wraps a Store and fails chosen commits, for unit tests
// of callers (runtime, uplink) that must survive storage errors. A failed
// commit behaves like the real one: the callback runs on the worker thread,
// in queue order, with the batch given back and nothing written.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "storage/store.h"

namespace weir {

class FaultInjectingStore final : public Store {
 public:
  explicit FaultInjectingStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}

  // The nth commit from now (1 = the next one) fails with `status`.
  void FailNthCommit(int n, Status status);
  // Every commit fails with `status` until ClearFaults().
  void FailAllCommits(Status status);
  // Deletes after PUBACK fail with `status` until ClearFaults().
  void FailDeletes(Status status);
  void ClearFaults();
  int commits_seen() const { return commits_seen_.load(); }

  // The Status the real store reports for a full disk (SQLITE_FULL).
  static Status DiskFull(const std::string& path);
  // ... and for an I/O error (SQLITE_IOERR_WRITE).
  static Status IoError(const std::string& path);

  void Commit(CommitBatch batch, CommitCallback done) override;
  void DeleteDelivered(std::vector<OutboxKey> keys, DeleteCallback done) override;
  Status Flush() override { return inner_->Flush(); }
  void Close() override { inner_->Close(); }
  StoreStats stats() const override { return inner_->stats(); }
  Result<std::unique_ptr<JournalWriter>> NewJournalWriter() override {
    return inner_->NewJournalWriter();
  }
  const std::string& path() const override { return inner_->path(); }

 private:
  std::unique_ptr<Store> inner_;
  std::mutex mu_;
  int fail_in_ = 0;  // countdown to the nth commit; 0 = none
  Status nth_status_;
  bool fail_all_ = false;
  Status all_status_;
  bool fail_deletes_ = false;
  Status delete_status_;
  std::atomic<int> commits_seen_{0};
};

}  // namespace weir
