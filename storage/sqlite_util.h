// Internal to storage/: a thin owner of sqlite3 connections and statements,
// and the mapping of SQLite errors to Status. Only storage/ includes sqlite3.h.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace weir {
namespace storage_internal {

// A Status for an SQLite failure: the code says whether retrying can help,
// the message carries what failed, SQLite's own message, the file, and a
// hint a user can act on. `rc` may be an extended result code.
Status SqliteError(int rc, std::string_view what, std::string_view sqlite_message,
                   std::string_view path);

// A prepared statement, reset on every Reset(). Text and blob parameters are
// bound without copying: they must outlive the Step() calls.
class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }

  sqlite3_stmt* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void BindNull(int i) { sqlite3_bind_null(s_, i); }
  void BindText(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void BindBlob(int i, std::string_view v) {
    // A zero-length blob must not bind as NULL (NOT NULL columns).
    sqlite3_bind_blob(s_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  int Step() { return sqlite3_step(s_); }

  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string_view Text(int col) const {
    const char* p = reinterpret_cast<const char*>(sqlite3_column_blob(s_, col));
    int n = sqlite3_column_bytes(s_, col);
    return p ? std::string_view(p, static_cast<size_t>(n)) : std::string_view();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// One connection. REQUIRES: used by one thread at a time.
class Db {
 public:
  // flags: SQLITE_OPEN_* (URI filenames are always enabled).
  static Result<std::unique_ptr<Db>> Open(const std::string& path, int flags, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  // The Status for a failed call on this connection (uses sqlite3_errmsg).
  Status Error(int rc, std::string_view what) const;
  Status Exec(const char* sql, std::string_view what);
  Result<Stmt> Prepare(std::string_view sql);
  // Runs a statement that returns one integer (a PRAGMA, count(*)); `def` if no row.
  Result<int64_t> QueryInt(const char* sql, int64_t def = 0);
  // Steps a statement to SQLITE_DONE (resets it after).
  Status Run(Stmt& s, std::string_view what);
  // Rolls back when a transaction is open; never fails loudly (used on error paths).
  void RollbackQuietly();

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace storage_internal
}  // namespace weir
