// Store: the one SQLite (WAL) file of a gateway (DESIGN 6.3): the ingest
// journal, operator state, dedup state, the outbox of pending results, the
// pipelines' generations and the config last applied. See storage/README.md
// for the schema and why.
//
// Threads:
//   - the loop hands CommitBatches to Store::Commit, which never blocks: one
//     worker thread writes each batch as one transaction (group commit) and
//     calls the completion on the worker thread;
//   - the MQTT callback thread appends to the journal through its own
//     JournalWriter (its own connection) before the broker's PUBACK (6.2);
//   - the uplink reads pending rows through its own StoreReader and deletes
//     them with Store::DeleteDelivered after PUBACK;
//   - `weir status` and `weir validate --db` open a StoreReader read-only,
//     safe while weir runs (WAL readers never block the writer).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/message.h"
#include "core/result.h"
#include "core/status.h"
#include "operators/engine.h"

namespace weir {

// Page cache per SQLite connection (PRAGMA cache_size), instead of SQLite's
// default 2000 KiB each. The writer holds the pages a group commit touches
// (outbox and state rows; past this SQLite spills dirty pages to the WAL
// mid-transaction, which only costs I/O); readers and the journal connection
// append or read a few pages at a time. `weir validate` counts these in its
// memory budget (issue 9).
constexpr int64_t kWriterCacheBytes = 1024 * 1024;
constexpr int64_t kReaderCacheBytes = 256 * 1024;

struct StoreOptions {
  std::string path = "weir.db";
  // Bound on the database file plus its WAL; 0 = unbounded. Minimum 128KB.
  int64_t max_bytes = 256LL * 1024 * 1024;
  SyncMode sync = SyncMode::kNormal;  // normal survives a process crash, full a power loss
  OnFull on_full = OnFull::kDropOldest;
  std::string gateway;  // for loss record ids: "<gateway>/loss/<first>-<last>"
  int busy_timeout_ms = 5000;
  // Wall clock for outbox enqueue times (oldest pending age). Tests inject one.
  std::function<int64_t()> now_ms;
};
StoreOptions StoreOptionsFromConfig(const Config& config);

enum class OutboxKind : char {
  kResult = 'r',
  kRetraction = 'x',
  kLoss = 'l',      // written by storage only (on_full drop_oldest)
  kLateSide = 's',  // `late: side` raw reading for <uplink topic>/late; no id
};

// A result to enqueue. Re-enqueueing a pending (id, rev) is a no-op.
struct OutboxEntry {
  OutboxKind kind = OutboxKind::kResult;
  std::string id;  // empty only for kLateSide
  int64_t rev = 0;
  std::string pipeline;  // bare name: the uplink topic's {pipeline}
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string payload;     // the JSON text published upstream
  int64_t created_ms = 0;  // processing time of the step that emitted it
};

// The outbox row of a result or retraction: its id, rev, pipeline, window
// and JSON text, emitted at processing time `created_ms`.
OutboxEntry ResultOutboxEntry(const ResultRecord& result, int64_t created_ms);

// A pending outbox row as read back.
struct OutboxRow : OutboxEntry {
  int64_t pos = 0;          // outbox position: increasing, never reused
  int64_t enqueued_ms = 0;  // wall clock at commit
};

// Identifies a delivered row. The rev guards against deleting a loss record
// that was extended (rev + 1) after it was read.
struct OutboxKey {
  int64_t pos = 0;
  int64_t rev = 0;
};

struct StateChange {
  std::string pipeline_id;  // "name" or "name~g"
  char kind = 'p';
  std::string id;
  std::string blob;
  bool erase = false;
};

struct PipelineRecord {
  std::string name;
  int64_t generation = 0;
  std::string fingerprint;
  std::string definition_json;
  int64_t updated_ms = 0;
};

struct ConfigRecord {
  std::string text;
  int64_t applied_ms = 0;
};

// Everything one group commit writes, as one transaction (DESIGN 6.3).
struct CommitBatch {
  std::vector<OutboxEntry> outbox;
  std::vector<StateChange> state;          // applied in order
  std::vector<std::string> state_cleared;  // pipeline ids whose state is deleted (6.5)
  std::vector<std::pair<std::string, std::string>> dedup;  // device -> dedup blob
  // `ingest.durability: batch`: the raw messages themselves, appended here.
  std::vector<Message> journal;
  // The journal position processed: every journal row with seq <= this is
  // reflected in the state and outbox of this batch; rows up to it are
  // trimmed. -1 = unchanged. Never moves backwards.
  // REQUIRES: the loop processes journal rows in seq order (one appending
  // thread, or appenders that hand rows over in seq order).
  int64_t checkpoint_seq = -1;
  // With `journal` rows: the first `journal_processed` of them are processed
  // (the checkpoint moves to the last of their seqs, assigned here).
  int64_t journal_processed = 0;
  std::vector<PipelineRecord> pipelines;                  // upserted by name
  std::vector<std::string> pipelines_removed;             // names
  std::optional<ConfigRecord> config;                     // appended to the config history
  std::vector<std::pair<std::string, int64_t>> counters;  // runtime counters, stored as is
  // The uplink is about to read the loss record at this outbox position:
  // from this commit on it is never extended (a later drop starts a new
  // record), so the version sent is final. 0 = unchanged.
  int64_t seal_loss_upto = 0;

