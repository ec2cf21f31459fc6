// The SQLite ResultStore: WAL, a busy timeout so that several sinks can share
// the file, and prepared statements reused for every row.
#include <sqlite3.h>

#include "tools/sink/result_store.h"

namespace weir::sink {
namespace {

constexpr const char* kSchema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS weir_results("
    "  id TEXT PRIMARY KEY, rev INTEGER NOT NULL, retracted BOOLEAN NOT NULL, result);"
    "CREATE TABLE IF NOT EXISTS weir_losses(id TEXT PRIMARY KEY, record);";

// The rev guard is in the statement: a row changes only for a higher rev,
// whatever other writers did in between.
constexpr const char* kUpsert =
    "INSERT INTO weir_results(id, rev, retracted, result) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(id) DO UPDATE SET rev = excluded.rev, retracted = excluded.retracted, "
    "result = CASE WHEN excluded.retracted THEN weir_results.result ELSE excluded.result END "
    "WHERE excluded.rev > weir_results.rev";
constexpr const char* kSelectRev = "SELECT rev FROM weir_results WHERE id = ?1";
constexpr const char* kInsertLoss =
    "INSERT INTO weir_losses(id, record) VALUES(?1, ?2) ON CONFLICT(id) DO NOTHING";

class SqliteResultStore : public ResultStore {
 public:
  ~SqliteResultStore() override {
    sqlite3_finalize(upsert_);
    sqlite3_finalize(select_rev_);
    sqlite3_finalize(insert_loss_);
    sqlite3_close(db_);
  }

  Status Open(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      return Error("open " + path);
    }
    sqlite3_busy_timeout(db_, 10000);
    if (sqlite3_exec(db_, kSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return Error("create tables");
    }
    if (sqlite3_prepare_v2(db_, kUpsert, -1, &upsert_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, kSelectRev, -1, &select_rev_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, kInsertLoss, -1, &insert_loss_, nullptr) != SQLITE_OK) {
      return Error("prepare");
    }
    return Status::Ok();
  }

  // BEGIN IMMEDIATE: take the write lock up front, so a busy database shows
  // up here (and waits for the busy timeout) rather than half-way through.
  Status Begin() override { return Exec("BEGIN IMMEDIATE"); }
  Status Commit() override { return Exec("COMMIT"); }
  void Rollback() override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

  Status Upsert(const std::string& id, int64_t rev, bool retracted, const std::string* result_json,
                UpsertOutcome* outcome) override {
    sqlite3_reset(upsert_);
    sqlite3_bind_text(upsert_, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_int64(upsert_, 2, rev);
    sqlite3_bind_int(upsert_, 3, retracted ? 1 : 0);
    if (result_json) {
      sqlite3_bind_text(upsert_, 4, result_json->data(), static_cast<int>(result_json->size()),
                        SQLITE_STATIC);
    } else {
      sqlite3_bind_null(upsert_, 4);
    }
    int rc = sqlite3_step(upsert_);
    sqlite3_reset(upsert_);
    if (rc != SQLITE_DONE) return Error("upsert " + id);
    if (sqlite3_changes(db_) > 0) {
      *outcome = UpsertOutcome::kApplied;
      return Status::Ok();
    }
    // Not applied: the stored rev is equal or higher. Read it (same
    // transaction) only to tell duplicates from stale revisions.
    sqlite3_reset(select_rev_);
    sqlite3_bind_text(select_rev_, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    rc = sqlite3_step(select_rev_);
    int64_t stored = rc == SQLITE_ROW ? sqlite3_column_int64(select_rev_, 0) : rev;
    sqlite3_reset(select_rev_);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("read rev of " + id);
    *outcome = stored == rev ? UpsertOutcome::kDuplicate : UpsertOutcome::kStale;
    return Status::Ok();
  }

  Status InsertLoss(const std::string& id, const std::string& record_json,
                    bool* inserted) override {
    sqlite3_reset(insert_loss_);
    sqlite3_bind_text(insert_loss_, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_loss_, 2, record_json.data(), static_cast<int>(record_json.size()),
                      SQLITE_STATIC);
    int rc = sqlite3_step(insert_loss_);
    sqlite3_reset(insert_loss_);
    if (rc != SQLITE_DONE) return Error("insert loss " + id);
    *inserted = sqlite3_changes(db_) > 0;
    return Status::Ok();
  }

 private:
  Status Exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Error(sql);
    return Status::Ok();
  }
  Status Error(const std::string& what) {
    int code = db_ ? sqlite3_errcode(db_) : SQLITE_CANTOPEN;
    std::string msg = what + ": " + (db_ ? sqlite3_errmsg(db_) : "cannot open");
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return Unavailable(msg);
    if (code == SQLITE_FULL) return ResourceExhausted(msg);
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return DataLoss(msg);
    return Internal(msg);
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* upsert_ = nullptr;
  sqlite3_stmt* select_rev_ = nullptr;
  sqlite3_stmt* insert_loss_ = nullptr;
};

}  // namespace

// postgres_result_store.cc
Result<std::unique_ptr<ResultStore>> OpenPostgresResultStore(const std::string& uri);

Result<std::unique_ptr<ResultStore>> OpenResultStore(const std::string& db) {
  if (db.rfind("postgresql://", 0) == 0 || db.rfind("postgres://", 0) == 0) {
    return OpenPostgresResultStore(db);
  }
  auto store = std::make_unique<SqliteResultStore>();
  RETURN_IF_ERROR(store->Open(db));
  return std::unique_ptr<ResultStore>(std::move(store));
}

}  // namespace weir::sink
