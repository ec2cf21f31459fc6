// Unit tests for the config parser: defaults, every rule of DESIGN 4 that
// relates keys, error pointers and hints, and the definition fingerprint (6.5).
#include "config/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/config_keys.h"
#include "core/reading.h"

namespace weir {
namespace {

using json = nlohmann::ordered_json;

// A small valid config; tests edit it as JSON.
json Base() {
  return json::parse(R"({
    "gateway": "gw-01",
    "source": {
      "broker": "tcp://127.0.0.1:1883",
      "topics": [{"topic": "sensors/{site}/{device}/telemetry"}],
      "fields": {"temp": "/t", "hum": "/h"},
      "tags": {"room": "/room"}
    },
    "pipelines": [{
      "name": "climate",
      "window": {"type": "tumbling", "size": "1m"},
      "aggregates": {"n": {"count": "*"}, "temp_avg": {"avg": "temp"}}
    }]
  })");
}

std::optional<Config> Parse(const json& j, std::vector<ConfigError>* errors, bool for_run = false) {
  return ParseConfig(j.dump(), errors, for_run);
}

// Parses j, expects failure, and returns the errors.
std::vector<ConfigError> Errors(const json& j, bool for_run = false) {
  std::vector<ConfigError> errors;
  auto c = Parse(j, &errors, for_run);
  EXPECT_FALSE(c.has_value()) << j.dump();
  return errors;
}

// True when some error has exactly this pointer and its message or hint contains `fragment`.
bool Has(const std::vector<ConfigError>& errors, const std::string& pointer,
         const std::string& fragment) {
  for (const ConfigError& e : errors)
    if (e.pointer == pointer && (e.message.find(fragment) != std::string::npos ||
                                 e.hint.find(fragment) != std::string::npos))
      return true;
  return false;
}

std::string Dump(const std::vector<ConfigError>& errors) {
  return FormatConfigErrors("test", errors);
}

Config MustParse(const json& j) {
  std::vector<ConfigError> errors;
  auto c = Parse(j, &errors);
  EXPECT_TRUE(c.has_value()) << Dump(errors);
  return c ? *c : Config();
}

TEST(Durations, UnitsAndIntegers) {
  EXPECT_EQ(ParseDurationMs("250ms"), 250);
  EXPECT_EQ(ParseDurationMs("10s"), 10000);
  EXPECT_EQ(ParseDurationMs("5m"), 300000);
  EXPECT_EQ(ParseDurationMs("2h"), 7200000);
  EXPECT_EQ(ParseDurationMs("1d"), 86400000);
  EXPECT_EQ(ParseDurationMs("0"), 0);
  EXPECT_EQ(ParseDurationMs("7d"), 604800000);
  EXPECT_FALSE(ParseDurationMs("10"));  // a string needs its unit
  EXPECT_FALSE(ParseDurationMs("10 s"));
  EXPECT_FALSE(ParseDurationMs("1.5s"));
  EXPECT_FALSE(ParseDurationMs("-1s"));
  EXPECT_FALSE(ParseDurationMs("5min"));
  EXPECT_FALSE(ParseDurationMs(""));
  EXPECT_FALSE(ParseDurationMs("99999999999999999999d"));
}

TEST(Sizes, UnitsAndIntegers) {
  EXPECT_EQ(ParseSizeBytes("64KB"), 65536);
  EXPECT_EQ(ParseSizeBytes("256MB"), 268435456);
  EXPECT_EQ(ParseSizeBytes("1GB"), 1073741824);
  EXPECT_EQ(ParseSizeBytes("1kb"), 1024);
  EXPECT_EQ(ParseSizeBytes("2MiB"), 2097152);
  EXPECT_EQ(ParseSizeBytes("512B"), 512);
  EXPECT_EQ(ParseSizeBytes("4096"), 4096);
  EXPECT_FALSE(ParseSizeBytes("64XB"));
  EXPECT_FALSE(ParseSizeBytes("MB"));
  EXPECT_FALSE(ParseSizeBytes("1.5MB"));
}

TEST(Defaults, EveryDocumentedDefault) {
  Config c = MustParse(Base());
  EXPECT_EQ(c.gateway, "gw-01");
  EXPECT_EQ(c.source.client_id, "weir-gw-01");
  EXPECT_EQ(c.source.qos, 1);
  EXPECT_EQ(c.source.device, "{device}");
  EXPECT_FALSE(c.source.timestamp.received);
  EXPECT_EQ(c.source.timestamp.path, "/ts");
  EXPECT_EQ(c.source.timestamp.unit, TimestampUnit::kMs);
  EXPECT_EQ(c.source.topics.at(0).format, PayloadFormat::kJson);
  EXPECT_EQ(c.source.max_payload_bytes, 64 * 1024);
  EXPECT_EQ(c.source.max_devices, 10000);
  EXPECT_EQ(c.source.session_expiry_ms, 7LL * 86400000);
  EXPECT_FALSE(c.source.status.enabled);
  EXPECT_EQ(c.source.seq, "");
  const PipelineConfig& p = c.pipelines.at(0);
  EXPECT_EQ(p.key, std::vector<std::string>{"device"});
  EXPECT_EQ(p.window.type, WindowType::kTumbling);
  EXPECT_EQ(p.window.size_ms, 60000);
  EXPECT_EQ(p.window.hop_ms, 60000);
  EXPECT_EQ(p.window.offset_ms, 0);
  EXPECT_EQ(p.event_time.max_out_of_orderness_ms, 0);
  EXPECT_EQ(p.event_time.idle_timeout_ms, 300000);
  EXPECT_EQ(p.event_time.max_hold_ms, 86400000);
  EXPECT_EQ(p.event_time.allowed_lateness_ms, 0);
  EXPECT_EQ(p.event_time.late, LatePolicy::kDrop);
  EXPECT_EQ(p.event_time.late_emit_delay_ms, 1000);
  EXPECT_EQ(p.event_time.clock, ClockMode::kDevice);
  EXPECT_EQ(p.max_keys, 10000);
  EXPECT_EQ(c.storage.path, "weir.db");
  EXPECT_EQ(c.storage.max_bytes, 256LL << 20);
  EXPECT_EQ(c.storage.sync, SyncMode::kNormal);
  EXPECT_EQ(c.storage.commit_interval_ms, 20);
  EXPECT_EQ(c.storage.on_full, OnFull::kDropOldest);
  EXPECT_EQ(c.ingest.durability, Durability::kJournal);
  EXPECT_FALSE(c.uplink.present);
  EXPECT_EQ(c.metrics.listen, "");
}

TEST(Defaults, UplinkClientIdAndTopic) {
  json j = Base();
  j["uplink"] = {{"broker", "ssl://cloud.example:8883"}};
  Config c = MustParse(j);
  EXPECT_TRUE(c.uplink.present);
  EXPECT_EQ(c.uplink.client_id, "weir-gw-01-uplink");
  EXPECT_EQ(c.uplink.topic, "weir/{gateway}/{pipeline}");
  EXPECT_EQ(c.uplink.batch_max, 100);
  EXPECT_EQ(c.uplink.qos, 1);
  EXPECT_EQ(c.uplink.order, UplinkOrder::kLiveFirst);
  EXPECT_EQ(c.uplink.max_rate_per_s, 0);
}

TEST(Parse, DesignSection4Example) {
  // The example of DESIGN section 4, verbatim.
  const char* text = R"({
  "gateway": "gw-01",
  "source": {
    "broker": "tcp://127.0.0.1:1883",
    "client_id": "weir-gw-01",
    "qos": 1,
    "topics": [
      {"topic": "sensors/{device}/telemetry", "format": "json"},
      {"topic": "sensors/{device}/batch", "format": "flatbuffers"}
    ],
    "status": {"topic": "sensors/{device}/status", "online": "online", "offline": "offline"},
    "device": "{device}",
    "timestamp": {"path": "/ts", "unit": "ms"},
    "seq": "/seq",
    "sent_at": "/sent_at",
    "fields": {"temp": "/t", "hum": "/h", "current": "/i"},
    "tags": {"room": "/room"},
    "max_payload": "64KB",
    "max_devices": 10000
  },
  "pipelines": [
    {
      "name": "climate",
      "key": ["device"],
      "where": {"temp": {">=": -50, "<=": 120}},
      "window": {"type": "tumbling", "size": "1m"},
      "aggregates": {
        "n": {"count": "*"},
        "temp_avg": {"avg": "temp"},
        "temp_max": {"max": "temp"},
        "temp_p95": {"quantile": "temp", "q": 0.95}
      },
      "event_time": {"max_out_of_orderness": "2s", "idle_timeout": "5m",
                     "max_hold": "24h", "allowed_lateness": "6h", "late": "update",
                     "late_emit_delay": "1s"},
      "limits": {"max_keys": 10000}
    }
  ],
  "storage": {"path": "weir.db", "max_bytes": "256MB", "sync": "normal",
              "commit_interval": "20ms", "on_full": "drop_oldest"},
  "ingest": {"durability": "journal"},
  "uplink": {"broker": "ssl://cloud.example:8883", "client_id": "gw-01", "qos": 1,
             "topic": "weir/{gateway}/{pipeline}", "batch_max": 100,
             "max_rate": "2000/s", "order": "live_first",
             "tls": {"ca": "ca.pem", "cert": "gw.pem", "key": "gw.key"}},
  "metrics": {"listen": "127.0.0.1:9464"}
})";
  std::vector<ConfigError> errors;
  auto c = ParseConfig(text, &errors, /*for_run=*/true);
  ASSERT_TRUE(c.has_value()) << Dump(errors);
  EXPECT_EQ(c->source.topics.size(), 2u);
  EXPECT_EQ(c->source.topics[1].format, PayloadFormat::kFlatbuffers);
  EXPECT_TRUE(c->source.status.enabled);
  EXPECT_EQ(c->source.fields.size(), 3u);
  EXPECT_EQ(c->source.fields[2].name, "current");  // config order = field index
  EXPECT_EQ(c->source.fields[2].path, "/i");
  EXPECT_EQ(c->FieldIndex("hum"), 1);
  EXPECT_EQ(c->attributes, std::vector<std::string>{"room"});
  const PipelineConfig& p = c->pipelines[0];
  ASSERT_EQ(p.where.size(), 2u);
  EXPECT_EQ(p.where[0].op, CompareOp::kGe);
  EXPECT_EQ(p.where[0].number, -50);
  EXPECT_EQ(p.where[1].op, CompareOp::kLe);
  ASSERT_EQ(p.aggregates.size(), 4u);  // config order, not sorted
  EXPECT_EQ(p.aggregates[0].name, "n");
  EXPECT_EQ(p.aggregates[0].field, "*");
  EXPECT_EQ(p.aggregates[3].name, "temp_p95");
  EXPECT_EQ(p.aggregates[3].kind, AggregateKind::kQuantile);
  EXPECT_DOUBLE_EQ(p.aggregates[3].q, 0.95);
  EXPECT_EQ(p.event_time.max_out_of_orderness_ms, 2000);
  EXPECT_EQ(p.event_time.allowed_lateness_ms, 6 * 3600000);
  EXPECT_EQ(p.event_time.late, LatePolicy::kUpdate);
  EXPECT_DOUBLE_EQ(c->uplink.max_rate_per_s, 2000);
  EXPECT_EQ(c->uplink.tls.key, "gw.key");
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9464");
}

