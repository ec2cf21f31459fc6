// Transcript tests of DESIGN 5, one or more per rule: readings, statuses and
// processing time in, results out. Expected results are worked out by hand
// from the contract (the comments show the arithmetic).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "operators/transcript.h"

namespace weir::testing {
namespace {

using V = std::vector<std::string>;

// A result line as AppendResultJson writes it.
std::string Res(const std::string& id, int rev, const std::string& key, int64_t start, int64_t end,
                int64_t count, const std::string& values, const std::string& pipeline = "p",
                int64_t duration = -1) {
  std::string s = "{\"id\":\"" + id + "\",\"rev\":" + std::to_string(rev) + ",\"pipeline\":\"" +
                  pipeline + "\",\"key\":" + key + ",\"start\":" + std::to_string(start) +
                  ",\"end\":" + std::to_string(end) + ",\"count\":" + std::to_string(count);
  if (duration >= 0) s += ",\"duration_ms\":" + std::to_string(duration);
  return s + ",\"values\":" + values + "}";
}
std::string D1(int64_t start, int rev, int64_t count, int64_t size = 60000) {
  return Res("gw/p/d1/" + std::to_string(start), rev, R"({"device":"d1"})", start, start + size,
             count, "{\"n\":" + std::to_string(count) + ",\"a_n\":0}");
}
std::string All(int64_t start, int rev, int64_t count) {
  return Res("gw/p/*/" + std::to_string(start), rev, "{}", start, start + 60000, count,
             "{\"n\":" + std::to_string(count) + ",\"a_n\":0}");
}

// 5.1: the data watermark trails max_ts by max_out_of_orderness.
TEST(Watermark, OutOfOrdernessHoldsTheWindowOpen) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.max_out_of_orderness_ms = 5000;
  c.pipelines[0].event_time.late = LatePolicy::kDrop;
  c.pipelines[0].event_time.allowed_lateness_ms = 0;
  Transcript t(c);
  t.Data(1000, "d1", 10000);
  t.Data(2000, "d1", 62000);  // dwm 57000 < 60000
  t.Data(3000, "d1", 58000);  // not late: added
  EXPECT_EQ(t.lines, V{});
  t.Data(4000, "d1", 65000);  // dwm 60000: fires
  EXPECT_EQ(t.lines, V{D1(0, 0, 2)});
  t.Data(5000, "d1", 59000);  // late, dropped
  EXPECT_EQ(t.lines.size(), 1u);
  EXPECT_EQ(t.engine().counters(0).late_dropped, 1);
}

// 5.5: corrected clocks shift every timestamp by arrival - sent_at of the
// device's most recent message that carried sent_at.
TEST(Watermark, ClockOffsetCorrection) {
  Config c = ExampleConfig();
  c.source.sent_at = "/sent_at";
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.clock = ClockMode::kCorrected;
  Transcript t(c);
  auto send = [&](int64_t now, int64_t ts, bool has_sent_at, int64_t sent_at) {
    t.Tick(now);
    Reading r = t.Make("d1", ts, {}, "a", nullptr);
    r.has_sent_at = has_sent_at;
    r.sent_at_ms = sent_at;
    t.engine().OnReading(r, now, &t);
  };
  send(3601000, 1000, true, 1000);     // offset 3600000: ts 3601000
  send(3602000, 2000, false, 0);       // offset kept: ts 3602000
  send(3700000, 61000, true, 100000);  // offset 3600000: ts 3661000, fires
  EXPECT_EQ(t.lines, V{Res("gw/p/d1/3600000", 0, R"({"device":"d1"})", 3600000, 3660000, 2,
                           R"({"n":2,"a_n":0})")});
}

// 5.2: a connected device that goes quiet is released after idle_timeout,
// measured from its last arrival, by now - lag_d - max_out_of_orderness.
TEST(Idle, QuietDeviceReleasedAfterIdleTimeout) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.idle_timeout_ms = 60000;
  Transcript t(c);
  t.Data(5000, "d1", 1000);  // lag 4000
  t.Tick(64999);             // silent 59999 ms: not idle
  EXPECT_EQ(t.lines, V{});
  t.Tick(65000);  // idle: wm = 65000 - 4000 = 61000 >= 60000
  EXPECT_EQ(t.lines, V{D1(0, 0, 1)});
}

