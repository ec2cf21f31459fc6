// ApplyMessage: one MQTT message from the uplink (a result, a retraction, a
// loss record, or a JSON array of them) applied to a ResultStore in one
// transaction. Separate from the MQTT client so that tests drive it directly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tools/sink/result_store.h"

namespace weir::sink {

struct SinkCounters {
  uint64_t messages = 0;     // MQTT messages committed
  uint64_t upserts = 0;      // results stored (new id or higher rev)
  uint64_t duplicates = 0;   // equal rev: ignored
  uint64_t stale = 0;        // lower rev than stored: ignored
  uint64_t retractions = 0;  // retractions applied
  uint64_t losses = 0;       // new loss records
  uint64_t malformed = 0;    // elements that were not a result, retraction or loss record

  void Add(const SinkCounters& o);
  std::string Line() const;  // "messages=.. upserts=.. ..." for people
  std::string Json() const;  // the --summary object
};

// A row that changed, for the sink's live output.
struct Change {
  enum Kind { kUpsert, kRetraction, kLoss } kind = kUpsert;
  std::string id;
  int64_t rev = 0;
  std::string json;  // the element as received (re-serialized)
};

// Commits the whole message or nothing. On success adds to *counters and
// appends the changes; on a store error rolls back and leaves both alone, so
// the caller can retry the same message.
Status ApplyMessage(ResultStore* store, std::string_view payload, SinkCounters* counters,
                    std::vector<Change>* changes);

}  // namespace weir::sink