TEST(Parse, IntegerDurationsAndSizes) {
  json j = Base();
  j["pipelines"][0]["window"]["size"] = 60000;
  j["source"]["max_payload"] = 1000;
  Config c = MustParse(j);
  EXPECT_EQ(c.pipelines[0].window.size_ms, 60000);
  EXPECT_EQ(c.source.max_payload_bytes, 1000);
}

TEST(Parse, TimestampReceivedAndUnits) {
  json j = Base();
  j["source"]["timestamp"] = "received";
  EXPECT_TRUE(MustParse(j).source.timestamp.received);
  j["source"]["timestamp"] = {{"path", "/time"}, {"unit", "iso8601"}};
  Config c = MustParse(j);
  EXPECT_EQ(c.source.timestamp.path, "/time");
  EXPECT_EQ(c.source.timestamp.unit, TimestampUnit::kIso8601);
  j["source"]["timestamp"] = "sent";
  EXPECT_TRUE(Has(Errors(j), "/source/timestamp", "received"));
  j["source"]["timestamp"] = {{"unit", "ns"}};
  EXPECT_TRUE(Has(Errors(j), "/source/timestamp/unit", "\"ms\""));
}

TEST(Attributes, CapturesInOrderThenTags) {
  json j = Base();
  j["source"]["topics"] =
      json::array({{{"topic", "a/{site}/{device}/x"}}, {{"topic", "b/{line}/{site}/{device}/#"}}});
  j["source"]["tags"] = {{"room", "/room"}, {"site", "/site"}, {"model", "/m"}};
  Config c = MustParse(j);
  EXPECT_EQ(c.attributes, (std::vector<std::string>{"site", "line", "room", "model"}));
  EXPECT_EQ(c.AttributeIndex("line"), 1);
  EXPECT_EQ(c.AttributeIndex("device"), -1);
  EXPECT_EQ(c.AttributeIndex("nope"), -1);
}

