// MessageProcessor: one arriving Message through decode, dedup and the
// engine, as DESIGN 8 orders it. `weir replay` drives it line by line; `weir
// run` drives it from the loop with messages from the MQTT source or the
// journal, so both take the same path.
//
// Per message:
//   1. engine.AdvanceTo(arrival)   (idle release and firing, DESIGN 5.2)
//   2. a status message: engine.OnStatus(device, online)
//      otherwise each accepted reading, in payload order: engine.OnReading
// Rejected payloads and duplicates are counted and never reach the engine,
// so they are not arrivals (DESIGN 5.2, 6.1).
//
// REQUIRES: external synchronization (one thread, the loop, drives it).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "config/config.h"
#include "core/message.h"
#include "core/status.h"
#include "ingest/decoder.h"
#include "ingest/dedup.h"
#include "operators/engine.h"

namespace weir {

// Source-side counters (DESIGN 7).
struct IngestCounters {
  int64_t messages = 0;         // messages processed
  int64_t readings = 0;         // readings handed to the pipelines (weir_readings_total)
  int64_t duplicates = 0;       // dropped by dedup (6.1)
  int64_t dedup_unchecked = 0;  // seq below H-1024, accepted without a check
  int64_t status_messages = 0;  // online/offline messages
  int64_t status_ignored = 0;   // other payloads on the status topic
  std::array<int64_t, kRejectReasonCount> rejected{};  // by RejectReason
};

// What happened to one message, for the caller's (rate-limited) logging.
// Views are valid until the next Process call.
struct MessageOutcome {
  int readings = 0;    // handed to the engine
  int duplicates = 0;
  int rejected = 0;    // payloads or array elements rejected
  RejectReason first_reject = RejectReason::kBadJson;
  std::string_view first_reject_detail;
  bool status_ignored = false;
};

class MessageProcessor {
 public:
  // Takes ownership of `engine` (tests pass a fake).
  // REQUIRES: `config` passed ParseConfig; it must outlive nothing here (copied as needed).
  static Result<std::unique_ptr<MessageProcessor>> Create(const Config& config,
                                                          std::unique_ptr<Engine> engine);
  // Builds the engine with Engine::Create(config, generations).
  static Result<std::unique_ptr<MessageProcessor>> Create(
      const Config& config, const std::vector<int64_t>& generations = {});

  // Handles one message; results go to `out` in emission order. Processing
  // time never goes back: an arrival earlier than the last one is handled at
  // the last one's time (a live clock can step back; replay rejects such lines).
  const MessageOutcome& Process(const Message& message, EngineOutput* out) {
    return Process(message.topic, message.payload, message.arrival_ms, out);
  }
  // The same for a message whose bytes live elsewhere (replay's line buffer).
  const MessageOutcome& Process(std::string_view topic, std::string_view payload,
                                int64_t arrival_ms, EngineOutput* out);
  // Processing time advances with no message (a replay line `{"t": ...}`).
  void AdvanceTo(int64_t now_ms, EngineOutput* out);
  // As if every watermark went to +infinity (`weir replay --drain`).
  void Drain(EngineOutput* out);

  IngestCounters counters() const;
  int64_t now_ms() const { return now_ms_; }
  Engine& engine() { return *engine_; }
  MessageDecoder& decoder() { return *decoder_; }
  Dedup& dedup() { return dedup_; }

 private:
  MessageProcessor(std::unique_ptr<MessageDecoder> decoder, std::unique_ptr<Engine> engine,
                   int64_t max_devices);

  std::unique_ptr<MessageDecoder> decoder_;
  std::unique_ptr<Engine> engine_;
  Dedup dedup_;
  bool started_ = false;
  int64_t now_ms_ = 0;
  int64_t messages_ = 0;
  int64_t readings_ = 0;
  int64_t duplicates_ = 0;
  int64_t dedup_unchecked_ = 0;
  MessageOutcome outcome_;
};

}  // namespace weir
