// The simulated fleet: repeatable for a seed, in time order, with the demo's
// payload shape. Expected values follow from the scenario by hand.
#include "tools/sim/fleet.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace weir::sim {
namespace {

Scenario Demo() {
  auto s = ParseScenario(R"({"duration": "1m", "groups": [{"count": 3, "id": "d{n}",
      "topic": "sensors/{device}/telemetry", "period": "1s",
      "fields": {"t": {"model": "sine", "mean": 21.5, "amplitude": 3, "period": "10m", "noise": 0.2},
                 "h": {"model": "random_walk", "start": 45, "step": 0.5, "min": 44, "max": 46}}}]})");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

TEST(FleetTest, SameSeedSameReadingsOtherSeedOtherReadings) {
  Scenario s = Demo();
  Fleet a(s, 7, 1700000000000), b(s, 7, 1700000000000), c(s, 8, 1700000000000);
  bool differs = false;
  for (int i = 0; i < 300; ++i) {
    SimReading ra = a.Next(), rb = b.Next(), rc = c.Next();
    ASSERT_EQ(a.Payload(ra, ra.ts), b.Payload(rb, rb.ts));
    ASSERT_EQ(a.TruthLine(ra), b.TruthLine(rb));
    if (a.Payload(ra, ra.ts) != c.Payload(rc, rc.ts)) differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(FleetTest, EachDeviceReportsOncePerPeriodInTimeOrder) {
  Scenario s = Demo();
  Fleet f(s, 1, 1700000000000);
  ASSERT_EQ(f.devices().size(), 3u);
  EXPECT_EQ(f.devices()[2].id, "d3");
  EXPECT_EQ(f.devices()[2].topic, "sensors/d3/telemetry");
  std::vector<int64_t> last(3, -1);
  int64_t prev = 0;
  for (int i = 0; i < 30; ++i) {
    SimReading r = f.Next();
    EXPECT_GE(r.ts, prev);
    prev = r.ts;
    EXPECT_GE(r.ts, 1700000000000);
    if (last[r.device] >= 0) {
      EXPECT_EQ(r.ts - last[r.device], 1000);
    }
    last[r.device] = r.ts;
    EXPECT_EQ(r.seq, (i / 3) + 1);  // every device once per second, seq from 1
    EXPECT_GE(r.values[1], 44);     // the walk stays inside [min, max]
    EXPECT_LE(r.values[1], 46);
    EXPECT_GE(r.values[0], 21.5 - 3 - 2);  // sine within amplitude plus 10 sigma of noise
    EXPECT_LE(r.values[0], 21.5 + 3 + 2);
  }
}

TEST(FleetTest, PayloadHasTheDemoShapeInOrder) {
  Scenario s = Demo();
  Fleet f(s, 1, 1700000000000);
  SimReading r = f.Next();
  std::string p = f.Payload(r, r.ts + 5);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(p);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"ts", "seq", "sent_at", "t", "h"}));
  EXPECT_EQ(j["ts"].get<int64_t>(), r.ts);
  EXPECT_EQ(j["seq"].get<int64_t>(), 1);
  EXPECT_EQ(j["sent_at"].get<int64_t>(), r.ts + 5);
  EXPECT_EQ(j["t"].get<double>(), r.values[0]);
  // Two decimals by default.
  EXPECT_DOUBLE_EQ(std::round(r.values[0] * 100) / 100, r.values[0]);
}

TEST(FleetTest, ScenarioErrorsNameTheKey) {
  auto s = ParseScenario(R"({"groups": [{"count": 2, "id": "dev"}]})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/groups/0/id"), std::string::npos);
  s = ParseScenario(R"({"groups": [{"period": "soon"}]})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/groups/0/period"), std::string::npos);
  EXPECT_EQ(ParseDuration("90s"), 90000);
  EXPECT_EQ(ParseDuration("2h"), 7200000);
  EXPECT_FALSE(ParseDuration("2 h"));
}

}  // namespace
}  // namespace weir::sim

namespace weir::sim {
namespace {

TEST(FleetTest, ClockSkewShiftsTsAndSentAtAndDuplicatesAreMarked) {
  auto s = ParseScenario(R"({"groups": [{"count": 20, "id": "d{n}", "period": "1s",
      "clock_skew": "5s", "duplicates": 0.5, "fields": {"v": {"model": "constant", "value": 1}}}]})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Fleet f(*s, 3, 1700000000000);
  int duplicates = 0;
  bool some_skew = false;
  for (int i = 0; i < 400; ++i) {
    SimReading r = f.Next();
    int64_t skew = f.devices()[r.device].skew_ms;
    EXPECT_EQ(r.ts - r.time, skew);
    EXPECT_LE(std::abs(skew), 5000);
    if (skew != 0) some_skew = true;
    auto j = nlohmann::json::parse(f.Payload(r, r.time));
    EXPECT_EQ(j["ts"].get<int64_t>(), r.ts);
    EXPECT_EQ(j["sent_at"].get<int64_t>(), r.time + skew);
    duplicates += r.duplicate;
  }
  EXPECT_TRUE(some_skew);
  EXPECT_GT(duplicates, 120);  // about half of 400
  EXPECT_LT(duplicates, 280);
}

}  // namespace
}  // namespace weir::sim