TEST(Attributes, LimitsEnforced) {
  json j = Base();
  json fields = json::object();
  for (int i = 0; i <= kMaxFields; ++i) fields["f" + std::to_string(i)] = "/f" + std::to_string(i);
  j["source"]["fields"] = fields;
  EXPECT_TRUE(Has(Errors(j), "/source/fields", "at most 64"));
  j = Base();
  json tags = json::object();
  for (int i = 0; i < kMaxAttributes; ++i) tags["t" + std::to_string(i)] = "/t";
  j["source"]["tags"] = tags;  // plus the {site} capture: one too many
  EXPECT_TRUE(Has(Errors(j), "/source/tags", "at most 32"));
  tags.erase("t0");
  j["source"]["tags"] = tags;
  EXPECT_EQ(MustParse(j).attributes.size(), static_cast<size_t>(kMaxAttributes));
}

TEST(Errors, UnknownKeyWithDidYouMean) {
  json j = Base();
  j["pipelines"][0]["windw"] = j["pipelines"][0]["window"];
  j["pipelines"][0].erase("window");
  j["source"]["brokr"] = "x";
  j["pipelines"][0]["event_time"] = {{"allowed_latenes", "1h"}};
  j["storage"] = {{"zzzzzz", 1}};
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/pipelines/0/windw", "did you mean \"window\"")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/source/brokr", "did you mean \"broker\""));
  EXPECT_TRUE(
      Has(errors, "/pipelines/0/event_time/allowed_latenes", "did you mean \"allowed_lateness\""));
  EXPECT_TRUE(Has(errors, "/storage/zzzzzz", "valid keys here"));
  // The misspelt window also means the real one is missing: every error is reported.
  EXPECT_TRUE(Has(errors, "/pipelines/0/window", "missing required key"));
}