// 5.2: an offline device holds its windows until max_hold.
TEST(Idle, OfflineDeviceHeldUntilMaxHold) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.idle_timeout_ms = 60000;
  c.pipelines[0].event_time.max_hold_ms = 3600000;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Status(2000, "d1", false);
  t.Tick(3601999);  // silent 3599999 since the status message
  EXPECT_EQ(t.lines, V{});
  t.Tick(3602000);  // wm = 3602000 - lag 0
  EXPECT_EQ(t.lines, V{D1(0, 0, 1)});
}

// 5.2: a device offline for 6h replays its backlog into windows still open:
// revision 0 holds it all and nothing is late.
TEST(Idle, OfflineSixHoursReplayingBacklog) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.allowed_lateness_ms = 6 * 3600000LL;
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(31000, "d1", 30000);
  t.Status(40000, "d1", false);
  t.Tick(6 * 3600000LL + 40000);
  EXPECT_EQ(t.lines, V{});
  t.Status(6 * 3600000LL + 50000, "d1", true);
  int64_t base = 6 * 3600000LL + 60000;
  t.Data(base, "d1", 40000);
  t.Data(base + 1, "d1", 70000);  // wm 70000: [0,60000) fires with 3
  t.Data(base + 2, "d1", 100000);
  t.Data(base + 3, "d1", 130000);  // [60000,120000) fires with 2
  EXPECT_EQ(t.lines, (V{D1(0, 0, 3), D1(60000, 0, 2)}));
  EXPECT_EQ(t.engine().counters(0).late_updates, 0);
  EXPECT_EQ(t.engine().counters(0).late_dropped, 0);
}

// 5.3: a status message is a step: an offline device stops holding wm_p back.
TEST(PipelineWatermark, StatusStepFires) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  Transcript t(c);
  t.Data(1000, "d2", 1000);
  t.Data(1000, "d1", 61000);  // wm_p = min(1000, 61000)
  EXPECT_EQ(t.lines, V{});
  t.Status(2000, "d2", false);
  EXPECT_EQ(t.lines, V{All(0, 0, 1)});
}

// 5.3/5.4: a late device of a group key lands in fired windows; wm_p never
// decreases when it comes back.
TEST(PipelineWatermark, LateDeviceLandsInFiredGroupWindow) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 2000);
  t.Status(1500, "d2", false);
  t.Data(2000, "d1", 61000);  // wm_p = 61000 (d2 offline)
  EXPECT_EQ(t.lines, V{All(0, 0, 2)});
  t.Status(10000, "d2", true);  // wm_p stays 61000
  t.Data(10000, "d2", 3000);    // late: dirty for d2 (dwm 3000)
  t.Data(10500, "d2", 62000);   // dwm 62000, but only 500 ms since dirty
  EXPECT_EQ(t.lines.size(), 1u);
  t.Tick(11000);
  EXPECT_EQ(t.lines, (V{All(0, 0, 2), All(0, 1, 3)}));
}

// 5.4: past its device's watermark but not the key's: not late.
TEST(PipelineWatermark, DeviceAheadOfGroupIsNotLate) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.Data(2000, "d1", 70000);
  t.Data(3000, "d1", 5000);
  t.Data(4000, "d2", 65000);
  EXPECT_EQ(t.lines, V{All(0, 0, 3)});
  EXPECT_EQ(t.engine().counters(0).late_updates, 0);
}

// 5.4: state is purged at allowed_lateness; later readings are dropped.
TEST(Lateness, UpdateWithinAllowedLatenessThenDrop) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.allowed_lateness_ms = 60000;
  c.pipelines[0].event_time.late_emit_delay_ms = 0;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(2000, "d1", 61000);
  t.Data(3000, "d1", 2000);    // wm 61000 < 120000: added, re-emitted at once
  t.Data(4000, "d1", 125000);  // purges [0,60000); fires [60000,120000)
  t.Data(5000, "d1", 3000);    // wm 125000 >= 120000: dropped
  EXPECT_EQ(t.lines, (V{D1(0, 0, 1), D1(0, 1, 2), D1(60000, 0, 1)}));
  EXPECT_EQ(t.engine().counters(0).late_dropped, 1);
  EXPECT_EQ(t.engine().counters(0).late_updates, 1);
}

