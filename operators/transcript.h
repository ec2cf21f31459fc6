// Test helpers: build Configs in C++ and drive an Engine through a transcript
// (processing time in, results out), as DESIGN 8 replay lines would.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "operators/engine.h"

namespace weir::testing {

// The schema of the shared examples: topic s/{site}/{device}/data, fields
// temp and amps, tag room. Attributes: site, device? no: "device" is
// Reading::device, so attributes are [site, room].
inline Config ExampleConfig() {
  Config c;
  c.gateway = "gw";
  c.source.fields = {{"temp", "/temp"}, {"amps", "/amps"}};
  c.source.tags = {{"room", "/room"}};
  c.attributes = {"site", "room"};
  return c;
}

inline AggregateConfig Agg(const std::string& name, AggregateKind kind, const std::string& field,
                           double q = 0) {
  AggregateConfig a;
  a.name = name;
  a.kind = kind;
  a.field = field;
  a.q = q;
  return a;
}

// The examples' usual pipeline "p": tumbling 1m, n = count(*), a_n = count(amps).
inline PipelineConfig ExamplePipeline(std::vector<std::string> key = {"device"}) {
  PipelineConfig p;
  p.name = "p";
  p.key = std::move(key);
  p.window.type = WindowType::kTumbling;
  p.window.size_ms = 60000;
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("a_n", AggregateKind::kCount, "amps")};
  p.event_time.late = LatePolicy::kUpdate;
  p.event_time.allowed_lateness_ms = 3600000;
  return p;
}

struct Field {
  const char* name;
  double value;
};

// Runs a transcript and records results as JSON lines.
class Transcript : public EngineOutput {
 public:
  explicit Transcript(const Config& config, std::vector<int64_t> generations = {})
      : config_(config) {
    auto e = Engine::Create(config_, generations);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    if (e.ok()) engine_ = std::move(e).value();
  }

  void OnResult(int, const ResultRecord& r) override { lines.push_back(ResultJson(r)); }
  void OnLateSide(int, const Reading& r, int64_t ts) override {
    side.push_back(std::string(r.device) + "@" + std::to_string(ts));
  }

  // A line with no message.
  void Tick(int64_t t) { engine_->AdvanceTo(t, this); }
  // A line carrying one reading from `device` (topic site `site`).
  void Data(int64_t t, const std::string& device, int64_t ts, std::vector<Field> fields = {},
            std::string site = "a", const char* room = nullptr) {
    engine_->AdvanceTo(t, this);
    Reading r = Make(device, ts, fields, site, room);
    engine_->OnReading(r, t, this);
  }
  // A reading that is one more element of the current line's message (no time advance).
  void Element(int64_t t, const std::string& device, int64_t ts, std::vector<Field> fields = {}) {
    Reading r = Make(device, ts, fields, "a", nullptr);
    engine_->OnReading(r, t, this);
  }
  void Status(int64_t t, const std::string& device, bool online) {
    engine_->AdvanceTo(t, this);
    engine_->OnStatus(device, online, t, this);
  }
  void Drain() { engine_->Drain(this); }

  Reading Make(const std::string& device, int64_t ts, const std::vector<Field>& fields,
               const std::string& site, const char* room) {
    // Strings must outlive the step: keep them in the transcript.
    strings_.push_back(std::make_unique<std::string>(device));
    Reading r;
    r.device = *strings_.back();
    r.ts_ms = ts;
    for (const Field& f : fields) {
      int i = config_.FieldIndex(f.name);
      EXPECT_GE(i, 0) << f.name;
      if (i >= 0) r.SetField(i, f.value);
    }
    int si = config_.AttributeIndex("site");
    strings_.push_back(std::make_unique<std::string>(site));
    if (si >= 0) r.SetAttribute(si, *strings_.back());
    int ri = config_.AttributeIndex("room");
    if (room && ri >= 0) {
      strings_.push_back(std::make_unique<std::string>(room));
      r.SetAttribute(ri, *strings_.back());
    }
    return r;
  }

  Engine& engine() { return *engine_; }
  std::vector<std::string> lines;
  std::vector<std::string> side;

 private:
  Config config_;
  std::unique_ptr<Engine> engine_;
  std::vector<std::unique_ptr<std::string>> strings_;
};

}  // namespace weir::testing