TEST(Errors, ReportsAllNotJustTheFirst) {
  json j = Base();
  j["gateway"] = "gw 01";
  j["source"]["qos"] = 3;
  j["pipelines"][0]["window"]["size"] = "1 minute";
  j["storage"] = {{"sync", "fulll"}};
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/gateway", "not a valid name")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/source/qos", "between 0 and 2"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/window/size", "not a duration"));
  EXPECT_TRUE(Has(errors, "/storage/sync", "did you mean \"full\""));
  EXPECT_EQ(errors.size(), 4u) << Dump(errors);
}

TEST(Errors, TypeErrors) {
  json j = Base();
  j["source"]["qos"] = "1";
  j["source"]["topics"] = {{{"topic", 5}}};
  j["pipelines"][0]["key"] = "device";
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/source/qos", "expected an integer, got a string")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/source/topics/0/topic", "expected a string"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/key", "expected an array"));
}

TEST(Errors, RequiredKeysAndEmptyPipelines) {
  json j = Base();
  j.erase("gateway");
  j["source"].erase("broker");
  j["pipelines"] = json::array();
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/gateway", "missing required key")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/source/broker", "missing required key"));
  EXPECT_TRUE(Has(errors, "/pipelines", "must not be empty"));
  j = Base();
  j["pipelines"][0].erase("aggregates");
  j["pipelines"][0].erase("name");
  errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates", "missing required key")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/pipelines/0/name", "missing required key"));
  j = Base();
  j["pipelines"][0]["aggregates"] = json::object();
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/aggregates", "must not be empty"));
}

TEST(Errors, NotJson) {
  std::vector<ConfigError> errors;
  EXPECT_FALSE(ParseConfig("{\n  \"gateway\": \"x\",\n}", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "");
  EXPECT_NE(errors[0].message.find("line 3"), std::string::npos) << errors[0].message;
  errors.clear();
  EXPECT_FALSE(ParseConfig("[]", &errors));
  EXPECT_TRUE(Has(errors, "", "expected an object"));
}

TEST(Errors, DuplicateJsonKeys) {
  std::vector<ConfigError> errors;
  std::string text = Base().dump();
  text.insert(text.find("\"window\""), R"("window": {"type": "session", "gap": "1m"}, )");
  text.insert(1, R"("gateway": "gw-02", )");
  EXPECT_FALSE(ParseConfig(text, &errors));
  EXPECT_TRUE(Has(errors, "/pipelines/0/window", "appears twice")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/gateway", "appears twice")) << Dump(errors);
}

TEST(Rules, UplinkRequiredOnlyForRun) {
  std::vector<ConfigError> errors;
  EXPECT_TRUE(Parse(Base(), &errors, false).has_value());
  EXPECT_TRUE(Has(Errors(Base(), true), "/uplink", "missing required key"));
}

TEST(Rules, EqualClientIdsOnOneBroker) {
  json j = Base();
  j["uplink"] = {{"broker", "tcp://127.0.0.1:1883"}, {"client_id", "weir-gw-01"}};
  EXPECT_TRUE(Has(Errors(j), "/uplink/client_id", "different client ids"));
  j["uplink"]["broker"] = "mqtt://127.0.0.1:1883/";  // the same broker spelt differently
  EXPECT_TRUE(Has(Errors(j), "/uplink/client_id", "same broker"));
  j["uplink"]["broker"] = "tcp://127.0.0.1:1884";  // another broker: fine
  MustParse(j);
  j["uplink"] = {{"broker", "tcp://127.0.0.1:1883"}};  // defaults differ
  MustParse(j);
  j["gateway"] = "bad name";  // no default ids then: only the name is reported
  auto errors = Errors(j);
  EXPECT_EQ(errors.size(), 1u) << Dump(errors);
}

TEST(Rules, Names) {
  json j = Base();
  j["gateway"] = std::string(65, 'a');
  EXPECT_TRUE(Has(Errors(j), "/gateway", "1 to 64"));
  j["gateway"] = "gw/1";
  EXPECT_TRUE(Has(Errors(j), "/gateway", "not a valid name"));
  j = Base();
  j["pipelines"][0]["name"] = "";
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/name", "not a valid name"));
  j = Base();
  j["pipelines"].push_back(j["pipelines"][0]);
  EXPECT_TRUE(Has(Errors(j), "/pipelines/1/name", "used twice"));
  j = Base();
  j["source"]["fields"]["bad name"] = "/x";
  EXPECT_TRUE(Has(Errors(j), "/source/fields/bad name", "not a valid name"));
}

TEST(Rules, Windows) {
  json j = Base();
  j["pipelines"][0]["window"] = {{"type", "hopping"}, {"size", "10m"}, {"hop", "3m"}};
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/pipelines/0/window/size", "not a multiple of hop")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/pipelines/0/window/size", "540000ms or 720000ms"));
  j["pipelines"][0]["window"] = {{"type", "hopping"}, {"size", "15m"}, {"hop", "5m"}};
  Config c = MustParse(j);
  EXPECT_EQ(c.pipelines[0].window.hop_ms, 300000);
  EXPECT_EQ(c.pipelines[0].window.size_ms, 900000);
  j["pipelines"][0]["window"] = {{"type", "hopping"}, {"size", "15m"}};
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/window/hop", "missing required key"));
  j["pipelines"][0]["window"] = {{"type", "tumbling"}};
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/window/size", "missing required key"));
  j["pipelines"][0]["window"] = {{"type", "tumbling"}, {"size", "1m"}, {"gap", "1m"}};
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/window/gap", "does not apply"));
  // Offsets a whole hop apart give the same windows (floor modulo, DESIGN 5.1).
  j["pipelines"][0]["window"] = {{"type", "tumbling"}, {"size", "1m"}, {"offset", "150s"}};
  EXPECT_EQ(MustParse(j).pipelines[0].window.offset_ms, 30000);
  j["pipelines"][0]["window"] = {{"type", "hopping"}, {"size", "15m"}, {"hop", "5m"}, {"offset", "5m"}};
  EXPECT_EQ(MustParse(j).pipelines[0].window.offset_ms, 0);
  j["pipelines"][0]["window"] = {{"type", "session"}, {"size", "1m"}};
  auto session_errors = Errors(j);
  EXPECT_TRUE(Has(session_errors, "/pipelines/0/window/gap", "missing required key"));
  EXPECT_TRUE(Has(session_errors, "/pipelines/0/window/size", "does not apply"));
  j["pipelines"][0]["window"] = {{"type", "session"}, {"gap", "30s"}, {"max_duration", "8h"}};
  c = MustParse(j);
  EXPECT_EQ(c.pipelines[0].window.type, WindowType::kSession);
  EXPECT_EQ(c.pipelines[0].window.gap_ms, 30000);
  EXPECT_EQ(c.pipelines[0].window.max_duration_ms, 8 * 3600000);
  j["pipelines"][0]["window"] = {{"type", "sliding"}, {"size", "1m"}};
  auto type_errors = Errors(j);
  EXPECT_TRUE(Has(type_errors, "/pipelines/0/window/type", "\"tumbling\""));
  EXPECT_EQ(type_errors.size(), 1u) << Dump(type_errors);  // no guesses about other keys
  j["pipelines"][0]["window"] = {{"type", "tumbling"}, {"size", "0"}};
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/window/size", "greater than 0"));
}

