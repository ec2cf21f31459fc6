#include "tools/sim/simulation.h"

#include <flatbuffers/flatbuffers.h>

#include <algorithm>
#include <climits>

#include "schemas/reading_generated.h"

namespace weir::sim {
namespace {

std::string WithDevice(std::string s, const std::string& id) {
  for (size_t pos = s.find("{device}"); pos != std::string::npos;
       pos = s.find("{device}", pos + id.size())) {
    s.replace(pos, 8, id);
  }
  return s;
}

}  // namespace

Simulation::Simulation(const Scenario& scenario, uint64_t seed, int64_t start_ms, int64_t end_ms)
    : fleet_(scenario, seed, start_ms), end_ms_(end_ms), now_(start_ms) {
  const auto& devices = fleet_.devices();
  state_.resize(devices.size());
  rng_.reserve(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    // Separate from the value streams, so adding jitter or an outage to a
    // scenario leaves every generated value as it was.
    rng_.emplace_back(seed ^ (0xD1B54A32D192ED03ULL * (i + 1)));
    const DeviceGroup& g = *devices[i].group;
    if (!g.status.topic.empty()) Push(start_ms, kReconnect, i, {});
    for (const Disconnect& dc : g.disconnects) {
      if (dc.fraction < 1 && std::uniform_real_distribution<double>(0, 1)(rng_[i]) >= dc.fraction) {
        continue;
      }
      Push(start_ms + dc.at_ms, kOffline, i, {});
      Push(start_ms + dc.at_ms + dc.for_ms, kReconnect, i, {});
    }
  }
}

void Simulation::Push(int64_t time, Kind kind, size_t device, std::vector<SimReading> readings) {
  events_.push(Event{std::max(time, now_), order_++, kind, device, std::move(readings)});
}

void Simulation::Fill() {
  while (fleet_.NextTime() < end_ms_ &&
         (events_.empty() || fleet_.NextTime() <= events_.top().time)) {
    SimReading r = fleet_.Next();
    size_t d = r.device;
    const DeviceGroup& g = *fleet_.devices()[d].group;
    DeviceState& st = state_[d];
    st.batch.push_back(std::move(r));
    if (static_cast<int64_t>(st.batch.size()) >= g.batch) {
      int64_t jitter =
          g.jitter_ms > 0 ? std::uniform_int_distribution<int64_t>(0, g.jitter_ms)(rng_[d]) : 0;
      int64_t made = st.batch.back().time;
      Push(made + jitter, kData, d, std::move(st.batch));
      st.batch.clear();
    }
  }
  if (fleet_.NextTime() >= end_ms_ && !flushed_) {
    // The run ends: what sits in a partial batch goes out as it is.
    flushed_ = true;
    for (size_t d = 0; d < state_.size(); ++d) {
      if (state_[d].batch.empty()) continue;
      int64_t made = state_[d].batch.back().time;
      Push(made, kData, d, std::move(state_[d].batch));
      state_[d].batch.clear();
    }
  }
}

void Simulation::Buffer(size_t device, std::vector<SimReading> readings) {
  DeviceState& st = state_[device];
  size_t cap = static_cast<size_t>(fleet_.devices()[device].group->buffer);
  for (SimReading& r : readings) {
    if (cap == 0) {
      truth_.emplace_back(std::move(r), Fate::kDropped);
      ++dropped_;
      continue;
    }
    if (st.buffered.size() >= cap) {
      truth_.emplace_back(std::move(st.buffered.front()), Fate::kDropped);
      st.buffered.pop_front();
      ++dropped_;
    }
    st.buffered.push_back(std::move(r));
  }
}

void Simulation::Emit(int64_t time, size_t device, std::vector<SimReading> readings) {
  SimMessage m;
  m.time = time;
  m.device = device;
  m.topic = fleet_.devices()[device].topic;
  m.payload = Encode(device, readings, time, &m.binary);
  // A duplicate is the same payload published again right away, as a
  // device does when it did not see the PUBACK.
  m.copies = readings.front().duplicate ? 2 : 1;
  m.readings = std::move(readings);
  ready_.push_back(std::move(m));
}

bool Simulation::Next(SimMessage* out, std::vector<std::pair<SimReading, Fate>>* truth) {
  while (ready_.empty()) {
    Fill();
    if (events_.empty()) break;
    Event ev = events_.top();
    events_.pop();
    now_ = ev.time;
    const SimDevice& dev = fleet_.devices()[ev.device];
    const DeviceGroup& g = *dev.group;
    DeviceState& st = state_[ev.device];
    auto status = [&](const std::string& text) {
      if (g.status.topic.empty()) return;
      SimMessage m;
      m.time = ev.time;
      m.device = ev.device;
      m.topic = WithDevice(g.status.topic, dev.id);
      m.payload = text;
      m.status = true;
      ready_.push_back(std::move(m));
    };
    switch (ev.kind) {
      case kData:
        if (st.offline_depth > 0) {
          Buffer(ev.device, std::move(ev.readings));
        } else {
          Emit(ev.time, ev.device, std::move(ev.readings));
        }
        break;
      case kOffline:
        if (ev.time >= end_ms_) break;
        if (st.offline_depth++ == 0) status(g.status.offline);
        break;
      case kReconnect:
        // An outage still on at the end leaves its backlog unsent.
        if (ev.time >= end_ms_) break;
        if (st.offline_depth > 0) --st.offline_depth;
        if (st.offline_depth > 0) break;
        status(g.status.online);
        // The backlog goes first, oldest first, in full batches.
        while (!st.buffered.empty()) {
          std::vector<SimReading> chunk;
          while (!st.buffered.empty() && static_cast<int64_t>(chunk.size()) < g.batch) {
            chunk.push_back(std::move(st.buffered.front()));
            st.buffered.pop_front();
          }
          Emit(ev.time, ev.device, std::move(chunk));
        }
        break;
    }
  }
  truth->insert(truth->end(), std::make_move_iterator(truth_.begin()),
                std::make_move_iterator(truth_.end()));
  truth_.clear();
  if (ready_.empty()) return false;
  *out = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

void Simulation::Finish(int64_t now, std::vector<std::pair<SimReading, Fate>>* truth) {
  // Everything made but not handed out: backlogs of outages still on, and,
  // when the run was stopped early, messages not yet due.
  auto unsent = [&](std::vector<SimReading>& rs) {
    for (SimReading& r : rs) {
      if (r.time <= now) truth->emplace_back(std::move(r), Fate::kUnsent);
    }
    rs.clear();
  };
  for (SimMessage& m : ready_) unsent(m.readings);
  ready_.clear();
  while (!events_.empty()) {
    Event ev = events_.top();
    events_.pop();
    unsent(ev.readings);
  }
  for (DeviceState& st : state_) {
    for (SimReading& r : st.buffered) truth->emplace_back(std::move(r), Fate::kUnsent);
    st.buffered.clear();
    unsent(st.batch);
  }
}

std::string Simulation::Encode(size_t device, const std::vector<SimReading>& readings,
                               int64_t sent_at, bool* binary) const {
  const SimDevice& d = fleet_.devices()[device];
  const DeviceGroup& g = *d.group;
  *binary = g.format == "flatbuffers";
  if (!*binary) {
    if (readings.size() == 1 && g.batch == 1) return fleet_.Payload(readings[0], sent_at);
    std::string out = "[";
    for (size_t i = 0; i < readings.size(); ++i) {
      if (i > 0) out += ',';
      out += fleet_.Payload(readings[i], sent_at);
    }
    out += ']';
    return out;
  }
  // One sample per field and reading; samples of a reading share its seq
  // (or, without seq, its ts), which is how weir groups them back.
  flatbuffers::FlatBufferBuilder b(256 + readings.size() * g.fields.size() * 32);
  std::vector<flatbuffers::Offset<flatbuffers::String>> names;
  for (const FieldModel& f : g.fields) names.push_back(b.CreateString(f.name));
  std::vector<fb::Sample> samples;
  samples.reserve(readings.size() * g.fields.size());
  for (const SimReading& r : readings) {
    for (size_t i = 0; i < r.values.size(); ++i) {
      samples.emplace_back(r.ts, g.seq ? r.seq : 0, static_cast<uint16_t>(i), r.values[i]);
    }
  }
  auto batch = fb::CreateBatch(b, b.CreateString(d.id), b.CreateVector(names),
                               b.CreateVectorOfStructs(samples),
                               g.sent_at ? fleet_.DeviceClock(device, sent_at) : 0, g.seq);
  fb::FinishBatchBuffer(b, batch);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

}  // namespace weir::sim
