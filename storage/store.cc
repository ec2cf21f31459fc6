// The SQLite Store: schema setup, the group-commit worker, on_full handling.
#include "storage/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <thread>

#include "core/text.h"
#include "storage/schema.h"
#include "storage/sqlite_util.h"
#include "storage/store_internal.h"

namespace weir {

using storage_internal::Db;
using storage_internal::Stmt;

bool CommitBatch::empty() const {
  return outbox.empty() && state.empty() && state_cleared.empty() && dedup.empty() &&
         journal.empty() && checkpoint_seq < 0 && pipelines.empty() && pipelines_removed.empty() &&
         !config && counters.empty() && seal_loss_upto <= 0;
}

void BatchStateWriter::Put(std::string_view pipeline_id, char kind, std::string_view id,
                           std::string_view blob) {
  batch_->state.push_back(
      {std::string(pipeline_id), kind, std::string(id), std::string(blob), false});
}

void BatchStateWriter::Erase(std::string_view pipeline_id, char kind, std::string_view id) {
  batch_->state.push_back({std::string(pipeline_id), kind, std::string(id), {}, true});
}

OutboxEntry ResultOutboxEntry(const ResultRecord& r, int64_t created_ms) {
  OutboxEntry e;
  e.kind = r.retracted ? OutboxKind::kRetraction : OutboxKind::kResult;
  e.id = r.id;
  e.rev = r.rev;
  e.pipeline = r.pipeline;
  e.window_start = r.start;
  e.window_end = r.end;
  AppendResultJson(r, &e.payload);
  e.created_ms = created_ms;
  return e;
}

StoreOptions StoreOptionsFromConfig(const Config& config) {
  StoreOptions o;
  o.path = config.storage.path;
  o.max_bytes = config.storage.max_bytes;
  o.sync = config.storage.sync;
  o.on_full = config.storage.on_full;
  o.gateway = config.gateway;
  return o;
}

namespace storage_internal {

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_size);
}

// Page budget derived from max_bytes. The WAL gets a fixed reserve (it is
// truncated to it after checkpoints); the main file is capped hard with
// max_page_count (SQLITE_FULL beyond), and on_full acts at the lower soft
// limit so journal appends still fit while a commit makes room.
Result<StoreLimits> ComputeLimits(int64_t max_bytes, int64_t page_size) {
  StoreLimits l;
  l.page_size = page_size;
  if (max_bytes <= 0) return l;
  if (max_bytes < kMinMaxBytes) {
    return InvalidArgument("storage.max_bytes is " + std::to_string(max_bytes) +
                           " bytes; hint: use at least 256KB");
  }
  l.wal_reserve_bytes =
      std::clamp<int64_t>(max_bytes / 4, 128 * 1024, 8 * 1024 * 1024) / page_size * page_size;
  l.hard_pages = (max_bytes - l.wal_reserve_bytes) / page_size;
  l.soft_pages = l.hard_pages - std::max<int64_t>(l.hard_pages / 16, 8);
  l.target_pages = l.soft_pages - std::max<int64_t>(l.soft_pages / 32, 4);
  return l;
}

