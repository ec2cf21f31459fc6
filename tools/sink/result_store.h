// ResultStore: where weir-sink keeps results (DESIGN 12). The rev guard lives
// in the upsert statement itself, so any number of sinks may write one
// database concurrently. Implemented for SQLite and PostgreSQL (libpq).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace weir::sink {

enum class UpsertOutcome {
  kApplied,    // inserted, or replaced a row with a lower rev
  kDuplicate,  // the stored rev is equal: nothing changed
  kStale,      // the stored rev is higher: nothing changed
};

class ResultStore {
 public:
  virtual ~ResultStore() = default;

  // One transaction per MQTT message: Begin, any number of writes, Commit.
  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;

  // A result (`result_json` set) or a retraction (`retracted`, result_json
  // null): stored only when `rev` is higher than the stored one. A retraction
  // keeps the stored result (null when the retraction came first).
  virtual Status Upsert(const std::string& id, int64_t rev, bool retracted,
                        const std::string* result_json, UpsertOutcome* outcome) = 0;
  // A loss record (DESIGN 6.3), kept once per id; *inserted is false for a repeat.
  virtual Status InsertLoss(const std::string& id, const std::string& record_json,
                            bool* inserted) = 0;
};

// `db`: a file path (SQLite) or a postgresql:// URI (libpq); the tables are
// created when missing.
Result<std::unique_ptr<ResultStore>> OpenResultStore(const std::string& db);

}  // namespace weir::sink