// 5.4: a trickle of late readings within the delay gives one revision.
TEST(Lateness, TrickleGivesOneRevision) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.late_emit_delay_ms = 5000;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(2000, "d1", 61000);
  t.Data(10000, "d1", 2000);
  t.Data(11000, "d1", 3000);
  t.Data(12000, "d1", 4000);
  t.Tick(14999);
  EXPECT_EQ(t.lines, V{D1(0, 0, 1)});
  t.Tick(15000);
  EXPECT_EQ(t.lines, (V{D1(0, 0, 1), D1(0, 1, 4)}));
}

// 5.4: dirty devices whose data is not yet past stay dirty from the result's
// step; the delay then counts from that step.
TEST(Lateness, DevicesStayDirtyAfterAResult) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  c.pipelines[0].event_time.late_emit_delay_ms = 2000;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.Data(2000, "d1", 70000);
  t.Data(2000, "d2", 70000);  // wm_p 70000: rev 0 with 2
  t.Data(3000, "d3", 4000);   // new device, late: dirty {d3} since 3000
  t.Data(4000, "d1", 5000);   // dirty {d3, d1}, still since 3000
  t.Tick(5000);               // 2 s: d1's dwm is past: rev 1 with 4; d3 stays, since 5000
  t.Data(6000, "d3", 65000);  // d3's dwm is past now, but 1 s since 5000
  t.Tick(6999);
  EXPECT_EQ(t.lines, (V{All(0, 0, 2), All(0, 1, 4)}));
  t.Tick(7000);
  EXPECT_EQ(t.lines, (V{All(0, 0, 2), All(0, 1, 4), All(0, 2, 4)}));
}

// 5.4: hopping windows decide lateness per window; a late update re-emits.
TEST(Lateness, HoppingUpdatedLate) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.window.type = WindowType::kHopping;
  p.window.size_ms = 120000;
  p.window.hop_ms = 60000;
  p.event_time.late_emit_delay_ms = 0;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 10000);   // [-60000,60000), [0,120000)
  t.Data(2000, "d1", 130000);  // fires both
  t.Data(3000, "d1", 70000);   // late for [0,120000) (re-emitted), on time for [60000,180000)
  EXPECT_EQ(t.lines, (V{D1(-60000, 0, 1, 120000), D1(0, 0, 1, 120000), D1(0, 1, 2, 120000)}));
  t.Drain();
  EXPECT_EQ(t.lines.size(), 5u);
  EXPECT_EQ(t.lines[3], D1(60000, 0, 2, 120000));
  EXPECT_EQ(t.lines[4], D1(120000, 0, 1, 120000));
}

// 5.4: late: side drops the reading and hands it out raw.
TEST(Lateness, SideOutput) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.late = LatePolicy::kSide;
  c.pipelines[0].event_time.allowed_lateness_ms = 0;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(2000, "d1", 61000);
  t.Data(3000, "d1", 2000);
  EXPECT_EQ(t.lines, V{D1(0, 0, 1)});
  EXPECT_EQ(t.side, V{"d1@2000"});
  EXPECT_EQ(t.engine().counters(0).late_dropped, 1);
}

// Drain emits open windows (rev 0) and dirty ones (next revision).
TEST(Lateness, DrainEmitsOpenAndDirty) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.late_emit_delay_ms = 10000;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(2000, "d1", 61000);
  t.Data(3000, "d1", 2000);
  t.Drain();
  EXPECT_EQ(t.lines, (V{D1(0, 0, 1), D1(0, 1, 2), D1(60000, 0, 1)}));
  EXPECT_EQ(t.engine().counters(0).open_windows, 0);
}

