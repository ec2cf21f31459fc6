#include "storage/schema.h"

#include <string>

#include "storage/store.h"

namespace weir {
namespace storage_internal {
namespace {

// Version 1. Positions are never reused: the checkpoint, the uplink's cursor
// and loss record ids refer to them. The outbox uses AUTOINCREMENT (any row
// may be deleted); the journal, on the ingest path, saves that extra page
// write per append: its newest row is never trimmed, so max(seq) + 1 only grows.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE journal(
  seq INTEGER PRIMARY KEY,
  arrival_ms INTEGER NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL);
CREATE TABLE state(
  pipeline TEXT NOT NULL,
  kind TEXT NOT NULL,
  id BLOB NOT NULL,
  blob BLOB NOT NULL,
  PRIMARY KEY(pipeline, kind, id)) WITHOUT ROWID;
CREATE TABLE dedup(
  device TEXT PRIMARY KEY,
  blob BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE outbox(
  pos INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  id TEXT,
  rev INTEGER NOT NULL,
  pipeline TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  window_end INTEGER NOT NULL,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  enqueued_ms INTEGER NOT NULL,
  UNIQUE(id, rev));
CREATE TABLE pipelines(
  name TEXT PRIMARY KEY,
  generation INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  definition TEXT NOT NULL,
  updated_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE config(
  version INTEGER PRIMARY KEY AUTOINCREMENT,
  text TEXT NOT NULL,
  applied_ms INTEGER NOT NULL);
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES ('checkpoint', 0), ('lost_total', 0);
)sql";

// migrations[v] takes a database from version v to v + 1 (index 0 creates).
constexpr const char* kMigrations[] = {kSchemaV1};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kStoreSchemaVersion,
              "one migration per schema version");

}  // namespace

Status PrepareSchema(Db* db) {
  RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE", "open: begin schema transaction"));
  auto fail = [db](Status st) {
    db->RollbackQuietly();
    return st;
  };
  auto version = db->QueryInt("PRAGMA user_version");
  if (!version.ok()) return fail(version.status());
  auto app = db->QueryInt("PRAGMA application_id");
  if (!app.ok()) return fail(app.status());
  auto tables = db->QueryInt("SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
  if (!tables.ok()) return fail(tables.status());
  if (*app != kApplicationId && (*app != 0 || *tables != 0)) {
    return fail(FailedPrecondition("open: " + db->path() +
                                   " is an SQLite file but not a weir database; hint: set "
                                   "storage.path to a new file"));
  }
  if (*version > kStoreSchemaVersion) {
    return fail(FailedPrecondition(
        "open: " + db->path() + " has schema version " + std::to_string(*version) +
        ", written by a newer weir (this one knows up to " + std::to_string(kStoreSchemaVersion) +
        "); hint: upgrade weir or use another file"));
  }
  for (int64_t v = *version; v < kStoreSchemaVersion; ++v) {
    Status st = db->Exec(kMigrations[v], "open: migrate schema");
    if (!st.ok()) return fail(st);
  }
  if (*version < kStoreSchemaVersion) {
    std::string set = "PRAGMA user_version = " + std::to_string(kStoreSchemaVersion) +
                      "; PRAGMA application_id = " + std::to_string(kApplicationId);
    Status st = db->Exec(set.c_str(), "open: set schema version");
    if (!st.ok()) return fail(st);
  }
  return db->Exec("COMMIT", "open: commit schema");
}

Result<int> CheckSchema(Db* db) {
  auto version = db->QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  auto app = db->QueryInt("PRAGMA application_id");
  if (!app.ok()) return app.status();
  if (*app != kApplicationId || *version == 0) {
    return FailedPrecondition(db->path() + " is not a weir database (no weir schema in it)");
  }
  if (*version > kStoreSchemaVersion) {
    return FailedPrecondition(db->path() + " has schema version " + std::to_string(*version) +
                              ", written by a newer weir; hint: use that weir's `weir status`");
  }
  return static_cast<int>(*version);
}

}  // namespace storage_internal
}  // namespace weir
