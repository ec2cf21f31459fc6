// Messages of a simulation: batching, status, outages with a bounded buffer,
// FlatBuffers batches, jitter, duty cycles and steps. Expected values are
// worked out from the scenarios by hand.
#include "tools/sim/simulation.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "schemas/reading_generated.h"

namespace weir::sim {
namespace {

constexpr int64_t kStart = 1700000000000;

Scenario Parse(const std::string& text) {
  auto s = ParseScenario(text);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

struct SimRun {
  std::vector<SimMessage> messages;
  std::vector<std::pair<SimReading, Fate>> truth;
};

SimRun RunAll(const Scenario& s, int64_t duration_ms, uint64_t seed = 1) {
  Simulation sim(s, seed, kStart, kStart + duration_ms);
  SimRun run;
  SimMessage m;
  while (sim.Next(&m, &run.truth)) {
    // As weir-sim does once a message is out.
    for (const SimReading& r : m.readings) run.truth.emplace_back(r, Fate::kPublished);
    run.messages.push_back(m);
  }
  sim.Finish(kStart + duration_ms, &run.truth);
  return run;
}

TEST(SimulationTest, BatchesAreJsonArraysAndTheLastPartialBatchGoesOut) {
  Scenario s = Parse(R"({"groups": [{"count": 1, "period": "1s", "batch": 3,
      "fields": {"v": {"model": "constant", "value": 7}}}]})");
  SimRun run = RunAll(s, 10000);  // 10 readings: 3 + 3 + 3 + 1
  ASSERT_EQ(run.messages.size(), 4u);
  std::vector<size_t> sizes;
  int64_t seq = 0;
  for (const SimMessage& m : run.messages) {
    auto j = nlohmann::json::parse(m.payload);
    ASSERT_TRUE(j.is_array());
    sizes.push_back(j.size());
    for (const auto& r : j) {
      EXPECT_EQ(r["seq"], ++seq);
      EXPECT_EQ(r["v"], 7);
      // sent_at is when the message left: with the last reading of its batch.
      EXPECT_EQ(r["sent_at"], j.back()["ts"]);
    }
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 3, 1}));
  EXPECT_EQ(run.truth.size(), 10u);
}

TEST(SimulationTest, OutageBuffersDropsOldestAndReplaysAfterOnline) {
  // Readings at o + k s (0 <= o < 1 s), k = 0..29; the outage [5 s, 15 s)
  // holds k = 5..14, ten readings, of which a 4-reading buffer keeps the
  // newest four (seq 12..15) and drops six (seq 6..11).
  Scenario s = Parse(R"({"groups": [{"count": 1, "id": "m1", "period": "1s", "buffer": 4,
      "status": {"topic": "sensors/{device}/status"},
      "disconnects": [{"at": "5s", "for": "10s"}],
      "fields": {"v": {"model": "constant", "value": 1}}}]})");
  SimRun run = RunAll(s, 30000);
  std::vector<std::string> order;  // "online", "offline" or the seq
  for (const SimMessage& m : run.messages) {
    if (m.status) {
      EXPECT_EQ(m.topic, "sensors/m1/status");
      order.push_back(m.payload);
    } else {
      order.push_back(std::to_string(nlohmann::json::parse(m.payload)["seq"].get<int>()));
    }
  }
  std::vector<std::string> want = {"online",  "1",      "2",  "3",  "4",  "5",
                                   "offline", "online", "12", "13", "14", "15"};
  for (int k = 16; k <= 30; ++k) want.push_back(std::to_string(k));
  EXPECT_EQ(order, want);
  EXPECT_EQ(run.messages[6].time, kStart + 5000);   // offline at the outage's start
  EXPECT_EQ(run.messages[7].time, kStart + 15000);  // online at its end
  EXPECT_EQ(run.messages[8].time, kStart + 15000);  // the backlog right after
  std::set<int64_t> dropped;
  size_t published = 0;
  for (const auto& [r, fate] : run.truth) {
    if (fate == Fate::kDropped) dropped.insert(r.seq);
    if (fate == Fate::kPublished) ++published;
  }
  EXPECT_EQ(dropped, (std::set<int64_t>{6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(published, 24u);
}

TEST(SimulationTest, OutageStillOnAtTheEndLeavesTheBacklogUnsent) {
  Scenario s = Parse(R"({"groups": [{"count": 1, "period": "1s",
      "disconnects": [{"at": "5s", "for": "1h"}],
      "fields": {"v": {"model": "constant", "value": 1}}}]})");
  SimRun run = RunAll(s, 10000);
  EXPECT_EQ(run.messages.size(), 5u);
  size_t unsent = 0;
  for (const auto& [r, fate] : run.truth) unsent += fate == Fate::kUnsent;
  EXPECT_EQ(unsent, 5u);
}

