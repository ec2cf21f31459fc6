// MessageDecoder: turns one MQTT message (topic, payload) into a status event
// or a sequence of Readings (DESIGN 4, 6.1), or rejects it, counting every
// rejection by reason.
//
// JSON payloads are one reading object or an array of them; an array element
// that is not a valid reading is rejected alone and the others proceed.
// FlatBuffers payloads follow schemas/reading.fbs and are verified before any
// field is read.
//
// Memory: the decoder owns every byte a decoded Reading points to (a copy of
// the topic, the parsed payload, number text); those views are valid until
// the next Decode call. Buffers are reused, so steady-state decoding does not
// allocate per reading.
//
// REQUIRES: external synchronization (one thread decodes).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/reading.h"
#include "core/status.h"
#include "ingest/topic.h"

namespace weir {

// Why a payload (or one element of a JSON array) was rejected (DESIGN 6.1).
enum class RejectReason : int {
  kBadJson = 0,       // not valid JSON
  kNotObject,         // payload or array element is not an object
  kBadFlatbuffer,     // failed FlatBuffers verification (or a bad channel index)
  kMissingTimestamp,  // absent, or not a number (ms/s/us), not ISO 8601, or out of range
  kNonNumericField,   // a configured field holds a string, boolean, object or array
  kOversize,          // payload larger than source.max_payload
  kTooManyDevices,    // a new device while source.max_devices are known
  kNoDevice,          // the device identity is missing or empty
  kUnmatchedTopic,    // the topic matches no data or status template
};
inline constexpr int kRejectReasonCount = 9;

// Metric label / log name: "bad_json", "not_object", ...
const char* RejectReasonName(RejectReason reason);

struct DecodeCounters {
  int64_t messages = 0;        // every Decode call
  int64_t readings = 0;        // readings decoded (before dedup)
  int64_t status_messages = 0; // online/offline status messages
  int64_t status_ignored = 0;  // other payloads on the status topic
  std::array<int64_t, kRejectReasonCount> rejected{};
};

// What one Decode call produced. Views are valid until the next Decode.
struct DecodedMessage {
  enum class Kind {
    kData,           // readings (possibly none, when all were rejected)
    kStatus,         // an online/offline status message
    kStatusIgnored,  // the status topic with another payload
  };
  Kind kind = Kind::kData;

  // kStatus
  std::string_view device;
  bool online = false;

  // kData: accepted readings in payload order.
  const Reading* readings = nullptr;
  size_t reading_count = 0;

  // Rejections in this message (whole payload, or array elements).
  int rejected = 0;
  RejectReason first_reject = RejectReason::kBadJson;
  std::string_view first_reject_detail;  // for logs: what was wrong and where
};

class MessageDecoder {
 public:
  // REQUIRES: `config` passed ParseConfig (or is hand-built to the same rules:
  // Config::attributes filled in, JSON pointers start with '/').
  static Result<std::unique_ptr<MessageDecoder>> Create(const Config& config);
  ~MessageDecoder();

  // `arrival_ms` is the gateway clock when the message arrived; it is the
  // timestamp when the source's timestamp is "received".
  const DecodedMessage& Decode(std::string_view topic, std::string_view payload,
                               int64_t arrival_ms);

  // Counts a reading rejected after decoding (too many devices, in dedup).
  void CountReject(RejectReason reason) { ++counters_.rejected[static_cast<int>(reason)]; }

  const DecodeCounters& counters() const { return counters_; }
  const TopicRouter& router() const { return router_; }

 private:
  struct Impl;
  explicit MessageDecoder(std::unique_ptr<Impl> impl, TopicRouter router);

  std::unique_ptr<Impl> impl_;
  TopicRouter router_;
  DecodeCounters counters_;
};

// Parses an ISO 8601 / RFC 3339 date-time ("2023-11-14T22:13:20.123Z",
// "+01:00" or "+0100" offsets, no zone = UTC, ' ' for 'T') to Unix ms,
// truncating sub-millisecond digits toward zero. Exposed for tests.
bool ParseIso8601Ms(std::string_view text, int64_t* ms);

// The JSON text of a reading as its device sent it (the payload, or the payload's array
// element, minified), for `late: side` (DESIGN 5.4). Empty for a reading that did not
// come from JSON (a FlatBuffers batch). Call while the decoded message is valid.
std::string RawJsonReading(const Reading& reading);

}  // namespace weir
