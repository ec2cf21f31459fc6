// Test helper: a random but reproducible fleet transcript (readings with
// jitter and backlogs, status flaps, quiet spells, ticks) and configs that
// exercise every window type, for tests that compare the engine with itself
// (checkpoint/restore, allocation counting).
#pragma once

#include <random>
#include <string>
#include <vector>

#include "operators/transcript.h"

namespace weir::testing {

struct FleetEvent {
  enum Kind { kTick, kReading, kStatus } kind = kTick;
  int64_t now = 0;
  int device = 0;
  int64_t ts = 0;
  bool online = true;
  bool has_temp = false;
  double temp = 0;
  bool has_amps = false;
  double amps = 0;
};

inline Config FleetConfig() {
  Config c = ExampleConfig();
  PipelineConfig dev = ExamplePipeline({"device"});
  dev.name = "per_device";
  dev.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("avg", AggregateKind::kAvg, "temp"),
                    Agg("sd", AggregateKind::kStddev, "temp"),
                    Agg("p90", AggregateKind::kQuantile, "temp", 0.9),
                    Agg("d", AggregateKind::kDelta, "temp")};
  dev.event_time.max_out_of_orderness_ms = 2000;
  dev.event_time.idle_timeout_ms = 30000;
  dev.event_time.max_hold_ms = 600000;
  dev.event_time.late_emit_delay_ms = 1000;
  dev.event_time.allowed_lateness_ms = 300000;

  PipelineConfig site = ExamplePipeline({"site"});
  site.name = "per_site";
  site.window.type = WindowType::kHopping;
  site.window.size_ms = 60000;
  site.window.hop_ms = 20000;
  site.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("max", AggregateKind::kMax, "amps"),
                     Agg("first", AggregateKind::kFirst, "temp")};
  site.event_time.idle_timeout_ms = 20000;
  site.event_time.allowed_lateness_ms = 120000;
  site.event_time.late_emit_delay_ms = 500;
  WhereCondition w;
  w.name = "temp";
  w.op = CompareOp::kGe;
  w.number = 20.2;
  site.where = {w};

  PipelineConfig sess = ExamplePipeline({"device"});
  sess.name = "sessions";
  sess.window.type = WindowType::kSession;
  sess.window.gap_ms = 20000;
  sess.window.max_duration_ms = 300000;
  sess.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("l", AggregateKind::kLast, "temp"),
                     Agg("p50", AggregateKind::kQuantile, "temp", 0.5),
                     Agg("sum", AggregateKind::kSum, "amps")};
  sess.event_time.idle_timeout_ms = 40000;
  sess.event_time.allowed_lateness_ms = 200000;
  sess.event_time.late_emit_delay_ms = 0;

  PipelineConfig all = ExamplePipeline({});
  all.name = "all";
  all.event_time.late = LatePolicy::kSide;
  all.event_time.allowed_lateness_ms = 0;
  all.event_time.idle_timeout_ms = 10000;
  c.pipelines = {dev, site, sess, all};
  return c;
}

// `steps` events over `devices` devices. Temperatures stay in [20, 21] so
// sketches span a handful of buckets.
inline std::vector<FleetEvent> MakeFleet(uint64_t seed, int devices, int steps) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<FleetEvent> events;
  const size_t n = static_cast<size_t>(devices);
  std::vector<int64_t> skew(n), silent_until(n, 0), backlog(n, 0), offline_at(n, 0);
  std::vector<bool> offline(n, false);
  for (auto& s : skew) s = static_cast<int64_t>(u(rng) * 6000) - 3000;
  int64_t now = 1000000;
  for (int i = 0; i < steps; ++i) {
    now += static_cast<int64_t>(u(rng) * 400);
    FleetEvent e;
    e.now = now;
    double p = u(rng);
    size_t d = static_cast<size_t>(u(rng) * devices) % n;
    e.device = static_cast<int>(d);
    if (p < 0.005) {
      e.kind = FleetEvent::kTick;  // a quiet spell for everyone
      now += static_cast<int64_t>(u(rng) * 40000);
      e.now = now;
    } else if (p < 0.015) {
      e.kind = FleetEvent::kStatus;
      offline[d] = !offline[d];
      e.online = !offline[d];
      if (offline[d])
        offline_at[d] = now;
      else
        backlog[d] = offline_at[d];  // replays what it measured while away
    } else {
      if (offline[d] || now < silent_until[d]) continue;
      if (d == 0 && u(rng) < 0.7) continue;  // device 0 reports rarely
      if (u(rng) < 0.02) silent_until[d] = now + 20000 + static_cast<int64_t>(u(rng) * 12000);
      e.kind = FleetEvent::kReading;
      int64_t ts = now + skew[d] - static_cast<int64_t>(u(rng) * 2000);
      if (backlog[d] != 0) {
        // Backlog replays in order, faster than real time, until caught up.
        ts = backlog[d];
        backlog[d] += 1000 + static_cast<int64_t>(u(rng) * 2000);
        if (backlog[d] >= now) backlog[d] = 0;
      } else if (u(rng) < 0.06) {
        ts -= static_cast<int64_t>(u(rng) * 150000);  // a straggler
      }
      e.ts = ts;
      e.has_temp = u(rng) < 0.9;
      e.temp = 20 + std::floor(u(rng) * 1000) / 1000;
      e.has_amps = u(rng) < 0.5;
      e.amps = std::floor(u(rng) * 100) / 10;
    }
    events.push_back(e);
  }
  return events;
}