TEST(SimulationTest, FlatBuffersBatchAsWeirDecodesIt) {
  Scenario s = Parse(R"({"groups": [{"count": 1, "id": "fb1", "format": "flatbuffers",
      "period": "1s", "batch": 2,
      "fields": {"t": {"model": "constant", "value": 20.5}, "h": {"model": "constant", "value": 40}}}]})");
  SimRun run = RunAll(s, 4000);
  ASSERT_EQ(run.messages.size(), 2u);
  int64_t seq = 0;
  for (const SimMessage& m : run.messages) {
    ASSERT_TRUE(m.binary);
    const auto* data = reinterpret_cast<const uint8_t*>(m.payload.data());
    flatbuffers::Verifier verifier(data, m.payload.size());
    ASSERT_TRUE(fb::VerifyBatchBuffer(verifier));
    ASSERT_TRUE(fb::BatchBufferHasIdentifier(data));
    const fb::Batch* b = fb::GetBatch(data);
    EXPECT_EQ(b->device()->str(), "fb1");
    ASSERT_EQ(b->channels()->size(), 2u);
    EXPECT_EQ(b->channels()->Get(0)->str(), "t");
    EXPECT_EQ(b->channels()->Get(1)->str(), "h");
    EXPECT_TRUE(b->has_seq());
    ASSERT_EQ(b->samples()->size(), 4u);  // 2 readings x 2 channels
    for (size_t r = 0; r < 2; ++r) {
      ++seq;
      const fb::Sample* t = b->samples()->Get(2 * r);
      const fb::Sample* h = b->samples()->Get(2 * r + 1);
      EXPECT_EQ(t->seq(), seq);
      EXPECT_EQ(h->seq(), seq);  // one reading: both samples share its seq and ts
      EXPECT_EQ(t->ts(), h->ts());
      EXPECT_EQ(t->channel(), 0);
      EXPECT_EQ(h->channel(), 1);
      EXPECT_EQ(t->value(), 20.5);
      EXPECT_EQ(h->value(), 40);
    }
    EXPECT_EQ(b->sent_at(), b->samples()->Get(3)->ts());
  }
}

TEST(SimulationTest, JitterReordersButLosesNothing) {
  Scenario s = Parse(R"({"groups": [{"count": 2, "period": "1s", "jitter": "5s",
      "fields": {"v": {"model": "constant", "value": 1}}}]})");
  SimRun run = RunAll(s, 100000, 3);
  std::map<size_t, std::vector<int64_t>> seqs;
  int64_t prev = 0;
  for (const SimMessage& m : run.messages) {
    EXPECT_GE(m.time, prev);  // messages leave in time order
    prev = m.time;
    EXPECT_LE(m.time - m.readings[0].time, 5000);
    seqs[m.device].push_back(m.readings[0].seq);
  }
  bool reordered = false;
  for (auto& [d, v] : seqs) {
    ASSERT_EQ(v.size(), 100u);
    for (size_t i = 1; i < v.size(); ++i) reordered |= v[i] < v[i - 1];
    std::sort(v.begin(), v.end());
    for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], static_cast<int64_t>(i + 1));
  }
  EXPECT_TRUE(reordered);
}

TEST(SimulationTest, DutyCycleIsOnAThirdOfTheTimeAndStepsFollowTheLevels) {
  // 300 s = ten 30 s cycles, a reading a second: exactly 10 readings of each
  // cycle fall in its 10 s on-phase, whatever the device's phase.
  Scenario s = Parse(R"({"groups": [{"count": 1, "period": "1s",
      "fields": {"i": {"model": "duty_cycle", "on": "10s", "off": "20s", "on_value": 5, "off_value": 0},
                 "sp": {"model": "step", "levels": [1, 2, 3], "every": "10s"}}}]})");
  SimRun run = RunAll(s, 300000);
  ASSERT_EQ(run.messages.size(), 300u);
  int on = 0;
  for (const SimMessage& m : run.messages) {
    const SimReading& r = m.readings[0];
    if (r.values[0] == 5) {
      ++on;
    } else {
      EXPECT_EQ(r.values[0], 0);
    }
    EXPECT_EQ(r.values[1], static_cast<double>(1 + ((r.time - kStart) / 10000) % 3));
  }
  EXPECT_EQ(on, 100);
}

TEST(SimulationTest, ClockDriftGrowsWithTime) {
  // 1000 ppm: 1 ms per second, so 100 ms after 100 s.
  Scenario s = Parse(R"({"groups": [{"count": 1, "period": "1s", "clock_drift_ppm": 1000,
      "fields": {"v": {"model": "constant", "value": 1}}}]})");
  SimRun run = RunAll(s, 101000);
  const SimReading& last = run.messages.back().readings[0];
  EXPECT_EQ(last.ts - last.time, (last.time - kStart + 500) / 1000);
}

TEST(SimulationTest, BadScenariosAreRejectedWithTheirPlace) {
  EXPECT_FALSE(ParseScenario(R"({"groups": [{"format": "xml"}]})").ok());
  EXPECT_FALSE(ParseScenario(R"({"groups": [{"batch": 0}]})").ok());
  EXPECT_FALSE(ParseScenario(R"({"groups": [{"batch": "3"}]})").ok());  // an error, not a throw
  EXPECT_FALSE(ParseScenario(R"({"groups": [{"status": {"topic": "s", "online": 1}}]})").ok());
  EXPECT_FALSE(
      ParseScenario(R"({"groups": [{"fields": {"i": {"model": "duty_cycle", "on": "1s"}}}]})")
          .ok());
  auto bad = ParseScenario(R"({"groups": [{"disconnects": [{"at": "1h"}]}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/groups/0/disconnects/0/for"), std::string::npos);
}

}  // namespace
}  // namespace weir::sim