TEST(Rules, Aggregates) {
  json j = Base();
  auto& a = j["pipelines"][0]["aggregates"];
  a["p"] = {{"quantile", "temp"}, {"q", 1}};
  a["p2"] = {{"quantile", "temp"}};
  a["x"] = {{"avg", "tmp"}};
  a["y"] = {{"sum", "*"}};
  a["z"] = {{"min", "temp"}, {"max", "temp"}};
  a["w"] = {{"median", "temp"}};
  a["v"] = {{"avg", "temp"}, {"q", 0.5}};
  a["c"] = {{"count", "hum"}};  // fine: count of readings that have hum
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/p/q", "strictly between 0 and 1"))
      << Dump(errors);
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/p2/q", "quantile needs q"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/x/avg", "did you mean \"temp\""));
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/y/sum", "only works with count"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/z", "more than one aggregate kind"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/w/median", "unknown key"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/aggregates/v/q", "quantile only"));
  EXPECT_EQ(errors.size(), 8u) << Dump(errors);  // w also has no kind
}

TEST(Rules, WhereNames) {
  json j = Base();
  j["pipelines"][0]["where"] = {
      {"temp", {{">", 0}}}, {"room", {{"==", "kitchen"}}}, {"site", {{"!=", "lab"}}}};
  Config c = MustParse(j);
  ASSERT_EQ(c.pipelines[0].where.size(), 3u);
  EXPECT_TRUE(c.pipelines[0].where[1].is_text);
  EXPECT_EQ(c.pipelines[0].where[1].text, "kitchen");
  j["pipelines"][0]["where"] = {{"tmep", {{">", 0}}},
                                {"room", {{">", "a"}}},
                                {"site", {{"==", 5}}},
                                {"hum", {{"<", "50"}}},
                                {"temp", {{"=>", 1}}}};
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/pipelines/0/where/tmep", "did you mean \"temp\"")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/pipelines/0/where/room/>", "use == or !="));
  EXPECT_TRUE(Has(errors, "/pipelines/0/where/site/==", "write the value in quotes"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/where/hum/<", "compared to a text"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/where/temp/=>", "did you mean \">=\""));
  j["pipelines"][0]["where"] = {{"room", {{"==", "a"}, {"<=", "b"}}}};
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/where/room/<=", "use == or !="));
}