// DESIGN 4: epoch-aligned windows with an offset, floor modulo for negatives.
TEST(Windows, OffsetAndNegativeTimestamps) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].window.offset_ms = 15000;
  Transcript t(c);
  t.Data(1000, "d1", -1000);  // [-45000, 15000)
  t.Data(1000, "d1", 20000);  // [15000, 75000)
  t.Drain();
  EXPECT_EQ(
      t.lines,
      (V{Res("gw/p/d1/-45000", 0, R"({"device":"d1"})", -45000, 15000, 1, R"({"n":1,"a_n":0})"),
         Res("gw/p/d1/15000", 0, R"({"device":"d1"})", 15000, 75000, 1, R"({"n":1,"a_n":0})")}));
}

// 5.6: max_duration splits sessions; a reading joins the latest-starting one.
TEST(Sessions, MaxDuration) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.window.type = WindowType::kSession;
  p.window.gap_ms = 60000;
  p.window.max_duration_ms = 120000;
  p.event_time.late = LatePolicy::kDrop;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 50000);
  t.Data(3000, "d1", 100000);  // S1 [0, 100000]
  t.Data(4000, "d1", 130000);  // would span 130000: new S2
  t.Data(5000, "d1", 150000);  // matches both; all would span 150000: joins S2
  t.Data(6000, "d1", 400000);
  EXPECT_EQ(
      t.lines,
      (V{Res("gw/p/d1/0", 0, R"({"device":"d1"})", 0, 100000, 3, R"({"n":3,"a_n":0})", "p", 100000),
         Res("gw/p/d1/130000", 0, R"({"device":"d1"})", 130000, 150000, 2, R"({"n":2,"a_n":0})",
             "p", 20000)}));
}

// 5.6: a late reading bridging two emitted sessions: the later-emitted is
// retracted right before the merged result, which keeps the earlier id; with
// a zero delay it all happens in the reading's own step.
TEST(Sessions, MergeWithRetraction) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.window.type = WindowType::kSession;
  p.window.gap_ms = 10000;
  p.event_time.late_emit_delay_ms = 0;
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("s", AggregateKind::kSum, "temp")};
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0, {{"temp", 1}});
  t.Data(2000, "d1", 15000, {{"temp", 2}});  // S1 fires (wm 15000 >= 10000)
  t.Data(3000, "d1", 40000, {{"temp", 3}});  // S2 [15000] fires (25000)
  t.Data(4000, "d1", 8000, {{"temp", 4}});   // joins S1 and S2: merged, dwm 40000 >= 25000
  EXPECT_EQ(
      t.lines,
      (V{Res("gw/p/d1/0", 0, R"({"device":"d1"})", 0, 0, 1, R"({"n":1,"s":1})", "p", 0),
         Res("gw/p/d1/15000", 0, R"({"device":"d1"})", 15000, 15000, 1, R"({"n":1,"s":2})", "p", 0),
         R"({"id":"gw/p/d1/15000","rev":1,"retracted":true})",
         Res("gw/p/d1/0", 1, R"({"device":"d1"})", 0, 15000, 3, R"({"n":3,"s":7})", "p", 15000)}));
  EXPECT_EQ(t.engine().counters(0).retractions, 1);
}

// 5.7: order by pipeline, end, start, key bytes; ids per generation; key []
// is "*"; a missing key attribute is "".
TEST(Results, OrderAndIds) {
  Config c = ExampleConfig();
  PipelineConfig a = ExamplePipeline({"room"});
  a.name = "a";
  PipelineConfig b = ExamplePipeline({});
  b.name = "b";
  c.pipelines = {a, b};
  Transcript t(c, {0, 2});
  t.Data(1000, "d1", 1000, {}, "a", "r2");
  t.Data(1000, "d2", 61000, {}, "a", "r1");
  t.Data(1000, "d3", 1000, {}, "a", "r1");
  t.Data(1000, "d4", 1000, {}, "a", nullptr);
  t.Drain();
  auto room = [](const std::string& r, int64_t start, int64_t n) {
    return Res("gw/a/" + r + "/" + std::to_string(start), 0, "{\"room\":\"" + r + "\"}", start,
               start + 60000, n, "{\"n\":" + std::to_string(n) + ",\"a_n\":0}", "a");
  };
  EXPECT_EQ(t.lines,
            (V{room("", 0, 1), room("r1", 0, 1), room("r2", 0, 1), room("r1", 60000, 1),
               Res("gw/b~2/*/0", 0, "{}", 0, 60000, 3, R"({"n":3,"a_n":0})", "b"),
               Res("gw/b~2/*/60000", 0, "{}", 60000, 120000, 1, R"({"n":1,"a_n":0})", "b")}));
}

