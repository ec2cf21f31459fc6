// Scenario: what weir-sim simulates (DESIGN 9), parsed from a JSON file.
//
//   {"duration": "1h",
//    "groups": [{"count": 10, "id": "d{n}", "topic": "sensors/{device}/telemetry",
//                "format": "json", "period": "1s", "seq": true, "sent_at": true,
//                "clock_skew": "2s", "duplicates": 0.01,
//                "fields": {"t": {"model": "sine", "mean": 21, "amplitude": 3,
//                                 "period": "10m", "noise": 0.2, "decimals": 2},
//                           "h": {"model": "random_walk", "start": 45, "step": 0.5,
//                                 "min": 20, "max": 80}}}]}
//
// `{n}` in `id` is the device's number in its group (from 1); `{device}` in
// `topic` is the device id. Payloads are {"ts", "seq", "sent_at", fields...}
// in that order. Durations take the config's units ("500ms", "1s", "10m").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace weir::sim {

enum class ValueModel { kSine, kRandomWalk, kConstant, kDutyCycle, kStep };

struct FieldModel {
  std::string name;  // the payload key
  ValueModel model = ValueModel::kSine;
  double mean = 0;                  // sine: centre; constant: the value
  double amplitude = 0;             // sine
  int64_t period_ms = 3600 * 1000;  // sine
  double noise = 0;                 // sine: standard deviation of added normal noise
  double start = 0;                 // random walk: first value
  double step = 1;                  // random walk: standard deviation of each step
  double min = -1e300;              // random walk: reflected at the bounds
  double max = 1e300;
  // duty_cycle: `on_value` (+ noise) for `on_ms`, then `off_value` for
  // `off_ms`, repeating, each device at its own phase (machine runs, sessions).
  double on_value = 1;
  double off_value = 0;
  int64_t on_ms = 0;
  int64_t off_ms = 0;
  // step: holds each of `levels` for `every_ms`, in turn (set points, tariffs).
  std::vector<double> levels;
  int64_t every_ms = 3600 * 1000;
  int decimals = 2;  // values are rounded to this many decimals
};

// A device's status messages (its LWT as weir sees it, DESIGN 4 source.status).
struct StatusConfig {
  std::string topic;  // with {device}; empty = no status messages
  std::string online = "online";
  std::string offline = "offline";
};

// A period during which a share of the group is disconnected and buffers.
struct Disconnect {
  int64_t at_ms = 0;    // from the start of the run
  int64_t for_ms = 0;   // length of the outage
  double fraction = 1;  // share of the group's devices affected (drawn per device)
};

struct DeviceGroup {
  int64_t count = 1;
  std::string id = "d{n}";
  std::string topic = "sensors/{device}/telemetry";
  std::string format = "json";
  int64_t period_ms = 1000;
  bool seq = true;
  bool sent_at = true;
  // Each device's clock is off by a fixed amount drawn from
  // [-clock_skew_ms, +clock_skew_ms]: its ts and sent_at carry that error.
  int64_t clock_skew_ms = 0;
  // Probability that a reading is published twice (same payload), as a
  // device does when its PUBACK got lost.
  double duplicates = 0;
  // The device clock also runs fast (+) or slow (-) by this many parts per
  // million, so its error grows over the run.
  double clock_drift_ppm = 0;
  // Each message leaves up to this long after it was made (uniform), so
  // messages of one device may arrive out of order.
  int64_t jitter_ms = 0;
  // Readings per message: a JSON array or one FlatBuffers batch when above 1.
  int64_t batch = 1;
  StatusConfig status;
  std::vector<Disconnect> disconnects;
  // Readings a device keeps while disconnected (a ring buffer: the oldest is
  // dropped when full, as firmware does).
  int64_t buffer = 10000;
  std::vector<FieldModel> fields;
};

struct Scenario {
  int64_t duration_ms = 0;  // simulated time; 0 = until a signal
  std::vector<DeviceGroup> groups;
};

// "250ms", "10s", "5m", "2h", "1d" or integer ms (the config's units).
std::optional<int64_t> ParseDuration(const std::string& text);

Result<Scenario> ParseScenario(const std::string& text);
Result<Scenario> LoadScenario(const std::string& path);

}  // namespace weir::sim