TEST(Rules, KeyNames) {
  json j = Base();
  j["pipelines"][0]["key"] = {"site", "room", "device"};
  EXPECT_EQ(MustParse(j).pipelines[0].key, (std::vector<std::string>{"site", "room", "device"}));
  j["pipelines"][0]["key"] = json::array();
  EXPECT_TRUE(MustParse(j).pipelines[0].key.empty());
  j["pipelines"][0]["key"] = {"rooom", "temp", "site", "site"};
  auto errors = Errors(j);
  EXPECT_TRUE(Has(errors, "/pipelines/0/key/0", "did you mean \"room\"")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "/pipelines/0/key/1", "numeric field"));
  EXPECT_TRUE(Has(errors, "/pipelines/0/key/3", "listed twice"));
}

TEST(Rules, TopicTemplates) {
  json j = Base();
  for (const char* bad : {"a/{dev}ice/x", "a/#/b", "a/+/b", "a/{device}/{device}", "a/{}/b"}) {
    j["source"]["topics"] = {{{"topic", bad}}};
    EXPECT_TRUE(Has(Errors(j), "/source/topics/0/topic", "bad topic template")) << bad;
  }
  j["source"]["topics"] = {{{"topic", "a/{device}/#"}}};
  MustParse(j);
  j["source"]["topics"] = {{{"topic", "a/{site}/data"}}};  // no {device} capture
  EXPECT_TRUE(Has(Errors(j), "/source/topics/0/topic", "no {device} capture"));
  j["source"]["topics"] = {{{"topic", "a/{site}/data"}, {"format", "flatbuffers"}}};
  MustParse(j);  // a FlatBuffers batch names its device
}

TEST(Rules, DeviceAndStatus) {
  json j = Base();
  j["source"]["device"] = "device";
  EXPECT_TRUE(Has(Errors(j), "/source/device", "neither a topic capture nor a JSON pointer"));
  j["source"]["device"] = "/id";
  j["source"]["topics"] = {{{"topic", "a/{site}/data"}}};
  MustParse(j);
  j["source"]["status"] = {{"topic", "a/{site}/status"}};
  EXPECT_TRUE(Has(Errors(j), "/source/status/topic", "status messages cannot name their device"));
  j = Base();
  j["source"]["status"] = {{"topic", "sensors/{site}/status"}};
  EXPECT_TRUE(Has(Errors(j), "/source/status/topic", "no {device} capture"));
  j["source"]["status"] = {{"topic", "sensors/{site}/{device}/status/#/x"}};
  EXPECT_TRUE(Has(Errors(j), "/source/status/topic", "bad topic template"));
  j["source"]["status"] = {
      {"topic", "sensors/{site}/{device}/status"}, {"online", "1"}, {"offline", "1"}};
  EXPECT_TRUE(Has(Errors(j), "/source/status/offline", "equal"));
  j["source"]["status"] = {{"topic", "sensors/{site}/{device}/status"}};
  Config c = MustParse(j);
  EXPECT_TRUE(c.source.status.enabled);
  EXPECT_EQ(c.source.status.online, "online");
  EXPECT_EQ(c.source.status.offline, "offline");
  j = Base();
  j["source"]["seq"] = "seq";
  EXPECT_TRUE(Has(Errors(j), "/source/seq", "starts with '/'"));
}

TEST(Rules, UplinkDetails) {
  json j = Base();
  j["uplink"] = {{"broker", "ssl://c:8883"}, {"max_rate", "2000/sec"}};
  EXPECT_TRUE(Has(Errors(j), "/uplink/max_rate", "not a rate"));
  j["uplink"] = {{"broker", "tcp://c:1883"}, {"tls", {{"ca", "ca.pem"}}}};
  EXPECT_TRUE(Has(Errors(j), "/uplink/tls", "ssl://"));
  j["uplink"] = {{"broker", "ssl://c:8883"}, {"tls", {{"cert", "c.pem"}}}};
  EXPECT_TRUE(Has(Errors(j), "/uplink/tls/key", "both"));
  j["uplink"] = {{"broker", "ssl://c:8883"}, {"topic", "weir/{site}"}};
  EXPECT_TRUE(Has(Errors(j), "/uplink/topic", "{gateway} and {pipeline}"));
  j["uplink"] = {{"broker", "ssl://c:8883"}, {"password", "x"}};
  EXPECT_TRUE(Has(Errors(j), "/uplink/password", "username"));
  j["uplink"] = {{"broker", "ssl://c:8883"}, {"max_rate", "120/m"}, {"username", "u"},
                 {"password", "p"},          {"order", "in_order"}, {"batch_max", 1}};
  Config c = MustParse(j);
  EXPECT_DOUBLE_EQ(c.uplink.max_rate_per_s, 2);
  EXPECT_EQ(c.uplink.order, UplinkOrder::kInOrder);
  EXPECT_EQ(c.uplink.password, "p");
  j["uplink"]["batch_max"] = 0;
  EXPECT_TRUE(Has(Errors(j), "/uplink/batch_max", "between 1 and"));
  j = Base();
  j["metrics"] = {{"listen", "localhost"}};
  EXPECT_TRUE(Has(Errors(j), "/metrics/listen", "host:port"));
}