// DESIGN 4 `where`: all conditions; a missing field fails; attributes compare text.
TEST(Where, ConditionsFieldsAndAttributes) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  WhereCondition temp;
  temp.name = "temp";
  temp.op = CompareOp::kGt;
  temp.number = 10;
  WhereCondition room;
  room.name = "room";
  room.op = CompareOp::kEq;
  room.is_text = true;
  room.text = "k";
  p.where = {temp, room};
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 1000, {{"temp", 20}}, "a", "k");  // passes
  t.Data(1000, "d1", 1001, {{"temp", 20}}, "a", "j");
  t.Data(1000, "d1", 1002, {}, "a", "k");
  t.Data(1000, "d1", 1003, {{"temp", 10}}, "a", "k");
  t.Data(1000, "d1", 1004, {{"temp", 11}}, "a", nullptr);
  t.Drain();
  EXPECT_EQ(t.lines, V{D1(0, 0, 1)});
  EXPECT_EQ(t.engine().counters(0).filtered, 4);
  EXPECT_EQ(t.engine().counters(0).readings, 5);
}

// DESIGN 4 aggregates, worked by hand for temps 4 (ts 3000), 8 (ts 1000), 6 (ts 2000).
TEST(Aggregates, EveryKindInOneWindow) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.aggregates = {
      Agg("n", AggregateKind::kCount, "*"),      Agg("nt", AggregateKind::kCount, "temp"),
      Agg("na", AggregateKind::kCount, "amps"),  Agg("sum", AggregateKind::kSum, "temp"),
      Agg("min", AggregateKind::kMin, "temp"),   Agg("max", AggregateKind::kMax, "temp"),
      Agg("avg", AggregateKind::kAvg, "temp"),   Agg("first", AggregateKind::kFirst, "temp"),
      Agg("last", AggregateKind::kLast, "temp"), Agg("delta", AggregateKind::kDelta, "temp"),
      Agg("sd", AggregateKind::kStddev, "temp"), Agg("p50", AggregateKind::kQuantile, "temp", 0.5),
      Agg("asum", AggregateKind::kSum, "amps")};
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 3000, {{"temp", 4}});
  t.Data(1001, "d1", 1000, {{"temp", 8}});
  t.Data(1002, "d1", 2000, {{"temp", 6}});
  t.Data(1003, "d1", 4000);  // no temp: counted by n only
  t.Drain();
  ASSERT_EQ(t.lines.size(), 1u);
  nlohmann::json r = nlohmann::json::parse(t.lines[0]);
  const auto& v = r["values"];
  EXPECT_EQ(r["count"], 4);
  EXPECT_EQ(v["n"], 4);
  EXPECT_EQ(v["nt"], 3);
  EXPECT_EQ(v["na"], 0);
  EXPECT_EQ(v["sum"], 18);
  EXPECT_EQ(v["min"], 4);
  EXPECT_EQ(v["max"], 8);
  EXPECT_EQ(v["avg"], 6);
  EXPECT_EQ(v["first"], 8);
  EXPECT_EQ(v["last"], 4);
  EXPECT_EQ(v["delta"], -4);
  EXPECT_NEAR(v["sd"].get<double>(), std::sqrt(8.0 / 3.0), 1e-12);
  EXPECT_NEAR(v["p50"].get<double>(), 6, 6 * 0.005);  // 2nd of 3
  EXPECT_TRUE(v["asum"].is_null());
}

PipelineConfig Sessions(int64_t gap, LatePolicy late, int64_t lateness) {
  PipelineConfig p = ExamplePipeline();
  p.window.type = WindowType::kSession;
  p.window.gap_ms = gap;
  p.event_time.late = late;
  p.event_time.allowed_lateness_ms = lateness;
  p.event_time.late_emit_delay_ms = 0;
  return p;
}
std::string S1(int64_t start, int64_t end, int rev, int64_t count, int64_t id_start = -1) {
  if (id_start < 0) id_start = start;
  return Res("gw/p/d1/" + std::to_string(id_start), rev, R"({"device":"d1"})", start, end, count,
             "{\"n\":" + std::to_string(count) + ",\"a_n\":0}", "p", end - start);
}

