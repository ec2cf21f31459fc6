// JournalWriter: appends from the MQTT callback thread (DESIGN 6.2) on a
// connection of its own. Concurrent callers form a group: the first becomes
// the leader and commits everyone queued in one transaction while the others
// wait; no caller returns before its row is committed.
//
// Every append sits between a message's arrival and its PUBACK, so this
// connection does the least it can per commit: a group of one (the usual
// case: Paho delivers one message at a time) is a single autocommit INSERT,
// and the connection never checkpoints the WAL (the store's worker does,
// after its group commits), so no append pays for copying the WAL back into
// the database and its fsync.
#include <condition_variable>
#include <mutex>
#include <vector>

#include "storage/store_internal.h"

namespace weir {
namespace storage_internal {
namespace {

class SqliteJournalWriter final : public JournalWriter {
 public:
  explicit SqliteJournalWriter(std::unique_ptr<Db> db) : db_(std::move(db)) {
    pending_.reserve(64);
    group_.reserve(64);
  }
  Status Init();
  Status Append(Message* message) override;

 private:
  struct Waiter {
    Message* message;
    Status status;
    bool done = false;
  };
  Status WriteGroup();  // leader only, without mu_

  std::unique_ptr<Db> db_;
  Stmt begin_, insert_, commit_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Waiter*> pending_;  // queued, not yet taken by a leader
  std::vector<Waiter*> group_;    // taken by the current leader
  bool leader_active_ = false;
};

Status SqliteJournalWriter::Init() {
  // Checkpoints are left to the worker connection, whose group commits
  // follow the loop's progress through the journal, every commit_interval.
  RETURN_IF_ERROR(db_->Exec("PRAGMA wal_autocheckpoint = 0", "journal: set wal_autocheckpoint"));
  auto b = db_->Prepare("BEGIN IMMEDIATE");
  if (!b.ok()) return b.status();
  begin_ = std::move(*b);
  auto i = db_->Prepare("INSERT INTO journal(arrival_ms, topic, payload) VALUES(?, ?, ?)");
  if (!i.ok()) return i.status();
  insert_ = std::move(*i);
  auto c = db_->Prepare("COMMIT");
  if (!c.ok()) return c.status();
  commit_ = std::move(*c);
  return Status::Ok();
}

Status SqliteJournalWriter::WriteGroup() {
  // One row is its own transaction: the same locks and the same single WAL
  // frame as BEGIN/INSERT/COMMIT, without running the two extra statements.
  if (group_.size() == 1) {
    Message* m = group_[0]->message;
    insert_.Bind(1, m->arrival_ms);
    insert_.BindText(2, m->topic);
    insert_.BindBlob(3, m->payload);
    RETURN_IF_ERROR(db_->Run(insert_, "journal: append"));
    m->journal_seq = sqlite3_last_insert_rowid(db_->get());
    return Status::Ok();
  }
  RETURN_IF_ERROR(db_->Run(begin_, "journal: begin"));
  for (Waiter* w : group_) {
    insert_.Bind(1, w->message->arrival_ms);
    insert_.BindText(2, w->message->topic);
    insert_.BindBlob(3, w->message->payload);
    Status st = db_->Run(insert_, "journal: append");
    if (!st.ok()) {
      db_->RollbackQuietly();
      return st;
    }
    w->message->journal_seq = sqlite3_last_insert_rowid(db_->get());
  }
  Status st = db_->Run(commit_, "journal: commit");
  if (!st.ok()) db_->RollbackQuietly();
  return st;
}

Status SqliteJournalWriter::Append(Message* message) {
  Waiter me{message, Status::Ok(), false};
  std::unique_lock<std::mutex> l(mu_);
  pending_.push_back(&me);
  for (;;) {
    if (me.done) return me.status;
    if (!leader_active_) break;
    cv_.wait(l);
  }
  // Lead: take everyone queued so far (including this caller).
  leader_active_ = true;
  group_.swap(pending_);
  l.unlock();
  Status st = WriteGroup();
  l.lock();
  for (Waiter* w : group_) {
    if (!st.ok()) w->message->journal_seq = 0;
    w->status = st;
    w->done = true;
  }
  group_.clear();
  leader_active_ = false;
  l.unlock();
  cv_.notify_all();
  return me.status;
}

}  // namespace

Result<std::unique_ptr<JournalWriter>> OpenJournalWriter(const StoreOptions& options,
                                                         const StoreLimits& limits) {
  auto db =
      Db::Open(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, options.busy_timeout_ms);
  if (!db.ok()) return db.status();
  RETURN_IF_ERROR(ConfigureWriter(db->get(), options.sync, limits));
  // Appends touch the journal's last pages only: a reader-sized cache will do.
  std::string cache = "PRAGMA cache_size = -" + std::to_string(kReaderCacheBytes / 1024);
  RETURN_IF_ERROR((*db)->Exec(cache.c_str(), "open: set cache size"));
  auto w = std::make_unique<SqliteJournalWriter>(std::move(*db));
  RETURN_IF_ERROR(w->Init());
  return std::unique_ptr<JournalWriter>(std::move(w));
}

}  // namespace storage_internal
}  // namespace weir