TEST(Rules, CorrectedClockNeedsSentAt) {
  json j = Base();
  j["pipelines"][0]["event_time"] = {{"clock", "corrected"}};
  EXPECT_TRUE(Has(Errors(j), "/pipelines/0/event_time/clock", "sent_at"));
  j["source"]["sent_at"] = "/sent_at";
  EXPECT_EQ(MustParse(j).pipelines[0].event_time.clock, ClockMode::kCorrected);
}

// --- Definition fingerprint (DESIGN 6.5) ---

std::string Fingerprint(const json& j) { return MustParse(j).pipelines.at(0).fingerprint; }

TEST(Definition, IgnoresKeyOrderWhitespaceAndDurationSpelling) {
  json j = Base();
  j["pipelines"][0]["where"] = {{"temp", {{">", 0}, {"<", 50}}}};
  Config a = MustParse(j);
  EXPECT_EQ(a.pipelines[0].fingerprint.size(), 64u);  // hex SHA-256

  // The same pipeline, written differently by hand.
  std::string text = R"({"pipelines": [ {
      "aggregates": {"temp_avg": {"avg": "temp"},   "n": {"count": "*"}},
      "where": {"temp": {"<": 50.0, ">": 0}},
      "window": {"size": "60s", "type": "tumbling", "offset": 0},
      "key": ["device"],
      "event_time": {"clock": "device"},
      "name": "climate"
    } ],
    "source": {"tags": {"room": "/room"}, "fields": {"temp": "/t", "hum": "/h"},
               "topics": [{"topic": "sensors/{site}/{device}/telemetry"}],
               "broker": "tcp://127.0.0.1:1883"},
    "gateway": "gw-01"})";
  std::vector<ConfigError> errors;
  auto b = ParseConfig(text, &errors);
  ASSERT_TRUE(b) << Dump(errors);
  EXPECT_EQ(a.pipelines[0].definition_json, b->pipelines[0].definition_json);
  EXPECT_EQ(a.pipelines[0].fingerprint, b->pipelines[0].fingerprint);
  // "1m" and 60000 too.
  j["pipelines"][0]["window"]["size"] = 60000;
  EXPECT_EQ(Fingerprint(j), a.pipelines[0].fingerprint);
}

TEST(Definition, CanonicalJsonHasDefaultsSortedAndMs) {
  Config c = MustParse(Base());
  EXPECT_EQ(c.pipelines[0].definition_json,
            R"({"aggregates":{"n":{"count":"*"},"temp_avg":{"avg":"temp"}},)"
            R"("event_time":{"clock":"device"},"key":["device"],"where":{},)"
            R"("window":{"offset":0,"size":60000,"type":"tumbling"}})");
}

TEST(Definition, ChangesWithEveryDefinitionKey) {
  json base = Base();
  base["source"]["sent_at"] = "/sent_at";
  const std::string original = Fingerprint(base);
  std::vector<std::pair<std::string, json>> edits = {
      {"/pipelines/0/key", json::array({"site"})},
      {"/pipelines/0/key", json::array()},
      {"/pipelines/0/where", {{"temp", {{">", 0}}}}},
      {"/pipelines/0/window/size", "2m"},
      {"/pipelines/0/window/offset", "10s"},
      {"/pipelines/0/window", {{"type", "hopping"}, {"size", "1m"}, {"hop", "30s"}}},
      {"/pipelines/0/window", {{"type", "session"}, {"gap", "1m"}}},
      {"/pipelines/0/aggregates/n", {{"count", "temp"}}},
      {"/pipelines/0/aggregates/temp_avg", {{"max", "temp"}}},
      {"/pipelines/0/aggregates/extra", {{"min", "hum"}}},
      {"/pipelines/0/event_time", {{"clock", "corrected"}}},
  };
  for (const auto& [pointer, value] : edits) {
    json j = base;
    j[json::json_pointer(pointer)] = value;
    EXPECT_NE(Fingerprint(j), original) << pointer << " = " << value.dump();
  }
  json q = base;
  q["pipelines"][0]["aggregates"]["p"] = {{"quantile", "temp"}, {"q", 0.9}};
  json q2 = q;
  q2["pipelines"][0]["aggregates"]["p"]["q"] = 0.95;
  EXPECT_NE(Fingerprint(q), Fingerprint(q2));
  json w = base;
  w["pipelines"][0]["where"] = {{"temp", {{">", 0}}}};
  json w2 = base;
  w2["pipelines"][0]["where"] = {{"temp", {{">", 1}}}};
  EXPECT_NE(Fingerprint(w), Fingerprint(w2));
  json s1 = base, s2 = base;
  s1["pipelines"][0]["window"] = {{"type", "session"}, {"gap", "1m"}};
  s2["pipelines"][0]["window"] = {{"type", "session"}, {"gap", "1m"}, {"max_duration", "1h"}};
  EXPECT_NE(Fingerprint(s1), Fingerprint(s2));
}