// 5.6: a late reading that starts a new session: a dirty session that emits
// its revision 0 by the dirty rule, or dropped past allowed_lateness.
TEST(Sessions, LateNewSessionDirtyOrDropped) {
  Config c = ExampleConfig();
  c.pipelines = {Sessions(10000, LatePolicy::kUpdate, 60000)};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 100000);  // S [0] fires (and is purged: 100000 >= 0 + 10000 + 60000)
  t.Data(3000, "d1", 50000);   // late (100000 >= 60000), within 120000: dirty, dwm past: rev 0
  t.Data(4000, "d1", 30000);   // 100000 >= 30000 + 10000 + 60000: dropped
  EXPECT_EQ(t.lines, (V{S1(0, 0, 0, 1), S1(50000, 50000, 0, 1)}));
  EXPECT_EQ(t.engine().counters(0).late_dropped, 1);
}

// 5.6: with late side, a reading joining an emitted session is dropped and
// handed out raw.
TEST(Sessions, LateJoinWithSideIsDropped) {
  Config c = ExampleConfig();
  c.pipelines = {Sessions(10000, LatePolicy::kSide, 60000)};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 15000);  // S [0] fires
  t.Data(3000, "d1", 5000);   // joins the emitted session: late
  t.Drain();
  EXPECT_EQ(t.lines, (V{S1(0, 0, 0, 1), S1(15000, 15000, 0, 1)}));
  EXPECT_EQ(t.side, V{"d1@5000"});
}

// 5.6: a merge that would exceed max_duration does not happen; the reading
// joins the latest-starting matching session.
TEST(Sessions, NoMergeBeyondMaxDuration) {
  Config c = ExampleConfig();
  PipelineConfig p = Sessions(10000, LatePolicy::kUpdate, 60000);
  p.window.max_duration_ms = 30000;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 8000);   // S1 [0, 8000]
  t.Data(3000, "d1", 22000);  // S2; wm 22000 >= 18000: S1 fires
  t.Data(4000, "d1", 30000);  // S2 [22000, 30000]
  t.Data(5000, "d1", 15000);  // matches both; [0, 30000] spans 30000: joins S2 only, not late
  t.Drain();
  EXPECT_EQ(t.lines, (V{S1(0, 8000, 0, 2), S1(15000, 30000, 0, 3)}));
  EXPECT_EQ(t.engine().counters(0).late_updates, 0);
}

// `where` on an attribute with a number compares the key text.
TEST(Where, NumberOnAnAttribute) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline({});
  WhereCondition eq;
  eq.name = "room";
  eq.op = CompareOp::kEq;
  eq.number = 5;
  p.where = {eq};
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 1000, {}, "a", "5");
  t.Data(1000, "d1", 1001, {}, "a", "5.5");
  t.Data(1000, "d1", 1002, {}, "a", nullptr);
  t.Drain();
  EXPECT_EQ(t.lines, V{All(0, 0, 1)});
  EXPECT_EQ(t.engine().counters(0).filtered, 2);
}

// 5.2/5.4: an idle device's dirty window re-emits in a time-advance step even
// though its data is not past the window's end.
TEST(Idle, IdleDirtyDeviceEmitsInTimeAdvanceOnly) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  c.pipelines[0].event_time.idle_timeout_ms = 10000;
  c.pipelines[0].event_time.late_emit_delay_ms = 0;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.Data(2000, "d1", 61000);
  t.Data(2000, "d2", 61000);  // wm_p 61000: rev 0
  t.Data(3000, "d3", 5000);   // new device, late, dirty; dwm 5000
  t.Data(12999, "d1", 62000);
  t.Data(12999, "d2", 62000);
  EXPECT_EQ(t.lines, V{All(0, 0, 2)});
  t.Tick(13000);  // d3 silent 10 s: idle in this step
  EXPECT_EQ(t.lines, (V{All(0, 0, 2), All(0, 1, 3)}));
}

}  // namespace
}  // namespace weir::testing