// Per-connection settings shared by the worker and journal connections.
Status ConfigureWriter(Db* db, SyncMode sync, const StoreLimits& limits) {
  auto mode = db->Prepare("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  int rc = mode->Step();
  if (rc != SQLITE_ROW) return db->Error(rc, "open: set WAL mode");
  if (mode->Text(0) != "wal") {
    return FailedPrecondition("open: " + db->path() + " cannot use WAL mode (got " +
                              std::string(mode->Text(0)) +
                              "); hint: put storage.path on a local file system");
  }
  mode->Reset();
  RETURN_IF_ERROR(db->Exec(
      sync == SyncMode::kFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
      "open: set synchronous"));
  std::string cache = "PRAGMA cache_size = -" + std::to_string(kWriterCacheBytes / 1024);
  RETURN_IF_ERROR(db->Exec(cache.c_str(), "open: set cache size"));
  if (limits.hard_pages > 0) {
    std::string sql =
        "PRAGMA max_page_count = " + std::to_string(limits.hard_pages) +
        "; PRAGMA journal_size_limit = " + std::to_string(limits.wal_reserve_bytes) +
        "; PRAGMA wal_autocheckpoint = " +
        std::to_string(std::max<int64_t>(limits.wal_reserve_bytes / limits.page_size / 2, 8));
    RETURN_IF_ERROR(db->Exec(sql.c_str(), "open: set size limits"));
  }
  return Status::Ok();
}

namespace {

constexpr int64_t kRowOverheadBytes = 48;  // rough b-tree cost of one outbox row
constexpr int kConfigHistory = 16;         // config versions kept

// The open range of dropped results that the pending loss record describes
// (meta keys loss.*), so that the next drop can extend it when contiguous.
struct LossRange {
  int64_t row_pos = 0;  // outbox pos of its loss record; 0 = none
  int64_t first = 0;
  int64_t last = 0;
  int64_t lost = 0;
  int64_t from = 0;
  int64_t to = 0;
};

// Worker-side counters that a transaction changes; copied at BEGIN and kept
// only when COMMIT succeeds.
struct Committed {
  int64_t checkpoint = 0;
  int64_t lost_total = 0;
  int64_t outbox_rows = 0;
  int64_t outbox_bytes = 0;
  LossRange loss;
  int64_t loss_sealed = 0;  // loss records at or below this position are final
};

std::string LossId(const std::string& gateway, const LossRange& l) {
  return gateway + "/loss/" + std::to_string(l.first) + "-" + std::to_string(l.last);
}

// {"id": "<gateway>/loss/<first>-<last>", "lost": N, "from": t1, "to": t2} (DESIGN 6.3).
std::string LossPayload(const std::string& gateway, const LossRange& l) {
  std::string out = "{\"id\":";
  AppendJsonString(LossId(gateway, l), &out);
  out += ",\"lost\":";
  AppendInt(l.lost, &out);
  out += ",\"from\":";
  AppendInt(l.from, &out);
  out += ",\"to\":";
  AppendInt(l.to, &out);
  out += "}";
  return out;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(StoreOptions options, StoreLimits limits, std::unique_ptr<Db> db, int lock_fd)
      : options_(std::move(options)), limits_(limits), db_(std::move(db)), lock_fd_(lock_fd) {}
  ~SqliteStore() override { Close(); }

  Status Init();

  void Commit(CommitBatch batch, CommitCallback done) override;
  void DeleteDelivered(std::vector<OutboxKey> keys, DeleteCallback done) override;
  Status Flush() override;
  void Close() override;
  StoreStats stats() const override {
    std::lock_guard<std::mutex> l(stats_mu_);
    return stats_;
  }
  Result<std::unique_ptr<JournalWriter>> NewJournalWriter() override {
    return OpenJournalWriter(options_, limits_);
  }
  const std::string& path() const override { return options_.path; }

 private:
  struct Item {
    enum Type { kCommit, kDelete, kFlush } type = kCommit;
    CommitBatch batch;
    CommitCallback commit_done;
    std::vector<OutboxKey> keys;
    DeleteCallback delete_done;
    std::promise<Status>* flushed = nullptr;
  };

  bool Enqueue(Item&& item);
  void WorkerMain();
  void RunCommit(CommitBatch&& batch, const CommitCallback& done);
  Status ApplyBatch(const CommitBatch& b, CommitResult* r, Committed* c);
  Status MakeRoomTransaction(int64_t target_pages, Committed* c, int64_t* dropped);
  // best_effort: running out of results to drop is not an error.
  Status DropOldest(int64_t target_pages, Committed* c, int64_t* dropped, bool best_effort = false);
  Status RecordLoss(const LossRange& range, Committed* c);
  DeleteResult RunDeletes(const std::vector<OutboxKey>& keys);
  Result<int64_t> UsedPages();
  Status SetMeta(std::string_view key, int64_t value);
  Status SaveLoss(const LossRange& l);
  void TrimWal();
  void PublishStats(bool full, int64_t commit_us, bool failed);
  Status Prepare(Stmt* s, const char* sql) {
    auto r = db_->Prepare(sql);
    if (!r.ok()) return r.status();
    *s = std::move(*r);
    return Status::Ok();
  }
  int64_t Now() const { return options_.now_ms ? options_.now_ms() : SystemNowMs(); }

  const StoreOptions options_;
  const StoreLimits limits_;
  std::unique_ptr<Db> db_;  // worker thread only (after Init)
  int lock_fd_;             // flock on <path>-lock: one writing weir per file; -1 once closed

  Stmt begin_, commit_, ins_journal_, trim_journal_, set_meta_, put_state_, del_state_,
      clear_state_, put_dedup_, put_pipeline_, del_pipeline_, ins_config_, trim_config_,
      ins_outbox_, find_outbox_, page_count_, freelist_count_, oldest_droppable_, del_range_,
      loss_row_rev_, update_loss_, ins_loss_, del_delivered_, oldest_, newest_, journal_newest_;

  Committed committed_;  // worker thread only

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool closing_ = false;
  bool closed_ = false;
  std::thread worker_;

  mutable std::mutex stats_mu_;
  StoreStats stats_;
};

Status SqliteStore::Init() {
  RETURN_IF_ERROR(Prepare(&begin_, "BEGIN IMMEDIATE"));
  RETURN_IF_ERROR(Prepare(&commit_, "COMMIT"));
  RETURN_IF_ERROR(
      Prepare(&ins_journal_, "INSERT INTO journal(arrival_ms, topic, payload) VALUES(?, ?, ?)"));
  // Keeps the newest row even when the checkpoint covers it (see schema.cc).
  RETURN_IF_ERROR(Prepare(&trim_journal_,
                          "DELETE FROM journal WHERE seq <= ? AND "
                          "seq < (SELECT max(seq) FROM journal)"));
  RETURN_IF_ERROR(Prepare(&set_meta_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)"));
  RETURN_IF_ERROR(Prepare(
      &put_state_, "INSERT OR REPLACE INTO state(pipeline, kind, id, blob) VALUES(?, ?, ?, ?)"));
  RETURN_IF_ERROR(
      Prepare(&del_state_, "DELETE FROM state WHERE pipeline = ? AND kind = ? AND id = ?"));
  RETURN_IF_ERROR(Prepare(&clear_state_, "DELETE FROM state WHERE pipeline = ?"));
  RETURN_IF_ERROR(Prepare(&put_dedup_, "INSERT OR REPLACE INTO dedup(device, blob) VALUES(?, ?)"));
  RETURN_IF_ERROR(Prepare(&put_pipeline_,
                          "INSERT OR REPLACE INTO pipelines(name, generation, fingerprint, "
                          "definition, updated_ms) VALUES(?, ?, ?, ?, ?)"));
  RETURN_IF_ERROR(Prepare(&del_pipeline_, "DELETE FROM pipelines WHERE name = ?"));
  RETURN_IF_ERROR(Prepare(&ins_config_, "INSERT INTO config(text, applied_ms) VALUES(?, ?)"));
  RETURN_IF_ERROR(Prepare(&trim_config_, "DELETE FROM config WHERE version <= ?"));
  RETURN_IF_ERROR(Prepare(&ins_outbox_,
                          "INSERT INTO outbox(kind, id, rev, pipeline, window_start, "
                          "window_end, payload, created_ms, enqueued_ms) "
                          "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  RETURN_IF_ERROR(Prepare(&find_outbox_, "SELECT pos FROM outbox WHERE id = ? AND rev = ?"));
  RETURN_IF_ERROR(Prepare(&page_count_, "PRAGMA page_count"));
  RETURN_IF_ERROR(Prepare(&freelist_count_, "PRAGMA freelist_count"));
  RETURN_IF_ERROR(Prepare(&oldest_droppable_,
                          "SELECT pos, window_start, window_end, "
                          "length(CAST(payload AS BLOB)) + length(CAST(id AS BLOB)) "
                          "FROM outbox WHERE kind != 'l' ORDER BY pos LIMIT ?"));
  RETURN_IF_ERROR(Prepare(&del_range_,
                          "DELETE FROM outbox WHERE pos >= ? AND pos <= ? AND kind != 'l' "
                          "RETURNING length(CAST(payload AS BLOB))"));
  RETURN_IF_ERROR(Prepare(&loss_row_rev_, "SELECT rev FROM outbox WHERE pos = ? AND kind = 'l'"));
  RETURN_IF_ERROR(Prepare(&update_loss_,
                          "UPDATE outbox SET id = ?, rev = rev + 1, window_start = ?, "
                          "window_end = ?, payload = ? WHERE pos = ?"));
  RETURN_IF_ERROR(Prepare(&ins_loss_,
                          "INSERT INTO outbox(kind, id, rev, pipeline, window_start, "
                          "window_end, payload, created_ms, enqueued_ms) "
                          "VALUES('l', ?, 0, '', ?, ?, ?, ?, ?)"));
  RETURN_IF_ERROR(Prepare(&del_delivered_,
                          "DELETE FROM outbox WHERE pos = ? AND rev = ? "
                          "RETURNING length(CAST(payload AS BLOB))"));
  RETURN_IF_ERROR(Prepare(&oldest_, "SELECT pos, enqueued_ms FROM outbox ORDER BY pos LIMIT 1"));
  RETURN_IF_ERROR(Prepare(&newest_, "SELECT max(pos) FROM outbox"));
  RETURN_IF_ERROR(Prepare(&journal_newest_, "SELECT max(seq) FROM journal"));

  // Load what the worker keeps in memory.
  auto meta = db_->Prepare(
      "SELECT key, value FROM meta WHERE key IN ('checkpoint', "
      "'lost_total', 'loss.pos', 'loss.first', 'loss.last', 'loss.lost', "
      "'loss.from', 'loss.to', 'loss.sealed')");
  if (!meta.ok()) return meta.status();
  int rc;
  while ((rc = meta->Step()) == SQLITE_ROW) {
    std::string_view k = meta->Text(0);
    int64_t v = meta->Int(1);
    if (k == "checkpoint") committed_.checkpoint = v;
    if (k == "lost_total") committed_.lost_total = v;
    if (k == "loss.pos") committed_.loss.row_pos = v;
    if (k == "loss.sealed") committed_.loss_sealed = v;
    if (k == "loss.first") committed_.loss.first = v;
    if (k == "loss.last") committed_.loss.last = v;
    if (k == "loss.lost") committed_.loss.lost = v;
    if (k == "loss.from") committed_.loss.from = v;
    if (k == "loss.to") committed_.loss.to = v;
  }
  if (rc != SQLITE_DONE) return db_->Error(rc, "open: read meta");
  auto totals = db_->Prepare("SELECT count(*), total(length(CAST(payload AS BLOB))) FROM outbox");
  if (!totals.ok()) return totals.status();
  rc = totals->Step();
  if (rc != SQLITE_ROW) return db_->Error(rc, "open: count outbox");
  committed_.outbox_rows = totals->Int(0);
  committed_.outbox_bytes = totals->Int(1);
  PublishStats(false, 0, false);

  worker_ = std::thread([this] { WorkerMain(); });
  return Status::Ok();
}

bool SqliteStore::Enqueue(Item&& item) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closing_) return false;
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
  return true;
}

void SqliteStore::Commit(CommitBatch batch, CommitCallback done) {
  Item item;
  item.type = Item::kCommit;
  item.batch = std::move(batch);
  item.commit_done = std::move(done);
  std::unique_lock<std::mutex> l(mu_);
  if (closing_) {
    l.unlock();
    CommitResult r;
    r.status = Status(StatusCode::kCancelled, "commit: the store is closed");
    r.batch = std::move(item.batch);
    item.commit_done(std::move(r));
    return;
  }
  queue_.push_back(std::move(item));
  l.unlock();
  cv_.notify_one();
}

void SqliteStore::DeleteDelivered(std::vector<OutboxKey> keys, DeleteCallback done) {
  Item item;
  item.type = Item::kDelete;
  item.keys = std::move(keys);
  item.delete_done = done;
  if (!Enqueue(std::move(item)) && done) {
    done({Status(StatusCode::kCancelled, "delete: the store is closed"), 0});
  }
}

Status SqliteStore::Flush() {
  std::promise<Status> p;
  auto f = p.get_future();
  Item item;
  item.type = Item::kFlush;
  item.flushed = &p;
  if (!Enqueue(std::move(item)))
    return Status(StatusCode::kCancelled, "flush: the store is closed");
  return f.get();
}

void SqliteStore::Close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return;
    closing_ = true;
    closed_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  lock_fd_ = -1;
}

void SqliteStore::WorkerMain() {
  for (;;) {
    std::deque<Item> items;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closing and drained
      items.swap(queue_);
    }
    // Deletes first, merged into one transaction: they free room that a
    // commit held back by on_full block may be waiting for.
    std::vector<OutboxKey> keys;
    std::vector<DeleteCallback> delete_done;
    for (Item& it : items) {
      if (it.type != Item::kDelete) continue;
      keys.insert(keys.end(), it.keys.begin(), it.keys.end());
      delete_done.push_back(std::move(it.delete_done));
    }
    if (!delete_done.empty()) {
      DeleteResult r = RunDeletes(keys);
      for (auto& cb : delete_done) {
        if (cb) cb(r);
      }
    }
    for (Item& it : items) {
      if (it.type == Item::kCommit) RunCommit(std::move(it.batch), it.commit_done);
      if (it.type == Item::kFlush) it.flushed->set_value(Status::Ok());
    }
  }
}

Result<int64_t> SqliteStore::UsedPages() {
  int rc = page_count_.Step();
  if (rc != SQLITE_ROW) return db_->Error(rc, "commit: page_count");
  int64_t pages = page_count_.Int(0);
  page_count_.Reset();
  rc = freelist_count_.Step();
  if (rc != SQLITE_ROW) return db_->Error(rc, "commit: freelist_count");
  int64_t free_pages = freelist_count_.Int(0);
  freelist_count_.Reset();
  return pages - free_pages;
}

Status SqliteStore::SetMeta(std::string_view key, int64_t value) {
  set_meta_.BindText(1, key);
  set_meta_.Bind(2, value);
  return db_->Run(set_meta_, "commit: write meta");
}

Status SqliteStore::SaveLoss(const LossRange& l) {
  RETURN_IF_ERROR(SetMeta("loss.pos", l.row_pos));
  RETURN_IF_ERROR(SetMeta("loss.first", l.first));
  RETURN_IF_ERROR(SetMeta("loss.last", l.last));
  RETURN_IF_ERROR(SetMeta("loss.lost", l.lost));
  RETURN_IF_ERROR(SetMeta("loss.from", l.from));
  return SetMeta("loss.to", l.to);
}

void SqliteStore::RunCommit(CommitBatch&& batch, const CommitCallback& done) {
  auto t0 = std::chrono::steady_clock::now();
  CommitResult r;
  Committed c = committed_;
  Status st = ApplyBatch(batch, &r, &c);
  if (!st.ok() && st.code() == StatusCode::kResourceExhausted &&
      options_.on_full == OnFull::kDropOldest && limits_.hard_pages > 0) {
    // The batch hit the hard page cap: make room in a transaction of its own
    // (with its loss record), then try once more.
    int64_t need = 0;
    for (const auto& o : batch.outbox) need += o.payload.size() + o.id.size() + kRowOverheadBytes;
    for (const auto& m : batch.journal) need += m.payload.size() + m.topic.size() + 32;
    for (const auto& s : batch.state) need += s.blob.size() + s.id.size() + 32;
    int64_t need_pages = (need * 3 / 2) / limits_.page_size + 1;
    int64_t target = limits_.target_pages - need_pages;
    db_->RollbackQuietly();
    // Only at max_bytes: a file system that fills up before it is a disk
    // problem for the operator, not a reason to drop results.
    int64_t pages = 0;
    if (page_count_.Step() == SQLITE_ROW) pages = page_count_.Int(0);
    page_count_.Reset();
    bool at_cap = pages + need_pages >= limits_.hard_pages;
    Committed room = committed_;
    int64_t dropped = 0;
    if (at_cap && MakeRoomTransaction(std::max<int64_t>(target, 1), &room, &dropped).ok()) {
      committed_ = room;
      r = CommitResult();
      c = committed_;
      st = ApplyBatch(batch, &r, &c);
      r.dropped += dropped;
    }
  }
  int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  if (st.ok()) {
    committed_ = c;
    r.checkpoint_seq = c.checkpoint;
  } else {
    db_->RollbackQuietly();
    r.outbox_positions.clear();
    r.journal_seqs.clear();
    r.dropped = 0;
    r.checkpoint_seq = committed_.checkpoint;
    r.batch = std::move(batch);
  }
  r.status = st;
  TrimWal();
  PublishStats(!st.ok() && st.code() == StatusCode::kResourceExhausted, us, !st.ok());
  if (done) done(std::move(r));
}

Status SqliteStore::ApplyBatch(const CommitBatch& b, CommitResult* r, Committed* c) {
  if (b.empty()) return Status::Ok();
  RETURN_IF_ERROR(db_->Run(begin_, "commit: begin"));
  auto used_before = UsedPages();
  if (!used_before.ok()) return used_before.status();

  for (const Message& m : b.journal) {
    ins_journal_.Bind(1, m.arrival_ms);
    ins_journal_.BindText(2, m.topic);
    ins_journal_.BindBlob(3, m.payload);
    RETURN_IF_ERROR(db_->Run(ins_journal_, "commit: append journal"));
    r->journal_seqs.push_back(sqlite3_last_insert_rowid(db_->get()));
  }
  if (b.seal_loss_upto > c->loss_sealed) {
    c->loss_sealed = b.seal_loss_upto;
    RETURN_IF_ERROR(SetMeta("loss.sealed", c->loss_sealed));
  }
  int64_t checkpoint = b.checkpoint_seq;
  if (b.journal_processed > 0 && !r->journal_seqs.empty()) {
    size_t n = std::min<size_t>(b.journal_processed, r->journal_seqs.size());
    checkpoint = std::max(checkpoint, r->journal_seqs[n - 1]);
  }
  if (checkpoint > c->checkpoint) {
    c->checkpoint = checkpoint;
    RETURN_IF_ERROR(SetMeta("checkpoint", checkpoint));
    trim_journal_.Bind(1, checkpoint);
    RETURN_IF_ERROR(db_->Run(trim_journal_, "commit: trim journal"));
  }

  for (const auto& p : b.state_cleared) {
    clear_state_.BindText(1, p);
    RETURN_IF_ERROR(db_->Run(clear_state_, "commit: clear state"));
  }
  for (const StateChange& s : b.state) {
    std::string_view kind(&s.kind, 1);
    Stmt& st = s.erase ? del_state_ : put_state_;
    st.BindText(1, s.pipeline_id);
    st.BindText(2, kind);
    st.BindBlob(3, s.id);
    if (!s.erase) st.BindBlob(4, s.blob);
    RETURN_IF_ERROR(db_->Run(st, "commit: write state"));
  }
  for (const auto& [device, blob] : b.dedup) {
    put_dedup_.BindText(1, device);
    put_dedup_.BindBlob(2, blob);
    RETURN_IF_ERROR(db_->Run(put_dedup_, "commit: write dedup state"));
  }
  for (const PipelineRecord& p : b.pipelines) {
    put_pipeline_.BindText(1, p.name);
    put_pipeline_.Bind(2, p.generation);
    put_pipeline_.BindText(3, p.fingerprint);
    put_pipeline_.BindText(4, p.definition_json);
    put_pipeline_.Bind(5, p.updated_ms);
    RETURN_IF_ERROR(db_->Run(put_pipeline_, "commit: write pipeline"));
  }
  for (const auto& name : b.pipelines_removed) {
    del_pipeline_.BindText(1, name);
    RETURN_IF_ERROR(db_->Run(del_pipeline_, "commit: remove pipeline"));
  }
  if (b.config) {
    ins_config_.BindText(1, b.config->text);
    ins_config_.Bind(2, b.config->applied_ms);
    RETURN_IF_ERROR(db_->Run(ins_config_, "commit: write config"));
    trim_config_.Bind(1, sqlite3_last_insert_rowid(db_->get()) - kConfigHistory);
    RETURN_IF_ERROR(db_->Run(trim_config_, "commit: trim config history"));
  }
  for (const auto& [name, value] : b.counters) {
    RETURN_IF_ERROR(SetMeta("counter." + name, value));
  }

  const int64_t now = Now();
  const int64_t pending_before = c->outbox_rows;
  for (const OutboxEntry& o : b.outbox) {
    if (!o.id.empty()) {
      // Already pending: idempotent, report where it is. Looked up first
      // rather than with ON CONFLICT, which would use up a position and break
      // the density that loss records rely on.
      find_outbox_.BindText(1, o.id);
      find_outbox_.Bind(2, o.rev);
      int rc = find_outbox_.Step();
      int64_t pos = rc == SQLITE_ROW ? find_outbox_.Int(0) : 0;
      find_outbox_.Reset();
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_->Error(rc, "commit: find result");
      if (pos > 0) {
        r->outbox_positions.push_back(pos);
        continue;
      }
    }
    ins_outbox_.BindText(1, std::string_view(reinterpret_cast<const char*>(&o.kind), 1));
    if (o.id.empty()) {
      ins_outbox_.BindNull(2);
    } else {
      ins_outbox_.BindText(2, o.id);
    }
    ins_outbox_.Bind(3, o.rev);
    ins_outbox_.BindText(4, o.pipeline);
    ins_outbox_.Bind(5, o.window_start);
    ins_outbox_.Bind(6, o.window_end);
    ins_outbox_.BindText(7, o.payload);
    ins_outbox_.Bind(8, o.created_ms);
    ins_outbox_.Bind(9, now);
    RETURN_IF_ERROR(db_->Run(ins_outbox_, "commit: enqueue result"));
    r->outbox_positions.push_back(sqlite3_last_insert_rowid(db_->get()));
    c->outbox_rows += 1;
    c->outbox_bytes += static_cast<int64_t>(o.payload.size());
  }

  if (limits_.hard_pages > 0) {
    auto used = UsedPages();
    if (!used.ok()) return used.status();
    if (*used > limits_.soft_pages) {
      if (options_.on_full == OnFull::kBlock) {
        // Hold back only while delivery can free room: with no earlier result
        // pending, waiting would never end (the batch's own journal rows, trimmed
        // here, were what filled the file), so it goes in up to the hard cap.
        if (*used > *used_before && pending_before > 0) {
          return ResourceExhausted(
              "commit: storage.max_bytes (" + std::to_string(options_.max_bytes) +
              " bytes) reached on " + options_.path +
              "; on_full block holds new data back until the uplink delivers pending "
              "results; hint: check the uplink, or raise storage.max_bytes");
        }
      } else {
        RETURN_IF_ERROR(DropOldest(limits_.target_pages, c, &r->dropped));
      }
    }
  }
  return db_->Run(commit_, "commit");
}

Status SqliteStore::MakeRoomTransaction(int64_t target_pages, Committed* c, int64_t* dropped) {
  RETURN_IF_ERROR(db_->Run(begin_, "make room: begin"));
  Status st = DropOldest(target_pages, c, dropped, /*best_effort=*/true);
  if (st.ok()) st = db_->Run(commit_, "make room: commit");
  if (!st.ok()) db_->RollbackQuietly();
  return st;
}

// Drops the oldest pending results (never loss records) until at most
// target_pages are in use, and records what was dropped.
Status SqliteStore::DropOldest(int64_t target_pages, Committed* c, int64_t* dropped,
                               bool best_effort) {
  for (;;) {
    auto used = UsedPages();
    if (!used.ok()) return used.status();
    if (*used <= target_pages) return Status::Ok();
    const int64_t need_bytes = (*used - target_pages) * limits_.page_size;

    LossRange range;
    range.from = std::numeric_limits<int64_t>::max();
    range.to = std::numeric_limits<int64_t>::min();
    int64_t bytes = 0;
    oldest_droppable_.Bind(1, 4096);
    int rc;
    while ((rc = oldest_droppable_.Step()) == SQLITE_ROW) {
      int64_t pos = oldest_droppable_.Int(0);
      if (range.lost == 0) range.first = pos;
      range.last = pos;
      range.lost += 1;
      range.from = std::min(range.from, oldest_droppable_.Int(1));
      range.to = std::max(range.to, oldest_droppable_.Int(2));
      bytes += oldest_droppable_.Int(3) + kRowOverheadBytes;
      // Pages free only once emptied: take a little more than the estimate.
      if (bytes >= need_bytes && range.lost >= 16) break;
    }
    oldest_droppable_.Reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_->Error(rc, "make room: read oldest");
    if (range.lost == 0) {
      if (best_effort) return Status::Ok();
      return ResourceExhausted(
          "commit: storage.max_bytes (" + std::to_string(options_.max_bytes) +
          " bytes) reached on " + options_.path +
          " and no pending result is left to drop (state and journal fill it); hint: raise "
          "storage.max_bytes or lower limits.max_keys");
    }
    del_range_.Bind(1, range.first);
    del_range_.Bind(2, range.last);
    int64_t removed = 0, removed_bytes = 0;
    while ((rc = del_range_.Step()) == SQLITE_ROW) {
      removed += 1;
      removed_bytes += del_range_.Int(0);
    }
    del_range_.Reset();
    if (rc != SQLITE_DONE) return db_->Error(rc, "make room: drop oldest");
    c->outbox_rows -= removed;
    c->outbox_bytes -= removed_bytes;
    c->lost_total += range.lost;
    *dropped += range.lost;
    RETURN_IF_ERROR(SetMeta("lost_total", c->lost_total));
    RETURN_IF_ERROR(RecordLoss(range, c));
  }
}

// One loss record per contiguous dropped range. Outbox positions are dense
// (AUTOINCREMENT, and a rolled-back insert gives its position back), so a new
// range continues the pending record's range exactly when every position
// between them is that record itself: nothing in between was delivered.
Status SqliteStore::RecordLoss(const LossRange& range, Committed* c) {
  LossRange merged = range;
  bool extend = false;
  const LossRange& open = c->loss;
  if (open.row_pos > c->loss_sealed && range.first > open.last) {
    loss_row_rev_.Bind(1, open.row_pos);
    int rc = loss_row_rev_.Step();
    bool pending = rc == SQLITE_ROW;
    loss_row_rev_.Reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_->Error(rc, "make room: read loss");
    int64_t between = range.first - open.last - 1;
    bool record_between = open.row_pos > open.last && open.row_pos < range.first;
    extend = pending && between == (record_between ? 1 : 0);
  }
  if (extend) {
    merged.row_pos = open.row_pos;
    merged.first = open.first;
    merged.lost = open.lost + range.lost;
    merged.from = std::min(open.from, range.from);
    merged.to = std::max(open.to, range.to);
  }
  std::string payload = LossPayload(options_.gateway, merged);
  if (extend) {
    update_loss_.Bind(2, merged.from);
    update_loss_.Bind(3, merged.to);
    update_loss_.BindText(4, payload);
    update_loss_.Bind(5, merged.row_pos);
    std::string id = LossId(options_.gateway, merged);
    update_loss_.BindText(1, id);
    RETURN_IF_ERROR(db_->Run(update_loss_, "make room: extend loss record"));
    c->outbox_bytes += static_cast<int64_t>(payload.size()) -
                       static_cast<int64_t>(LossPayload(options_.gateway, open).size());
  } else {
    const int64_t now = Now();
    std::string id = LossId(options_.gateway, merged);
    ins_loss_.BindText(1, id);
    ins_loss_.Bind(2, merged.from);
    ins_loss_.Bind(3, merged.to);
    ins_loss_.BindText(4, payload);
    ins_loss_.Bind(5, now);
    ins_loss_.Bind(6, now);
    RETURN_IF_ERROR(db_->Run(ins_loss_, "make room: write loss record"));
    merged.row_pos = sqlite3_last_insert_rowid(db_->get());
    c->outbox_rows += 1;
    c->outbox_bytes += static_cast<int64_t>(payload.size());
  }
  c->loss = merged;
  return SaveLoss(merged);
}

DeleteResult SqliteStore::RunDeletes(const std::vector<OutboxKey>& keys) {
  auto t0 = std::chrono::steady_clock::now();
  DeleteResult r;
  Committed c = committed_;
  auto run = [&]() -> Status {
    RETURN_IF_ERROR(db_->Run(begin_, "delete delivered: begin"));
    for (const OutboxKey& k : keys) {
      del_delivered_.Bind(1, k.pos);
      del_delivered_.Bind(2, k.rev);
      int rc;
      while ((rc = del_delivered_.Step()) == SQLITE_ROW) {
        r.deleted += 1;
        c.outbox_rows -= 1;
        c.outbox_bytes -= del_delivered_.Int(0);
      }
      del_delivered_.Reset();
      if (rc != SQLITE_DONE) return db_->Error(rc, "delete delivered");
    }
    return db_->Run(commit_, "delete delivered: commit");
  };
  r.status = run();
  int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  if (r.status.ok()) {
    committed_ = c;
  } else {
    db_->RollbackQuietly();
    r.deleted = 0;
  }
  TrimWal();
  PublishStats(false, us, !r.status.ok());
  return r;
}

// A commit larger than the WAL reserve leaves the WAL that large until the
// next checkpoint resets it; with max_bytes set, truncate it right away so
// file + WAL stay within the bound. Without waiting: a reader that still
// needs the old frames makes this a no-op until the next commit.
void SqliteStore::TrimWal() {
  if (limits_.hard_pages == 0) return;
  if (FileSize(options_.path + "-wal") <= limits_.wal_reserve_bytes) return;
  sqlite3_busy_timeout(db_->get(), 0);
  sqlite3_wal_checkpoint_v2(db_->get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_timeout(db_->get(), options_.busy_timeout_ms);
}

// Refreshes the gauges from committed_ and a few cheap queries.
void SqliteStore::PublishStats(bool full, int64_t commit_us, bool failed) {
  int64_t oldest_pos = 0, oldest_ms = 0, newest_pos = 0, used = 0, pages = 0;
  if (oldest_.Step() == SQLITE_ROW) {
    oldest_pos = oldest_.Int(0);
    oldest_ms = oldest_.Int(1);
  }
  oldest_.Reset();
  if (newest_.Step() == SQLITE_ROW) newest_pos = newest_.Int(0);
  newest_.Reset();
  int64_t journal_seq = 0;
  if (journal_newest_.Step() == SQLITE_ROW) journal_seq = journal_newest_.Int(0);
  journal_newest_.Reset();
  auto u = UsedPages();
  if (u.ok()) used = *u;
  if (page_count_.Step() == SQLITE_ROW) pages = page_count_.Int(0);
  page_count_.Reset();
  int64_t file_bytes = pages * limits_.page_size + FileSize(options_.path + "-wal");

  std::lock_guard<std::mutex> l(stats_mu_);
  stats_.outbox_rows = committed_.outbox_rows;
  stats_.outbox_bytes = committed_.outbox_bytes;
  stats_.oldest_pos = oldest_pos;
  stats_.oldest_enqueued_ms = oldest_ms;
  stats_.newest_pos = newest_pos;
  stats_.checkpoint_seq = committed_.checkpoint;
  stats_.journal_seq = std::max(journal_seq, committed_.checkpoint);
  stats_.journal_rows = stats_.journal_seq - committed_.checkpoint;
  stats_.lost_total = committed_.lost_total;
  stats_.used_bytes = used * limits_.page_size;
  stats_.file_bytes = file_bytes;
  stats_.limit_bytes = limits_.soft_pages * limits_.page_size;
  if (full) {
    stats_.full = true;
  } else if (!failed) {
    stats_.full = limits_.hard_pages > 0 && options_.on_full == OnFull::kBlock && stats_.full &&
                  used > limits_.soft_pages;
  }
  if (commit_us > 0 || failed) {
    stats_.commits += 1;
    stats_.last_commit_us = commit_us;
    if (failed) stats_.failed_commits += 1;
  }
}

}  // namespace
}  // namespace storage_internal

