// Ports of /work/shared/examples/semantics (DESIGN 5 worked examples). Each
// input line is translated by hand to the engine calls it causes: JSON
// decoding, dedup and malformed payloads belong to ingest, so a rejected or
// duplicate message is just its line's time advance. The expected results are
// the examples' own (an independent reading of DESIGN), compared as DESIGN 5.7
// says: values within 1e-9, everything else exactly; and here also in order.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "operators/transcript.h"

namespace weir::testing {
namespace {

void ExpectResults(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  ASSERT_EQ(got.size(), want.size()) << [&] {
    std::string s;
    for (const auto& l : got) s += l + "\n";
    return s;
  }();
  for (size_t i = 0; i < got.size(); ++i) {
    nlohmann::json g = nlohmann::json::parse(got[i]);
    nlohmann::json w = nlohmann::json::parse(want[i]);
    SCOPED_TRACE("result " + std::to_string(i) + ": " + got[i]);
    ASSERT_EQ(g.size(), w.size());
    for (auto it = w.begin(); it != w.end(); ++it) {
      ASSERT_TRUE(g.contains(it.key())) << it.key();
      if (it.key() == "values") {
        ASSERT_EQ(g["values"].size(), it->size());
        for (auto v = it->begin(); v != it->end(); ++v) {
          const auto& gv = g["values"][v.key()];
          if (v->is_null()) {
            EXPECT_TRUE(gv.is_null()) << v.key();
          } else {
            double a = gv.get<double>(), b = v->get<double>();
            EXPECT_LE(std::fabs(a - b), 1e-9 * std::max(1.0, std::fabs(b))) << v.key();
          }
        }
      } else {
        EXPECT_EQ(g[it.key()], *it) << it.key();
      }
    }
  }
}

TEST(Examples, ArrayMixed) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c);
  // One line, an array of four elements: two valid readings, two rejected.
  t.Tick(1000);
  t.Element(1000, "d1", 1000);
  t.Element(1000, "d1", 2000);
  t.Drain();
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, CountNull) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c);
  t.Data(1000, "d1", 1000, {{"temp", 20}});
  t.Data(2000, "d1", 61000, {{"temp", 21}});
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, DedupWindow) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(2000, "d1", 2000);  // seq 1, far below 2000: accepted unchecked
  t.Data(3000, "d1", 61000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, DelayBase) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.late_emit_delay_ms = 1000;
  Transcript t(c);
  t.Data(1000, "d1", 10000);
  t.Data(2000, "d1", 61000);
  t.Data(30000, "d1", 20000);
  t.Data(30500, "d1", 21000);
  t.Tick(31000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
      R"({"id":"gw/p/d1/0","rev":1,"pipeline":"p","key":{"device":"d1"},"count":3,"values":{"n":3,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, DupArrival) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.Status(1500, "d1", false);
  t.Tick(1800);  // a duplicate of d1's reading: not an arrival
  t.Data(2000, "d2", 61000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/*/0","rev":0,"pipeline":"p","key":{},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, HopPartial) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.window.type = WindowType::kHopping;
  p.window.size_ms = 300000;
  p.window.hop_ms = 60000;
  p.event_time.late = LatePolicy::kDrop;
  p.event_time.allowed_lateness_ms = 0;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 150000);
  t.Data(3000, "d1", 100000);
  t.Drain();
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/-240000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":-240000,"end":60000})",
      R"({"id":"gw/p/d1/-180000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":-180000,"end":120000})",
      R"({"id":"gw/p/d1/-120000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":3,"values":{"n":3,"a_n":0},"start":-120000,"end":180000})",
      R"({"id":"gw/p/d1/-60000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":3,"values":{"n":3,"a_n":0},"start":-60000,"end":240000})",
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":3,"values":{"n":3,"a_n":0},"start":0,"end":300000})",
      R"({"id":"gw/p/d1/60000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":60000,"end":360000})",
      R"({"id":"gw/p/d1/120000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":120000,"end":420000})",
  };
  ExpectResults(t.lines, expected);
  EXPECT_EQ(t.engine().counters(0).late_dropped, 1);
}

TEST(Examples, IdleScope) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline({});
  p.event_time.late_emit_delay_ms = 0;
  p.event_time.idle_timeout_ms = 60000;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.Data(2000, "d2", 61000);
  t.Tick(70000);
  t.Data(200000, "d1", 30000);
  t.Data(200100, "d1", 31000);
  t.Data(200200, "d1", 62000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/*/0","rev":0,"pipeline":"p","key":{},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
      R"({"id":"gw/p/*/60000","rev":0,"pipeline":"p","key":{},"count":1,"values":{"n":1,"a_n":0},"start":60000,"end":120000})",
      R"({"id":"gw/p/*/0","rev":1,"pipeline":"p","key":{},"count":4,"values":{"n":4,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, LateCreated) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.late_emit_delay_ms = 1000;
  Transcript t(c);
  t.Data(1000, "d1", 130000);
  t.Data(2000, "d1", 70000);
  t.Data(2500, "d1", 80000);
  t.Tick(4000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/60000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":60000,"end":120000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, MalformedOnline) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({})};
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.Status(1500, "d1", false);
  t.Tick(1800);  // "garbage" payload: rejected, not an arrival
  t.Data(2000, "d2", 61000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/*/0","rev":0,"pipeline":"p","key":{},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, Nonnumeric) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c);
  t.Tick(1000);              // "temp": "hot" rejects the reading
  t.Data(1100, "d1", 1100);  // "amps": null is absent
  t.Data(2000, "d1", 61000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, OfflineBacklog) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("t_avg", AggregateKind::kAvg, "temp")};
  p.event_time.idle_timeout_ms = 60000;
  p.event_time.max_hold_ms = 24 * 3600000LL;
  p.event_time.allowed_lateness_ms = 6 * 3600000LL;
  c.pipelines = {p};
  Transcript t(c);
  for (int i = 0; i < 9; ++i) t.Data(1000 + 10000 * i, "d1", 10000 * i, {{"temp", 20.0 + i}});
  t.Status(90500, "d1", false);
  t.Status(400000, "d1", true);
  for (int i = 9; i < 39; ++i) {
    t.Data(400005 + 3 * (i - 9), "d1", 10000 * i, {{"temp", 20.0 + i}});
  }
  t.Tick(405000);
  t.Data(410000, "d1", 400000, {{"temp", 1}});
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":22.5},"start":0,"end":60000})",
      R"({"id":"gw/p/d1/60000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":28.5},"start":60000,"end":120000})",
      R"({"id":"gw/p/d1/120000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":34.5},"start":120000,"end":180000})",
      R"({"id":"gw/p/d1/180000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":40.5},"start":180000,"end":240000})",
      R"({"id":"gw/p/d1/240000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":46.5},"start":240000,"end":300000})",
      R"({"id":"gw/p/d1/300000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":52.5},"start":300000,"end":360000})",
  };
  ExpectResults(t.lines, expected);
  EXPECT_EQ(t.engine().counters(0).late_updates, 0);
}

TEST(Examples, PipelineWm) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({"site"})};
  Transcript t(c);
  t.Data(1000, "d1", 1000, {}, "s0");
  t.Data(1000, "d2", 1000, {}, "s1");
  t.Data(2000, "d1", 61000, {}, "s0");
  std::vector<std::string> expected = {};
  ExpectResults(t.lines, expected);
}

TEST(Examples, SenderIdle) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.idle_timeout_ms = 60000;
  Transcript t(c);
  t.Data(1000, "d1", 1000);
  t.Data(61000, "d1", 50000);
  t.Tick(70000);
  t.Tick(130000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
      R"({"id":"gw/p/d1/0","rev":1,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

PipelineConfig SessionPipeline() {
  PipelineConfig p = ExamplePipeline();
  p.window.type = WindowType::kSession;
  p.window.size_ms = 0;
  p.window.gap_ms = 120000;
  return p;
}

TEST(Examples, SessionAl) {
  Config c = ExampleConfig();
  PipelineConfig p = SessionPipeline();
  p.event_time.allowed_lateness_ms = 60000;
  p.event_time.late_emit_delay_ms = 5000;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 10000);
  t.Data(3000, "d1", 135000);
  t.Data(4000, "d1", 20000);
  t.Data(5000, "d1", 400000);
  t.Data(6000, "d1", 30000);
  t.Tick(9000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":10000,"duration_ms":10000})",
      R"({"id":"gw/p/d1/0","rev":1,"pipeline":"p","key":{"device":"d1"},"count":5,"values":{"n":5,"a_n":0},"start":0,"end":135000,"duration_ms":135000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, SessionAl0) {
  Config c = ExampleConfig();
  PipelineConfig p = SessionPipeline();
  p.event_time.allowed_lateness_ms = 0;
  p.event_time.late_emit_delay_ms = 0;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 10000);
  t.Data(3000, "d1", 200000);
  t.Data(4000, "d1", 20000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":10000,"duration_ms":10000})",
  };
  ExpectResults(t.lines, expected);
  EXPECT_EQ(t.engine().counters(0).late_dropped, 1);
}

TEST(Examples, SessionJoin) {
  Config c = ExampleConfig();
  PipelineConfig p = SessionPipeline();
  p.event_time.late_emit_delay_ms = 0;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0);
  t.Data(2000, "d1", 10000);
  t.Data(3000, "d1", 200000);
  t.Data(4000, "d1", 100000);
  t.Data(5000, "d1", 110000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":10000,"duration_ms":10000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, SessionMergeRetract) {
  Config c = ExampleConfig();
  PipelineConfig p = SessionPipeline();
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("a_max", AggregateKind::kMax, "amps")};
  p.event_time.late_emit_delay_ms = 1000;
  p.event_time.idle_timeout_ms = 3600000;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 0, {{"amps", 1}});
  t.Data(2000, "d1", 60000, {{"amps", 2}});
  t.Data(3000, "d1", 280000, {{"amps", 3}});
  t.Data(4000, "d1", 340000, {{"amps", 4}});
  t.Data(5000, "d1", 700000, {{"amps", 5}});
  t.Data(6000, "d1", 170000, {{"amps", 6}});
  t.Tick(8000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_max":2.0},"start":0,"end":60000,"duration_ms":60000})",
      R"({"id":"gw/p/d1/280000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":2,"values":{"n":2,"a_max":4.0},"start":280000,"end":340000,"duration_ms":60000})",
      R"({"id":"gw/p/d1/280000","rev":1,"retracted":true})",
      R"({"id":"gw/p/d1/0","rev":1,"pipeline":"p","key":{"device":"d1"},"count":5,"values":{"n":5,"a_max":6.0},"start":0,"end":340000,"duration_ms":340000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, SessionTie) {
  Config c = ExampleConfig();
  PipelineConfig p = SessionPipeline();
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("f", AggregateKind::kFirst, "temp"),
                  Agg("l", AggregateKind::kLast, "temp")};
  p.event_time.late_emit_delay_ms = 0;
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 100000, {{"temp", 1}});
  t.Data(2000, "d1", 0, {{"temp", 2}});
  t.Data(3000, "d1", 100000, {{"temp", 3}});
  t.Data(4000, "d1", 50000, {{"temp", 4}});
  t.Drain();
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":4,"values":{"n":4,"f":2.0,"l":3.0},"start":0,"end":100000,"duration_ms":100000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, SilentBacklog) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline();
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("t_avg", AggregateKind::kAvg, "temp")};
  p.event_time.idle_timeout_ms = 60000;
  p.event_time.allowed_lateness_ms = 6 * 3600000LL;
  c.pipelines = {p};
  Transcript t(c);
  for (int i = 0; i < 9; ++i) t.Data(1000 + 10000 * i, "d1", 10000 * i, {{"temp", 20.0 + i}});
  for (int i = 9; i < 39; ++i) {
    t.Data(400005 + 3 * (i - 9), "d1", 10000 * i, {{"temp", 20.0 + i}});
  }
  t.Tick(405000);
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":22.5},"start":0,"end":60000})",
      R"({"id":"gw/p/d1/60000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":3,"values":{"n":3,"t_avg":27.0},"start":60000,"end":120000})",
      R"({"id":"gw/p/d1/60000","rev":1,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":28.5},"start":60000,"end":120000})",
      R"({"id":"gw/p/d1/120000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":34.5},"start":120000,"end":180000})",
      R"({"id":"gw/p/d1/180000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":40.5},"start":180000,"end":240000})",
      R"({"id":"gw/p/d1/240000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":46.5},"start":240000,"end":300000})",
      R"({"id":"gw/p/d1/300000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":6,"values":{"n":6,"t_avg":52.5},"start":300000,"end":360000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, TagTypes) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline({"room"})};
  Transcript t(c);
  // The decoder gives key text: 5 and 5.0 are "5", true is "true".
  t.Data(1000, "d1", 1000, {}, "a", "5");
  t.Data(1001, "d2", 1000, {}, "a", "5");
  t.Data(1002, "d3", 1000, {}, "a", "true");
  t.Data(1003, "d4", 1000, {}, "a", "a/b,c%");
  t.Drain();
  std::vector<std::string> expected = {
      R"({"id":"gw/p/5/0","rev":0,"pipeline":"p","key":{"room":"5"},"count":2,"values":{"n":2,"a_n":0},"start":0,"end":60000})",
      R"({"id":"gw/p/a%2Fb%2Cc%25/0","rev":0,"pipeline":"p","key":{"room":"a/b,c%"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
      R"({"id":"gw/p/true/0","rev":0,"pipeline":"p","key":{"room":"true"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, TopicBoth) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c);
  t.Tick(1000);  // a status topic with a payload that is neither online nor offline
  t.Drain();
  std::vector<std::string> expected = {};
  ExpectResults(t.lines, expected);
}

TEST(Examples, TsSFloat) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c);
  t.Data(1000, "d1", 59999);          // 59.9999 s
  t.Data(1001, "d1", 1700000000000);  // 1700000000.0005 s
  t.Drain();
  std::vector<std::string> expected = {
      R"({"id":"gw/p/d1/0","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":0,"end":60000})",
      R"({"id":"gw/p/d1/1699999980000","rev":0,"pipeline":"p","key":{"device":"d1"},"count":1,"values":{"n":1,"a_n":0},"start":1699999980000,"end":1700000040000})",
  };
  ExpectResults(t.lines, expected);
}

TEST(Examples, WhereRegisters) {
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline({"site"});
  WhereCondition w;
  w.name = "temp";
  w.op = CompareOp::kGe;
  w.number = 20;
  p.where = {w};
  c.pipelines = {p};
  Transcript t(c);
  t.Data(1000, "d1", 1000, {{"temp", 25}});
  t.Data(1000, "d2", 1000, {{"temp", 10}});
  t.Data(2000, "d1", 61000, {{"temp", 25}});
  std::vector<std::string> expected = {};
  ExpectResults(t.lines, expected);
  EXPECT_EQ(t.engine().counters(0).filtered, 1);
}

}  // namespace
}  // namespace weir::testing
