// Fleet: the simulated devices of a scenario and the readings they make, in
// simulated-time order. Pure and deterministic: the same scenario, seed and
// start time give the same readings, whatever the wall clock does.
#pragma once

#include <cstdint>
#include <queue>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tools/sim/scenario.h"

namespace weir::sim {

struct SimReading {
  size_t device = 0;           // index into Fleet::devices()
  int64_t time = 0;            // true (simulated) time of the reading, ms
  int64_t ts = 0;              // event time by the device's clock (time + skew), ms
  bool duplicate = false;      // publish it twice
  int64_t seq = 0;             // per device, from 1
  std::vector<double> values;  // in the group's field order
};

struct SimDevice {
  std::string id;
  std::string topic;
  const DeviceGroup* group = nullptr;
  std::mt19937_64 rng;
  int64_t next_ts = 0;  // true time of the next reading
  int64_t skew_ms = 0;  // device clock minus true time at the start
  int64_t seq = 0;
  std::vector<double> walk;      // random-walk state per field
  std::vector<double> phase_ms;  // sine phase per field
};

class Fleet {
 public:
  // REQUIRES: `scenario` outlives the fleet.
  Fleet(const Scenario& scenario, uint64_t seed, int64_t start_ms);

  // Simulated time of the next reading.
  int64_t NextTime() const { return queue_.top().first; }
  // Makes the next reading (ties in time go in device order).
  SimReading Next();

  // The payload a device publishes: {"ts", "seq", "sent_at", fields...};
  // `sent_at` is true time (the device adds its skew).
  std::string Payload(const SimReading& r, int64_t sent_at) const;
  // One --truth line: {"device", "topic", "ts", "seq", "values": {...}}.
  std::string TruthLine(const SimReading& r) const;

  // What device `device`'s clock reads at true time `time` (skew and drift).
  int64_t DeviceClock(size_t device, int64_t time) const;

  const std::vector<SimDevice>& devices() const { return devices_; }
  int64_t start_ms() const { return start_ms_; }

 private:
  int64_t start_ms_ = 0;
  using Entry = std::pair<int64_t, size_t>;  // (next_ts, device index)
  std::vector<SimDevice> devices_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_;
};

}  // namespace weir::sim
