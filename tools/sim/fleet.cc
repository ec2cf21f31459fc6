#include "tools/sim/fleet.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace weir::sim {
namespace {

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

double Round(double v, int decimals) {
  double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

// A stream per device: mixing the seed with the device's index keeps one
// device's readings the same when another group is added after it.
uint64_t DeviceSeed(uint64_t seed, size_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

Fleet::Fleet(const Scenario& scenario, uint64_t seed, int64_t start_ms) : start_ms_(start_ms) {
  for (const DeviceGroup& g : scenario.groups) {
    for (int64_t n = 1; n <= g.count; ++n) {
      SimDevice d;
      d.group = &g;
      d.id = Replace(g.id, "{n}", std::to_string(n));
      d.topic = Replace(g.topic, "{device}", d.id);
      d.rng.seed(DeviceSeed(seed, devices_.size()));
      // Devices do not all report at the same instant.
      d.next_ts = start_ms + std::uniform_int_distribution<int64_t>(0, g.period_ms - 1)(d.rng);
      if (g.clock_skew_ms > 0) {
        d.skew_ms =
            std::uniform_int_distribution<int64_t>(-g.clock_skew_ms, g.clock_skew_ms)(d.rng);
      }
      for (const FieldModel& f : g.fields) {
        d.walk.push_back(f.start);
        double span = f.model == ValueModel::kDutyCycle ? f.on_ms + f.off_ms : f.period_ms;
        d.phase_ms.push_back(std::uniform_real_distribution<double>(0, span)(d.rng));
      }
      queue_.push({d.next_ts, devices_.size()});
      devices_.push_back(std::move(d));
    }
  }
}

SimReading Fleet::Next() {
  auto [ts, index] = queue_.top();
  queue_.pop();
  SimDevice& d = devices_[index];
  SimReading r;
  r.device = index;
  r.time = ts;
  r.ts = DeviceClock(r.device, ts);
  r.seq = ++d.seq;
  const auto& fields = d.group->fields;
  r.values.reserve(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    const FieldModel& f = fields[i];
    double v = f.mean;
    switch (f.model) {
      case ValueModel::kSine: {
        double angle = 2 * M_PI * (static_cast<double>(ts) + d.phase_ms[i]) / f.period_ms;
        v = f.mean + f.amplitude * std::sin(angle);
        if (f.noise > 0) v += std::normal_distribution<double>(0, f.noise)(d.rng);
        break;
      }
      case ValueModel::kRandomWalk: {
        double w = d.walk[i] + std::normal_distribution<double>(0, f.step)(d.rng);
        // Reflect at the bounds so the walk stays inside them.
        if (w > f.max) w = f.max - (w - f.max);
        if (w < f.min) w = f.min + (f.min - w);
        d.walk[i] = std::min(f.max, std::max(f.min, w));
        v = d.walk[i];
        break;
      }
      case ValueModel::kConstant:
        break;
      case ValueModel::kDutyCycle: {
        int64_t cycle = f.on_ms + f.off_ms;
        int64_t at = (ts - start_ms_ + static_cast<int64_t>(d.phase_ms[i])) % cycle;
        v = at < f.on_ms ? f.on_value : f.off_value;
        if (at < f.on_ms && f.noise > 0) {
          v += std::normal_distribution<double>(0, f.noise)(d.rng);
        }
        break;
      }
      case ValueModel::kStep: {
        // Every device steps at the same instants: set points change fleet-wide.
        int64_t k = (ts - start_ms_) / f.every_ms;
        v = f.levels[static_cast<size_t>(k) % f.levels.size()];
        break;
      }
    }
    r.values.push_back(Round(v, f.decimals));
  }
  if (d.group->duplicates > 0) {
    r.duplicate = std::uniform_real_distribution<double>(0, 1)(d.rng) < d.group->duplicates;
  }
  d.next_ts = ts + d.group->period_ms;
  queue_.push({d.next_ts, index});
  return r;
}

int64_t Fleet::DeviceClock(size_t device, int64_t time) const {
  const SimDevice& d = devices_[device];
  double drift = d.group->clock_drift_ppm * 1e-6 * static_cast<double>(time - start_ms_);
  return time + d.skew_ms + static_cast<int64_t>(std::llround(drift));
}

std::string Fleet::Payload(const SimReading& r, int64_t sent_at) const {
  const SimDevice& d = devices_[r.device];
  nlohmann::ordered_json j;
  j["ts"] = r.ts;
  if (d.group->seq) j["seq"] = r.seq;
  if (d.group->sent_at) j["sent_at"] = DeviceClock(r.device, sent_at);
  for (size_t i = 0; i < r.values.size(); ++i) j[d.group->fields[i].name] = r.values[i];
  return j.dump();
}

std::string Fleet::TruthLine(const SimReading& r) const {
  const SimDevice& d = devices_[r.device];
  nlohmann::ordered_json j;
  j["device"] = d.id;
  j["topic"] = d.topic;
  j["ts"] = r.ts;
  j["seq"] = r.seq;
  nlohmann::ordered_json values = nlohmann::ordered_json::object();
  for (size_t i = 0; i < r.values.size(); ++i) values[d.group->fields[i].name] = r.values[i];
  j["values"] = std::move(values);
  return j.dump();
}

}  // namespace weir::sim
