// Reading: one decoded sensor reading, the unit that flows from ingest into
// the operators. A Reading does not own its strings: every string_view points
// into a buffer owned by the decoder and is valid for one processing step.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace weir {

// Upper bounds on what one source config can declare; `weir validate` rejects
// configs beyond them. They keep Reading a fixed-size value (no allocation).
inline constexpr int kMaxFields = 64;      // source.fields
inline constexpr int kMaxAttributes = 32;  // topic captures + source.tags

struct Reading {
  std::string_view device;  // device identity (DESIGN 4 `source.device`)
  int64_t ts_ms = 0;        // event time as sent, int64 ms (5.5 correction is the operators')
  bool has_seq = false;     // a JSON integer seq was present (6.1)
  int64_t seq = 0;
  bool has_sent_at = false;  // device clock at send time, int64 ms (5.5)
  int64_t sent_at_ms = 0;

  // Numeric fields, indexed as ReadingSchema::fields. Bit i of field_mask is
  // set when field i is present (JSON null counts as absent).
  uint64_t field_mask = 0;
  std::array<double, kMaxFields> field{};

  // Attributes (topic captures, tags), indexed as ReadingSchema::attributes,
  // as canonical key text (DESIGN 4 `key`: numbers in shortest round-trip
  // form without ".0", true/false). Bit i of attribute_mask: present and not null.
  uint32_t attribute_mask = 0;
  std::array<std::string_view, kMaxAttributes> attribute{};
  // Where the reading came from, for `late: side` (DESIGN 5.4), which publishes the raw
  // reading: the JSON payload it was decoded from and its index when the payload is an
  // array (-1: the payload is the reading). Empty for FlatBuffers batches.
  std::string_view json_payload;
  int32_t json_element = -1;

  // Makes a used Reading a fresh one without touching the ~1 KB of field and attribute
  // slots (they count only where their mask bit is set). Every member outside those two
  // arrays is reset here: add new members to it.
  void Clear() {
    device = {};
    ts_ms = 0;
    has_seq = false;
    seq = 0;
    has_sent_at = false;
    sent_at_ms = 0;
    field_mask = 0;
    attribute_mask = 0;
    json_payload = {};
    json_element = -1;
  }

  bool HasField(int i) const { return (field_mask >> i) & 1u; }
  bool HasAttribute(int i) const { return (attribute_mask >> i) & 1u; }
  void SetField(int i, double v) {
    field[i] = v;
    field_mask |= uint64_t{1} << i;
  }
  void SetAttribute(int i, std::string_view v) {
    attribute[i] = v;
    attribute_mask |= uint32_t{1} << i;
  }
};

}  // namespace weir