namespace storage_internal {

// One writing process per file: a second `weir run` on the same storage.path
// would interleave two loops' commits. flock on a separate file, because
// closing any descriptor of the database itself would drop SQLite's own
// POSIX locks. Returns the descriptor that holds the lock.
Result<int> LockStoreFile(const std::string& path) {
  std::string lock_path = path + "-lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FailedPrecondition("open: cannot create " + lock_path + ": " + std::strerror(errno) +
                              "; hint: check that the directory exists and is writable by weir");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Unavailable("open: " + path + " is in use by another weir process (" + lock_path +
                         " is locked); hint: stop the other weir, or give this one its own "
                         "storage.path");
    }
    return Unavailable("open: cannot lock " + lock_path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace storage_internal

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  using namespace storage_internal;
  auto lock = LockStoreFile(options.path);
  if (!lock.ok()) return lock.status();
  struct LockGuard {
    int fd;
    ~LockGuard() {
      if (fd >= 0) ::close(fd);
    }
  } guard{*lock};
  auto db = Db::Open(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                     options.busy_timeout_ms);
  if (!db.ok()) return db.status();
  // WAL first, so the schema transaction already goes through the WAL.
  RETURN_IF_ERROR(ConfigureWriter(db->get(), options.sync, StoreLimits()));
  RETURN_IF_ERROR(PrepareSchema(db->get()));
  auto page_size = (*db)->QueryInt("PRAGMA page_size", 4096);
  if (!page_size.ok()) return page_size.status();
  auto limits = ComputeLimits(options.max_bytes, *page_size);
  if (!limits.ok()) return limits.status();
  RETURN_IF_ERROR(ConfigureWriter(db->get(), options.sync, *limits));
  auto store = std::make_unique<SqliteStore>(options, *limits, std::move(*db), guard.fd);
  guard.fd = -1;  // the store owns it now
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace weir
