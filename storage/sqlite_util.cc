#include "storage/sqlite_util.h"

#include <utility>

namespace weir {
namespace storage_internal {

Status SqliteError(int rc, std::string_view what, std::string_view sqlite_message,
                   std::string_view path) {
  StatusCode code = StatusCode::kInternal;
  const char* hint = "this is a bug in weir; please report it with the log line";
  switch (rc & 0xff) {
    case SQLITE_FULL:
      code = StatusCode::kResourceExhausted;
      hint =
          "the disk or storage.max_bytes is full: free space on the file system that holds "
          "the database, or raise storage.max_bytes";
      break;
    case SQLITE_IOERR:
      code = StatusCode::kUnavailable;
      hint =
          "the storage device failed a read or write: check the card or disk (dmesg, "
          "free space, mount state); weir retries the commit";
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      code = StatusCode::kDataLoss;
      hint =
          "the database file is damaged or not a weir database: stop weir, move the file "
          "(and its -wal and -shm files) aside for analysis, and start on a fresh file or "
          "restore a backup";
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = StatusCode::kUnavailable;
      hint =
          "another process holds a lock on the database: is a second weir running with the "
          "same storage.path?";
      break;
    case SQLITE_CANTOPEN:
      code = StatusCode::kFailedPrecondition;
      hint = "check that the file exists (or its directory exists and is writable by weir)";
      break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      code = StatusCode::kFailedPrecondition;
      hint = "the database or its directory is not writable by weir: check owner and mode";
      break;
    case SQLITE_NOMEM:
      code = StatusCode::kResourceExhausted;
      hint = "the process ran out of memory";
      break;
    case SQLITE_PROTOCOL:
      code = StatusCode::kUnavailable;
      hint = "WAL locking failed; retrying usually helps (is the file on a network file system?)";
      break;
    default:
      break;
  }
  std::string m;
  m.append(what);
  m.append(": ");
  m.append(sqlite_message.empty() ? sqlite3_errstr(rc) : std::string(sqlite_message));
  m.append(" (");
  const char* name = sqlite3_errstr(rc);
  m.append(name ? name : "sqlite error");
  m.append(", code ");
  m.append(std::to_string(rc));
  m.append(") on ");
  m.append(path);
  m.append("; hint: ");
  m.append(hint);
  return Status(code, std::move(m));
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(s_);
    s_ = o.s_;
    o.s_ = nullptr;
  }
  return *this;
}

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_URI, nullptr);
  if (rc != SQLITE_OK) {
    Status st = SqliteError(rc, "open", raw ? sqlite3_errmsg(raw) : "", path);
    sqlite3_close_v2(raw);
    return st;
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return std::unique_ptr<Db>(new Db(raw, path));
}

Db::~Db() { sqlite3_close_v2(db_); }

Status Db::Error(int rc, std::string_view what) const {
  // sqlite3_errmsg describes the most recent failure, which is this one.
  return SqliteError(rc, what, sqlite3_errmsg(db_), path_);
}

Status Db::Exec(const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, what);
  return Status::Ok();
}

Result<Stmt> Db::Prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "prepare");
  return Stmt(s);
}

Result<int64_t> Db::QueryInt(const char* sql, int64_t def) {
  auto s = Prepare(sql);
  if (!s.ok()) return s.status();
  int rc = s->Step();
  if (rc == SQLITE_ROW) return s->Int(0);
  if (rc == SQLITE_DONE) return def;
  return Error(rc, sql);
}

Status Db::Run(Stmt& s, std::string_view what) {
  int rc = s.Step();
  while (rc == SQLITE_ROW) rc = s.Step();
  Status st = rc == SQLITE_DONE ? Status::Ok() : Error(rc, what);
  s.Reset();
  return st;
}

void Db::RollbackQuietly() {
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

}  // namespace storage_internal
}  // namespace weir