TEST(Definition, IgnoresEverythingElse) {
  json base = Base();
  const std::string original = Fingerprint(base);
  std::vector<std::pair<std::string, json>> edits = {
      {"/pipelines/0/event_time/allowed_lateness", "6h"},
      {"/pipelines/0/event_time/late", "update"},
      {"/pipelines/0/event_time/max_out_of_orderness", "2s"},
      {"/pipelines/0/event_time/idle_timeout", "1m"},
      {"/pipelines/0/event_time/max_hold", "1h"},
      {"/pipelines/0/event_time/late_emit_delay", "5s"},
      {"/pipelines/0/limits", {{"max_keys", 5}}},
      {"/source/qos", 0},
      {"/source/fields/extra", "/x"},
      {"/storage", {{"path", "other.db"}}},
      {"/uplink", {{"broker", "ssl://c:8883"}}},
      {"/metrics", {{"listen", "127.0.0.1:9464"}}},
      {"/gateway", "gw-02"},
  };
  for (const auto& [pointer, value] : edits) {
    json j = base;
    j[json::json_pointer(pointer)] = value;
    EXPECT_EQ(Fingerprint(j), original) << pointer << " = " << value.dump();
  }
}

// --- Files that ship with the project ---

TEST(Shipped, ExamplesValidateForRun) {
  int n = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(WEIR_SOURCE_DIR) + "/configs/examples")) {
    if (entry.path().extension() != ".json") continue;
    std::vector<ConfigError> errors;
    auto c = LoadConfigFile(entry.path().string(), &errors, /*for_run=*/true);
    EXPECT_TRUE(c.has_value()) << FormatConfigErrors(entry.path().string(), errors);
    ++n;
  }
  EXPECT_GE(n, 4);
}

TEST(Shipped, DemoIsWhatScriptsDemoExpects) {
  std::vector<ConfigError> errors;
  auto c =
      LoadConfigFile(std::string(WEIR_SOURCE_DIR) + "/configs/examples/demo.json", &errors, true);
  ASSERT_TRUE(c) << FormatConfigErrors("demo.json", errors);
  EXPECT_EQ(c->gateway, "demo");
  EXPECT_EQ(c->source.broker, "tcp://127.0.0.1:1883");
  ASSERT_EQ(c->source.topics.size(), 2u);
  EXPECT_EQ(c->source.topics[0].topic, "sensors/{device}/telemetry");
  EXPECT_EQ(c->source.topics[1].format, PayloadFormat::kFlatbuffers);
  EXPECT_EQ(c->source.status.topic, "sensors/{device}/status");
  ASSERT_EQ(c->source.fields.size(), 2u);
  EXPECT_EQ(c->source.fields[0].name, "temp");
  EXPECT_EQ(c->source.fields[1].name, "hum");
  EXPECT_EQ(c->source.seq, "/seq");
  EXPECT_EQ(c->source.sent_at, "/sent_at");
  const PipelineConfig& p = c->pipelines.at(0);
  EXPECT_EQ(p.name, "climate");
  EXPECT_EQ(p.window.size_ms, 10000);
  ASSERT_EQ(p.aggregates.size(), 4u);
  EXPECT_EQ(p.aggregates[3].name, "temp_p95");
  EXPECT_EQ(p.event_time.allowed_lateness_ms, 3600000);
  EXPECT_EQ(p.event_time.late, LatePolicy::kUpdate);
  EXPECT_EQ(c->uplink.broker, "tcp://127.0.0.1:1884");
  EXPECT_EQ(c->uplink.topic, "weir/{gateway}/{pipeline}");
}

TEST(Shipped, SemanticsExamplesValidate) {
  std::string dir = WEIR_SEMANTICS_DIR;
  if (const char* env = std::getenv("WEIR_SEMANTICS_DIR")) dir = env;
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " is missing";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto path = entry.path() / "config.json";
    if (!std::filesystem::exists(path)) continue;
    std::vector<ConfigError> errors;
    auto c = LoadConfigFile(path.string(), &errors);
    EXPECT_TRUE(c.has_value()) << FormatConfigErrors(path.string(), errors);
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST(Shipped, SchemaDescribesEveryTableKey) {
  json schema = json::parse(GenerateConfigSchema());
  EXPECT_EQ(schema["required"], json({"gateway", "source", "pipelines"}));
  json window = schema["properties"]["pipelines"]["items"]["properties"]["window"];
  EXPECT_EQ(window["properties"]["type"]["enum"], json({"tumbling", "hopping", "session"}));
  EXPECT_EQ(schema["properties"]["storage"]["properties"]["path"]["default"], "weir.db");
  std::string reference = GenerateConfigReference();
  for (const ConfigKey& k : ConfigKeys())
    if (*k.pattern) {
      EXPECT_NE(reference.find(std::string("`") + k.pattern + "`"), std::string::npos) << k.pattern;
    }
}

TEST(Format, PointerMessageHint) {
  std::vector<ConfigError> errors = {{"/a/b", "bad", "fix it"}, {"", "cannot read x", ""}};
  EXPECT_EQ(FormatConfigErrors("c.json", errors),
            "c.json: /a/b: bad (hint: fix it)\nc.json: cannot read x\n");
}

}  // namespace
}  // namespace weir
