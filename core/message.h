// Message: one MQTT message as it arrived at the gateway, before decoding.
// This is what the journal stores and what replay input lines describe
// (DESIGN 8), so a live run and `weir replay` go through the same path.
#pragma once

#include <cstdint>
#include <string>

namespace weir {

struct Message {
  int64_t arrival_ms = 0;   // gateway clock when it arrived (replay: the line's t)
  std::string topic;
  std::string payload;      // raw bytes (JSON text, FlatBuffers, or a status word)
  int64_t journal_seq = 0;  // position in the journal once journaled; 0 = not journaled
};

}  // namespace weir
