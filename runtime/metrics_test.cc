#include "runtime/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <set>
#include <string>

#include "runtime/processor.h"

namespace weir {
namespace {

MetricsSnapshot Example() {
  MetricsSnapshot s;
  s.start_time_ms = 1700000000123;
  s.readings = 42;
  s.rejected[static_cast<size_t>(RejectReason::kBadJson)] = 3;
  s.duplicates = 5;
  PipelineMetrics p;
  p.name = "climate";
  p.generation = 2;
  p.open_windows = 7;
  p.late_updates = 4;
  p.has_watermark = true;
  p.watermark_lag_ms = 1500;
  s.pipelines.push_back(p);
  PipelineMetrics q;
  q.name = "energy";  // no reading yet: no watermark lag sample
  s.pipelines.push_back(q);
  s.store.outbox_rows = 12;
  s.store.outbox_bytes = 3456;
  s.store.last_commit_us = 2500;
  s.oldest_pending_age_ms = 65000;
  s.has_uplink = true;
  s.uplink_state = UplinkState::kConnected;
  s.uplink_rows_delivered = 99;
  s.reloads_applied = 2;
  s.reloads_rejected = 1;
  return s;
}

bool HasLine(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(RenderPrometheus, SamplesWithLabelsAndUnits) {
  std::string t = RenderPrometheus(Example());
  EXPECT_TRUE(HasLine(t, "# TYPE weir_readings_total counter")) << t;
  EXPECT_TRUE(HasLine(t, "weir_readings_total 42"));
  EXPECT_TRUE(HasLine(t, "weir_rejected_total{reason=\"bad_json\"} 3"));
  EXPECT_TRUE(HasLine(t, "weir_rejected_total{reason=\"not_object\"} 0"));
  EXPECT_TRUE(HasLine(t, "weir_duplicates_total 5"));
  EXPECT_TRUE(HasLine(t, "weir_open_windows{pipeline=\"climate\"} 7"));
  EXPECT_TRUE(HasLine(t, "weir_late_updates_total{pipeline=\"climate\"} 4"));
  EXPECT_TRUE(HasLine(t, "weir_pipeline_generation{pipeline=\"climate\"} 2"));
  EXPECT_TRUE(HasLine(t, "weir_watermark_lag_seconds{pipeline=\"climate\"} 1.5"));
  EXPECT_EQ(t.find("weir_watermark_lag_seconds{pipeline=\"energy\"}"), std::string::npos);
  EXPECT_TRUE(HasLine(t, "weir_outbox_rows 12"));
  EXPECT_TRUE(HasLine(t, "weir_outbox_bytes 3456"));
  EXPECT_TRUE(HasLine(t, "weir_outbox_oldest_age_seconds 65"));
  EXPECT_TRUE(HasLine(t, "weir_storage_commit_latency_seconds 0.0025"));
  EXPECT_TRUE(HasLine(t, "weir_uplink_connected 1"));
  EXPECT_TRUE(HasLine(t, "weir_uplink_state{state=\"connected\"} 1"));
  EXPECT_TRUE(HasLine(t, "weir_uplink_state{state=\"disconnected\"} 0"));
  EXPECT_TRUE(HasLine(t, "weir_uplink_delivered_rows_total 99"));
  EXPECT_TRUE(HasLine(t, "weir_config_reloads_total{result=\"applied\"} 2"));
  EXPECT_TRUE(HasLine(t, "weir_config_reloads_total{result=\"rejected\"} 1"));
  EXPECT_TRUE(HasLine(t, "weir_source_connected 0"));
  // Every digit of a large non-integral value (a 6-digit form would be off by minutes).
  EXPECT_TRUE(HasLine(t, "weir_start_time_seconds 1700000000.123")) << t;
}

TEST(RenderPrometheus, EverySampleBelongsToATypedFamily) {
  std::string t = RenderPrometheus(Example());
  auto samples = ParsePrometheusText(t);
  ASSERT_TRUE(samples.ok()) << samples.status().ToString();
  ASSERT_GT(samples.value().size(), 40u);
  std::set<std::string> helped;
  for (const MetricSample& m : samples.value()) {
    EXPECT_EQ(m.name.rfind("weir_", 0), 0u) << m.name;
    EXPECT_NE(t.find("# TYPE " + m.name + " "), std::string::npos) << m.name;
    EXPECT_NE(t.find("# HELP " + m.name + " "), std::string::npos) << m.name;
  }
}

TEST(ParsePrometheusText, LabelsEscapesTimestampsAndErrors) {
  auto r = ParsePrometheusText(
      "# HELP x a\n# TYPE x counter\nx{a=\"q\\\"t\",b=\"l\\\\n\"} 2.5 1700000000000\ny 1e3\n"
      "z +Inf\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value().size(), 3u);
  EXPECT_EQ(r.value()[0].name, "x");
  EXPECT_EQ(r.value()[0].labels.at("a"), "q\"t");
  EXPECT_EQ(r.value()[0].labels.at("b"), "l\\n");
  EXPECT_DOUBLE_EQ(r.value()[0].value, 2.5);
  EXPECT_DOUBLE_EQ(r.value()[1].value, 1000);
  EXPECT_TRUE(std::isinf(r.value()[2].value));
  EXPECT_FALSE(ParsePrometheusText("x{a=\"b} 1\n").ok());
  EXPECT_FALSE(ParsePrometheusText("x one\n").ok());
  EXPECT_FALSE(ParsePrometheusText("{a=\"b\"} 1\n").ok());
}

Config ProcessorConfig() {
  std::vector<ConfigError> errors;
  auto c = ParseConfig(R"({"gateway": "gw",
    "source": {"broker": "tcp://127.0.0.1:1", "topics": [{"topic": "s/{device}/data"}],
               "fields": {"temp": "/temp"}},
    "pipelines": [{"name": "climate", "window": {"type": "tumbling", "size": "1m"},
                   "aggregates": {"n": {"count": "*"}}}]})",
                       &errors, /*for_run=*/false);
  EXPECT_TRUE(c.has_value()) << (errors.empty() ? "" : errors[0].message);
  Config config = c.value_or(Config());
  config.metrics.listen = "127.0.0.1:0";  // any free port (the config file must name one)
  return config;
}

class NullOutput : public EngineOutput {
 public:
  void OnResult(int, const ResultRecord&) override {}
};

Message Reading(int64_t t) {
  Message m;
  m.arrival_ms = t;
  m.topic = "s/d1/data";
  m.payload = "{\"ts\":" + std::to_string(t) + ",\"temp\":20}";
  return m;
}

// A reload rebuilds the processor, whose counters start at zero again; the
// exposed counters must not go down (Prometheus would read a reset).
TEST(Metrics, CountersStayMonotonicAcrossRebuiltProcessors) {
  Config c = ProcessorConfig();
  c.metrics.listen.clear();
  NullOutput out;
  auto a = MessageProcessor::Create(c);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  a.value()->Process(Reading(1000), &out);
  a.value()->Process(Reading(2000), &out);
  a.value()->Process(Message{3000, "s/d1/data", "not json"}, &out);
  Metrics metrics;
  metrics.Refresh({&c, nullptr, a.value().get(), nullptr, nullptr, nullptr}, 5000);
  EXPECT_EQ(metrics.latest()->readings, 2);
  EXPECT_EQ(metrics.latest()->rejected[static_cast<size_t>(RejectReason::kBadJson)], 1);

  auto b = MessageProcessor::Create(c);
  ASSERT_TRUE(b.ok());
  b.value()->Process(Reading(4000), &out);
  metrics.CountReload(true);
  metrics.CountReload(false);
  metrics.Refresh({&c, nullptr, b.value().get(), nullptr, nullptr, nullptr}, 6000);
  EXPECT_EQ(metrics.latest()->readings, 3);
  EXPECT_EQ(metrics.latest()->messages, 4);
  EXPECT_EQ(metrics.latest()->rejected[static_cast<size_t>(RejectReason::kBadJson)], 1);
  EXPECT_EQ(metrics.latest()->reloads_applied, 1);
  EXPECT_EQ(metrics.latest()->reloads_rejected, 1);
  EXPECT_EQ(metrics.bound(), "");  // no metrics.listen: no endpoint
}

TEST(Metrics, ServesTheLatestSnapshotOverHttp) {
  Config c = ProcessorConfig();  // 127.0.0.1:0: any free port
  NullOutput out;
  auto p = MessageProcessor::Create(c);
  ASSERT_TRUE(p.ok());
  p.value()->Process(Reading(1000), &out);
  Metrics metrics;
  metrics.Refresh({&c, nullptr, p.value().get(), nullptr, nullptr, nullptr}, 2000);
  std::string bound = metrics.bound();
  ASSERT_FALSE(bound.empty());
  httplib::Client client("http://" + bound);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(res->body.find("\nweir_readings_total 1\n"), std::string::npos) << res->body;

  p.value()->Process(Reading(3000), &out);
  metrics.Refresh({&c, nullptr, p.value().get(), nullptr, nullptr, nullptr}, 4000);
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("\nweir_readings_total 2\n"), std::string::npos);

  // A reload that drops metrics.listen closes the endpoint.
  c.metrics.listen.clear();
  metrics.Refresh({&c, nullptr, p.value().get(), nullptr, nullptr, nullptr}, 5000);
  EXPECT_EQ(metrics.bound(), "");
  httplib::Client again("http://" + bound);
  again.set_connection_timeout(1, 0);
  EXPECT_FALSE(again.Get("/metrics"));
}

}  // namespace
}  // namespace weir