// Plays events [from, to) into an engine, reusing one Reading.
class FleetPlayer {
 public:
  explicit FleetPlayer(const Config& config, int devices) : config_(config) {
    for (int i = 0; i < devices; ++i) {
      names_.push_back("dev-" + std::to_string(i));
      sites_.push_back(i % 3 == 0 ? "north" : (i % 3 == 1 ? "south" : "east"));
    }
    temp_ = config_.FieldIndex("temp");
    amps_ = config_.FieldIndex("amps");
    site_ = config_.AttributeIndex("site");
  }
  void Play(Engine& engine, const std::vector<FleetEvent>& events, size_t from, size_t to,
            EngineOutput* out) {
    for (size_t i = from; i < to; ++i) {
      const FleetEvent& e = events[i];
      engine.AdvanceTo(e.now, out);
      if (e.kind == FleetEvent::kStatus) {
        engine.OnStatus(names_[static_cast<size_t>(e.device)], e.online, e.now, out);
      } else if (e.kind == FleetEvent::kReading) {
        Reading& r = reading_;
        r.field_mask = 0;
        r.attribute_mask = 0;
        r.device = names_[static_cast<size_t>(e.device)];
        r.ts_ms = e.ts;
        if (e.has_temp) r.SetField(temp_, e.temp);
        if (e.has_amps) r.SetField(amps_, e.amps);
        r.SetAttribute(site_, sites_[static_cast<size_t>(e.device)]);
        engine.OnReading(r, e.now, out);
      }
    }
  }

 private:
  Config config_;
  std::vector<std::string> names_;
  std::vector<std::string> sites_;
  int temp_, amps_, site_;
  Reading reading_;
};

}  // namespace weir::testing

namespace weir::testing {

// A random pipeline set: window type and sizes, event-time settings, late
// policy and key drawn from `seed`, over the FleetConfig schema.
inline Config RandomConfig(uint64_t seed) {
  std::mt19937_64 rng(seed * 7919 + 1);
  auto pick = [&](std::initializer_list<int64_t> xs) {
    std::vector<int64_t> v(xs);
    return v[static_cast<size_t>(rng() % v.size())];
  };
  Config c = FleetConfig();
  std::vector<std::vector<std::string>> keys = {{"device"}, {"site"}, {}, {"site", "device"}};
  for (auto& p : c.pipelines) {
    int type = static_cast<int>(rng() % 3);
    p.window = WindowConfig{};
    if (type == 0) {
      p.window.type = WindowType::kTumbling;
      p.window.size_ms = pick({10000, 60000});
      p.window.offset_ms = pick({0, 7000});
    } else if (type == 1) {
      p.window.type = WindowType::kHopping;
      p.window.hop_ms = pick({10000, 20000});
      p.window.size_ms = p.window.hop_ms * pick({2, 3});
      p.window.offset_ms = pick({0, -3000});
    } else {
      p.window.type = WindowType::kSession;
      p.window.gap_ms = pick({5000, 20000});
      p.window.max_duration_ms = pick({0, 60000, 300000});
    }
    p.key = keys[static_cast<size_t>(rng() % keys.size())];
    p.event_time.max_out_of_orderness_ms = pick({0, 1500});
    p.event_time.idle_timeout_ms = pick({0, 5000, 30000});
    p.event_time.max_hold_ms = pick({20000, 600000});
    p.event_time.allowed_lateness_ms = pick({0, 30000, 300000});
    p.event_time.late = static_cast<LatePolicy>(pick({0, 1, 1, 2}));
    p.event_time.late_emit_delay_ms = pick({0, 700, 5000});
  }
  return c;
}

}  // namespace weir::testing