  bool empty() const;
};

// A StateWriter (operators/engine.h) that buffers rows into a batch.
class BatchStateWriter : public StateWriter {
 public:
  explicit BatchStateWriter(CommitBatch* batch) : batch_(batch) {}
  void Put(std::string_view pipeline_id, char kind, std::string_view id,
           std::string_view blob) override;
  void Erase(std::string_view pipeline_id, char kind, std::string_view id) override;

 private:
  CommitBatch* batch_;
};

struct CommitResult {
  Status status;
  // Parallel to batch.outbox: the row's position (the existing one for an
  // (id, rev) already pending). Empty when the commit failed.
  std::vector<int64_t> outbox_positions;
  std::vector<int64_t> journal_seqs;  // parallel to batch.journal
  int64_t checkpoint_seq = 0;         // after this commit
  int64_t dropped = 0;                // results dropped by on_full drop_oldest during this commit
  // On failure the batch comes back untouched so the caller can retry it;
  // nothing of it was written and no row was deleted for it (only drop_oldest
  // at max_bytes may have dropped old results, with their loss record, in a
  // transaction of its own).
  CommitBatch batch;
};
using CommitCallback = std::function<void(CommitResult&&)>;

struct DeleteResult {
  Status status;
  // Rows removed by the transaction, which merges the calls queued together
  // (a key already gone, or with another rev, is not an error).
  int64_t deleted = 0;
};
using DeleteCallback = std::function<void(const DeleteResult&)>;

// Gauges for metrics and status, as of the last finished transaction.
struct StoreStats {
  int64_t outbox_rows = 0;
  int64_t outbox_bytes = 0;        // sum of payload sizes
  int64_t oldest_enqueued_ms = 0;  // 0 when the outbox is empty
  int64_t oldest_pos = 0;
  int64_t newest_pos = 0;
  int64_t checkpoint_seq = 0;
  int64_t journal_seq = 0;   // newest journal row (as of the last transaction)
  int64_t journal_rows = 0;  // rows after the checkpoint: journal_seq - checkpoint_seq
  int64_t lost_total = 0;    // results dropped by drop_oldest, ever
  int64_t used_bytes = 0;    // pages in use (not free) x page size
  int64_t file_bytes = 0;    // database file + WAL on disk
  int64_t limit_bytes = 0;   // where on_full starts; 0 = unbounded
  bool full = false;         // on_full block is holding batches back
  int64_t commits = 0;       // transactions finished (commits and deletes)
  int64_t failed_commits = 0;
  int64_t last_commit_us = 0;  // duration of the last transaction
};

// Appends raw messages to the journal from the MQTT callback thread.
// Thread-safe: concurrent callers are committed together in one transaction.
class JournalWriter {
 public:
  virtual ~JournalWriter() = default;
  // Durable against a process crash when it returns ok (against power loss
  // with sync full). Sets message->journal_seq. Allocates nothing per call.
  virtual Status Append(Message* message) = 0;
};

class Store {
 public:
  // Opens (creating or migrating the schema) and starts the worker. Holds
  // an exclusive lock (<path>-lock) until Close: a second writer on the same
  // file gets kUnavailable.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  virtual ~Store() = default;

