// Helpers for storage tests: a temp dir removed afterwards, blocking commits.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <string>

#include "storage/store.h"

namespace weir {
namespace storage_test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "weir-storage-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (p == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Commits and waits for the completion (tests only: the loop never waits).
inline CommitResult CommitAndWait(Store* store, CommitBatch batch) {
  std::promise<CommitResult> p;
  auto f = p.get_future();
  store->Commit(std::move(batch), [&p](CommitResult&& r) { p.set_value(std::move(r)); });
  return f.get();
}

inline DeleteResult DeleteAndWait(Store* store, std::vector<OutboxKey> keys) {
  std::promise<DeleteResult> p;
  auto f = p.get_future();
  store->DeleteDelivered(std::move(keys), [&p](const DeleteResult& r) { p.set_value(r); });
  return f.get();
}

inline OutboxEntry MakeResult(const std::string& id, int64_t rev, int64_t start, int64_t end,
                              std::string payload = "") {
  OutboxEntry e;
  e.kind = OutboxKind::kResult;
  e.id = id;
  e.rev = rev;
  e.pipeline = "climate";
  e.window_start = start;
  e.window_end = end;
  e.payload = payload.empty() ? "{\"id\":\"" + id + "\",\"rev\":" + std::to_string(rev) + "}"
                              : std::move(payload);
  e.created_ms = start;
  return e;
}

// Runs one SQL query returning a single value as text, on a separate raw
// connection (to check what is really in the file).
inline std::string QueryText(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out = "<error>";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
      int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        const unsigned char* t = sqlite3_column_text(s, 0);
        out = t ? reinterpret_cast<const char*>(t) : "<null>";
      } else if (rc == SQLITE_DONE) {
        out = "<none>";
      }
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return out;
}

}  // namespace storage_test
}  // namespace weir