  // Never blocks. `done` runs on the worker thread, once, in queue order; it
  // may call Commit or DeleteDelivered but not Flush or Close.
  virtual void Commit(CommitBatch batch, CommitCallback done) = 0;
  // After PUBACK. Keys from one call are deleted in one transaction; calls
  // queued together are merged.
  virtual void DeleteDelivered(std::vector<OutboxKey> keys, DeleteCallback done) = 0;
  // Blocks until everything queued before it has finished (tests, shutdown).
  virtual Status Flush() = 0;
  // Finishes the queue and stops the worker; later calls fail with kCancelled.
  virtual void Close() = 0;

  virtual StoreStats stats() const = 0;
  virtual Result<std::unique_ptr<JournalWriter>> NewJournalWriter() = 0;
  virtual const std::string& path() const = 0;
};

struct PipelineStatus {
  PipelineRecord pipeline;
  int64_t pending_rows = 0;  // outbox rows of that pipeline
};

// What `weir status` and `weir validate --db` read (one snapshot).
struct StoreStatus {
  int schema_version = 0;
  int64_t outbox_rows = 0;
  int64_t outbox_bytes = 0;
  int64_t oldest_enqueued_ms = 0;  // 0 when empty
  int64_t oldest_age_ms = 0;       // now - oldest_enqueued_ms
  int64_t loss_records = 0;        // pending loss records
  int64_t lost_total = 0;
  int64_t journal_rows = 0;  // not yet covered by a checkpoint
  int64_t journal_bytes = 0;
  int64_t checkpoint_seq = 0;
  int64_t file_bytes = 0;  // database + WAL
  std::vector<PipelineStatus> pipelines;
  std::optional<ConfigRecord> config;
  std::vector<std::pair<std::string, int64_t>> counters;
};

// A connection for reading, owned by one thread: recovery (state, journal
// tail, stored pipelines and config), the uplink (pending rows), status.
// REQUIRES: external synchronization.
class StoreReader : public StateReader {
 public:
  // read_only: never writes or creates anything (the file must exist).
  static Result<std::unique_ptr<StoreReader>> Open(const std::string& path, bool read_only,
                                                   int busy_timeout_ms = 5000);
  ~StoreReader() override;

  Result<int64_t> CheckpointSeq();
  // Journal rows with seq > after_seq, in seq order.
  Status ForEachJournal(int64_t after_seq, const std::function<Status(const Message&)>& fn);
  // StateReader: every state row of the pipeline, ordered by kind then id.
  Status ForEach(
      std::string_view pipeline_id,
      const std::function<Status(char, std::string_view, std::string_view)>& fn) override;
  // One state row (a spilled key loaded back), or nullopt.
  Result<std::optional<std::string>> GetState(std::string_view pipeline_id, char kind,
                                              std::string_view id);
  Status ForEachDedup(
      const std::function<Status(std::string_view device, std::string_view blob)>& fn);
  Result<std::vector<PipelineRecord>> Pipelines();  // ordered by name
  Result<std::optional<ConfigRecord>> LastConfig();

  // Pending rows with after_pos < pos <= upto_pos, oldest first, at most limit.
  Status ReadOutbox(int64_t after_pos, int64_t upto_pos, int limit, std::vector<OutboxRow>* rows);
  // The newest `limit` pending rows, oldest of them first (live_first).
  Status ReadNewest(int limit, std::vector<OutboxRow>* rows);
  Result<StoreStatus> ReadStatus(int64_t now_ms);

 private:
  struct Impl;
  explicit StoreReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Schema version this build writes (PRAGMA user_version).
inline constexpr int kStoreSchemaVersion = 1;

}  // namespace weir
