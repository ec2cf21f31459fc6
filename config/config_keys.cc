// The config key table (DESIGN section 4) and the generators that turn it
// into the JSON Schema and the reference.
#include "config/config_keys.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/reading.h"

namespace weir {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Chainable row builder so the table below reads one key per line.
struct Row {
  ConfigKey k;
  Row(const char* pattern, KeyType type)
      : k{pattern, type, false, nullptr, nullptr, -kInf, kInf, false, nullptr, ""} {}
  Row& Required() {
    k.required = true;
    return *this;
  }
  Row& Default(const char* json) {
    k.default_json = json;
    return *this;
  }
  Row& Note(const char* note) {
    k.default_note = note;
    return *this;
  }
  Row& Min(double v) {
    k.min = v;
    return *this;
  }
  Row& Range(double lo, double hi) {
    k.min = lo;
    k.max = hi;
    return *this;
  }
  Row& Open(double lo, double hi) {
    k.min = lo;
    k.max = hi;
    k.exclusive = true;
    return *this;
  }
  Row& Choices(const char* c) {
    k.choices = c;
    return *this;
  }
  Row& Help(const char* h) {
    k.help = h;
    return *this;
  }
  operator ConfigKey() const { return k; }  // NOLINT: the table is a list of rows
};

using T = KeyType;

std::vector<ConfigKey> BuildTable() {
  const char* kAggHelp = "field name whose values this aggregate reduces";
  std::vector<ConfigKey> t = {
      Row("", T::kObject).Help("a weir config file"),
      Row("/gateway", T::kName)
          .Required()
          .Help("this gateway's name; appears in result ids, uplink topics and client ids"),

      Row("/source", T::kObject).Required().Help("the local MQTT broker the devices publish to"),
      Row("/source/broker", T::kString)
          .Required()
          .Help("broker URI: tcp://host:port, ssl://host:port, ws:// or wss://"),
      Row("/source/client_id", T::kString)
          .Note("weir-<gateway>")
          .Help(
              "MQTT client id; stable, so the broker keeps the persistent session across restarts"),
      Row("/source/qos", T::kInteger)
          .Default("1")
          .Range(0, 2)
          .Help("subscription QoS; 1 subscribes with a persistent session"),
      Row("/source/session_expiry", T::kDuration)
          .Default("\"7d\"")
          .Min(0)
          .Help("MQTT 5 session expiry: how long the broker queues readings while weir is away"),
      Row("/source/topics", T::kArray).Required().Min(1).Help("topics to subscribe to"),
      Row("/source/topics/*", T::kObject).Help("one subscribed topic template"),
      Row("/source/topics/*/topic", T::kTopic)
          .Required()
          .Help("topic template: {name} captures one level (subscribed as +), may end in #"),
      Row("/source/topics/*/format", T::kEnum)
          .Default("\"json\"")
          .Choices("json|flatbuffers")
          .Help("payload format: a JSON reading object or array, or a schemas/reading.fbs batch"),
      Row("/source/status", T::kObject)
          .Help("device status topic (e.g. an MQTT last will); a matching topic is status only"),
      Row("/source/status/topic", T::kTopic)
          .Required()
          .Help("status topic template; must capture the device when source.device is a capture"),
      Row("/source/status/online", T::kString)
          .Default("\"online\"")
          .Help("payload that marks the device online"),
      Row("/source/status/offline", T::kString)
          .Default("\"offline\"")
          .Help("payload that marks the device offline (its windows stay open up to max_hold)"),
      Row("/source/device", T::kString)
          .Default("\"{device}\"")
          .Help(
              "where the device identity comes from: a topic capture \"{name}\" or a JSON pointer"),
      Row("/source/timestamp", T::kTimestamp)
          .Default("{\"path\": \"/ts\", \"unit\": \"ms\"}")
          .Help("event time: {path, unit}, or \"received\" for the gateway's receive time"),
      Row("/source/timestamp/path", T::kPointer)
          .Default("\"/ts\"")
          .Help("JSON pointer to the timestamp in a reading"),
      Row("/source/timestamp/unit", T::kEnum)
          .Default("\"ms\"")
          .Choices("ms|s|us|iso8601")
          .Help("timestamp unit; numbers are truncated toward zero to int64 ms"),
      Row("/source/seq", T::kPointer)
          .Note("none (no dedup)")
          .Help("JSON pointer to the per-device sequence number used for dedup"),
      Row("/source/sent_at", T::kPointer)
          .Note("none")
          .Help("JSON pointer to the device clock at send time, used to estimate clock offset"),
      Row("/source/fields", T::kMap)
          .Default("{}")
          .Help("numeric fields: name -> JSON pointer into the reading"),
      Row("/source/fields/*", T::kPointer)
          .Help("JSON pointer to a numeric value; in a FlatBuffers batch, \"/t\" reads channel "
                "\"t\""),
      Row("/source/tags", T::kMap)
          .Default("{}")
          .Help("attributes from the payload: name -> JSON pointer; usable in key and where"),
      Row("/source/tags/*", T::kPointer).Help("JSON pointer to a string, number or boolean"),
      Row("/source/max_payload", T::kSize)
          .Default("\"64KB\"")
          .Min(1)
          .Help("larger payloads are rejected as oversize"),
      Row("/source/max_devices", T::kInteger)
          .Default("10000")
          .Min(1)
          .Help("devices tracked at once (watermarks, dedup state)"),
      Row("/source/username", T::kString).Note("none").Help("MQTT username"),
      Row("/source/password", T::kString).Note("none").Help("MQTT password; never logged"),

      Row("/pipelines", T::kArray).Required().Min(1).Help("the pipelines, run in this order"),
      Row("/pipelines/*", T::kObject).Help("one pipeline"),
      Row("/pipelines/*/name", T::kName)
          .Required()
          .Help("unique pipeline name; appears in result ids, uplink topics and metric labels"),
      Row("/pipelines/*/key", T::kArray)
          .Default("[\"device\"]")
          .Help("attribute names to group by: \"device\", topic captures or tags; [] groups all"),
      Row("/pipelines/*/key/*", T::kString).Help("\"device\", a topic capture or a tag"),
      Row("/pipelines/*/where", T::kMap)
          .Default("{}")
          .Help("filter: {name: {op: value}}; all conditions must hold"),
      Row("/pipelines/*/where/*", T::kObject)
          .Help("conditions on one field (numbers) or attribute (text with == and !=)"),
      Row("/pipelines/*/where/*/<", T::kNumberOrString)
          .Help("field value is less than (numbers only)"),
      Row("/pipelines/*/where/*/<=", T::kNumberOrString)
          .Help("field value is at most (numbers only)"),
      Row("/pipelines/*/where/*/>", T::kNumberOrString)
          .Help("field value is greater than (numbers only)"),
      Row("/pipelines/*/where/*/>=", T::kNumberOrString)
          .Help("field value is at least (numbers only)"),
      Row("/pipelines/*/where/*/==", T::kNumberOrString)
          .Help("field equals a number, or attribute equals a text"),
      Row("/pipelines/*/where/*/!=", T::kNumberOrString)
          .Help("field differs from a number, or attribute differs from a text"),
      Row("/pipelines/*/window", T::kObject)
          .Required()
          .Help("the window, e.g. {\"type\": \"tumbling\", \"size\": \"1m\"}"),
      Row("/pipelines/*/window/type", T::kEnum)
          .Required()
          .Choices("tumbling|hopping|session")
          .Help(
              "tumbling {size, offset}, hopping {size, hop, offset}, session {gap, max_duration}"),
      Row("/pipelines/*/window/size", T::kDuration)
          .Min(1)
          .Note("required (tumbling, hopping)")
          .Help("window length"),
      Row("/pipelines/*/window/hop", T::kDuration)
          .Min(1)
          .Note("required (hopping)")
          .Help("distance between window starts; size must be a multiple of it"),
      Row("/pipelines/*/window/offset", T::kDuration)
          .Min(0)
          .Note("0 (tumbling, hopping)")
          .Help(
              "shift of window starts from the Unix epoch; less than the hop (size for tumbling)"),
      Row("/pipelines/*/window/gap", T::kDuration)
          .Min(1)
          .Note("required (session)")
          .Help("inactivity that ends a session"),
      Row("/pipelines/*/window/max_duration", T::kDuration)
          .Min(1)
          .Note("unbounded (session)")
          .Help("a session never spans this long; a reading beyond starts a new one"),
      Row("/pipelines/*/aggregates", T::kMap)
          .Required()
          .Min(1)
          .Help("output name -> {kind: field}, e.g. {\"temp_avg\": {\"avg\": \"temp\"}}"),
      Row("/pipelines/*/aggregates/*", T::kObject)
          .Help("exactly one of count, sum, min, max, avg, first, last, stddev, quantile, delta"),
      Row("/pipelines/*/aggregates/*/count", T::kString)
          .Help("\"*\" counts readings; a field name counts readings that have it"),
      Row("/pipelines/*/aggregates/*/sum", T::kString).Help(kAggHelp),
      Row("/pipelines/*/aggregates/*/min", T::kString).Help(kAggHelp),
      Row("/pipelines/*/aggregates/*/max", T::kString).Help(kAggHelp),
      Row("/pipelines/*/aggregates/*/avg", T::kString).Help(kAggHelp),
      Row("/pipelines/*/aggregates/*/first", T::kString).Help("value at the earliest ts"),
      Row("/pipelines/*/aggregates/*/last", T::kString).Help("value at the latest ts"),
      Row("/pipelines/*/aggregates/*/stddev", T::kString).Help("population standard deviation"),
      Row("/pipelines/*/aggregates/*/quantile", T::kString)
          .Help("nearest-rank quantile within 1% relative error; needs q"),
      Row("/pipelines/*/aggregates/*/delta", T::kString).Help("last - first"),
      Row("/pipelines/*/aggregates/*/q", T::kNumber)
          .Open(0, 1)
          .Help("quantile's rank, strictly between 0 and 1 (0.95 for p95)"),
      Row("/pipelines/*/event_time", T::kObject).Help("watermarks and lateness (DESIGN 5)"),
      Row("/pipelines/*/event_time/max_out_of_orderness", T::kDuration)
          .Default("0")
          .Min(0)
          .Help("how far behind a device's newest reading its watermark stays"),
      Row("/pipelines/*/event_time/idle_timeout", T::kDuration)
          .Default("\"5m\"")
          .Min(0)
          .Help("a connected device silent this long no longer holds windows open"),
      Row("/pipelines/*/event_time/max_hold", T::kDuration)
          .Default("\"24h\"")
          .Min(0)
          .Help("an offline device holds its windows open at most this long"),
      Row("/pipelines/*/event_time/allowed_lateness", T::kDuration)
          .Default("0")
          .Min(0)
          .Help("how long after a window closes late readings may still update it"),
      Row("/pipelines/*/event_time/late", T::kEnum)
          .Default("\"drop\"")
          .Choices("drop|update|side")
          .Help("late readings: drop, update the window (new revision), or side (to topic/late)"),
      Row("/pipelines/*/event_time/late_emit_delay", T::kDuration)
          .Default("\"1s\"")
          .Min(0)
          .Help("a window updated by late readings re-emits after at least this long"),
      Row("/pipelines/*/event_time/clock", T::kEnum)
          .Default("\"device\"")
          .Choices("device|corrected")
          .Help("corrected shifts timestamps by the estimated clock offset (needs sent_at)"),
      Row("/pipelines/*/limits", T::kObject).Help("fixed-memory limits"),
      Row("/pipelines/*/limits/max_keys", T::kInteger)
          .Default("10000")
          .Min(1)
          .Help("keys held in memory; the least recently active beyond it are spilled to storage"),

      Row("/storage", T::kObject).Help("the SQLite file: journal, state, outbox"),
      Row("/storage/path", T::kString).Default("\"weir.db\"").Help("database file"),
      Row("/storage/max_bytes", T::kSize)
          .Default("\"256MB\"")
          .Min(1 << 20)
          .Help("bound on the file; at it, on_full decides"),
      Row("/storage/sync", T::kEnum)
          .Default("\"normal\"")
          .Choices("normal|full")
          .Help("SQLite synchronous mode (WAL)"),
      Row("/storage/commit_interval", T::kDuration)
          .Default("\"20ms\"")
          .Min(1)
          .Help("group commit period"),
      Row("/storage/on_full", T::kEnum)
          .Default("\"drop_oldest\"")
          .Choices("drop_oldest|block")
          .Help("drop_oldest undelivered results with a loss record, or block ingest"),

      Row("/ingest", T::kObject).Help("ingest durability"),
      Row("/ingest/durability", T::kEnum)
          .Default("\"journal\"")
          .Choices("journal|batch")
          .Help("journal: durable before the broker's PUBACK; batch: with the next group commit"),
      Row("/ingest/queue_capacity", T::kInteger)
          .Default("4096")
          .Min(1)
          .Help("messages between the MQTT thread and the loop; full blocks the broker (TCP)"),

      Row("/uplink", T::kObject)
          .Note("required by weir run")
          .Help("the upstream (cloud) broker results are forwarded to"),
      Row("/uplink/broker", T::kString).Required().Help("broker URI, ssl:// for TLS"),
      Row("/uplink/client_id", T::kString)
          .Note("weir-<gateway>-uplink")
          .Help("MQTT client id; must differ from source.client_id on the same broker"),
      Row("/uplink/qos", T::kInteger).Default("1").Range(0, 2).Help("publish QoS"),
      Row("/uplink/topic", T::kString)
          .Default("\"weir/{gateway}/{pipeline}\"")
          .Help("result topic; may use {gateway} and {pipeline}"),
      Row("/uplink/batch_max", T::kInteger)
          .Default("100")
          .Range(1, 100000)
          .Help("at most this many results per MQTT message (a JSON array; 1: one object)"),
      Row("/uplink/max_rate", T::kRate)
          .Note("unlimited")
          .Help("backlog drain rate, e.g. \"2000/s\""),
      Row("/uplink/order", T::kEnum)
          .Default("\"live_first\"")
          .Choices("live_first|in_order")
          .Help("after a reconnect: new results first, or strictly oldest first"),
      Row("/uplink/tls", T::kObject).Help("TLS files for an ssl:// broker"),
      Row("/uplink/tls/ca", T::kString).Note("none").Help("CA certificate file (PEM)"),
      Row("/uplink/tls/cert", T::kString).Note("none").Help("client certificate file (PEM)"),
      Row("/uplink/tls/key", T::kString)
          .Note("none")
          .Help("client key file (PEM); must not be readable by group or others"),
      Row("/uplink/username", T::kString).Note("none").Help("MQTT username"),
      Row("/uplink/password", T::kString)
          .Note("none (or env WEIR_UPLINK_PASSWORD)")
          .Help("MQTT password; never logged"),

      Row("/metrics", T::kObject).Help("Prometheus endpoint"),
      Row("/metrics/listen", T::kString)
          .Note("no endpoint")
          .Help("host:port serving /metrics, e.g. 127.0.0.1:9464"),
  };
  return t;
}

std::string_view Parent(std::string_view pattern) {
  size_t slash = pattern.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : pattern.substr(0, slash);
}

std::string_view LastSegment(std::string_view pattern) {
  size_t slash = pattern.rfind('/');
  return slash == std::string_view::npos ? pattern : pattern.substr(slash + 1);
}

const char* TypeWord(KeyType t) {
  switch (t) {
    case T::kObject:
      return "object";
    case T::kMap:
      return "object (name -> value)";
    case T::kArray:
      return "array";
    case T::kTimestamp:
      return "object or \"received\"";
    case T::kString:
      return "string";
    case T::kName:
      return "name";
    case T::kPointer:
      return "JSON pointer";
    case T::kTopic:
      return "topic template";
    case T::kInteger:
      return "integer";
    case T::kNumber:
      return "number";
    case T::kNumberOrString:
      return "number or string";
    case T::kDuration:
      return "duration";
    case T::kSize:
      return "size";
    case T::kRate:
      return "rate";
    case T::kEnum:
      return "enum";
  }
  return "";
}

using Json = nlohmann::ordered_json;

// Whole numbers print as integers ("minimum": 1, not 1.0).
Json Number(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v))) return static_cast<int64_t>(v);
  return v;
}

// The schema node for one row (children are filled in by the caller).
Json SchemaNode(const ConfigKey& k) {
  Json n = Json::object();
  if (k.help && *k.help) n["description"] = k.help;
  auto bounds = [&](Json* s) {
    if (k.min > -kInf) (*s)[k.exclusive ? "exclusiveMinimum" : "minimum"] = Number(k.min);
    if (k.max < kInf) (*s)[k.exclusive ? "exclusiveMaximum" : "maximum"] = Number(k.max);
  };
  switch (k.type) {
    case T::kObject:
    case T::kMap:
    case T::kTimestamp:
      n["type"] = "object";
      if (k.type == T::kMap && k.min > -kInf) n["minProperties"] = static_cast<int>(k.min);
      break;
    case T::kArray:
      n["type"] = "array";
      if (k.min > -kInf) n["minItems"] = static_cast<int>(k.min);
      break;
    case T::kString:
    case T::kTopic:
      n["type"] = "string";
      n["minLength"] = 1;
      break;
    case T::kName:
      n["type"] = "string";
      n["pattern"] = "^[A-Za-z0-9_.-]{1,64}$";
      break;
    case T::kPointer:
      n["type"] = "string";
      n["pattern"] = "^(/([^~]|~[01])*)*$";
      break;
    case T::kInteger:
      n["type"] = "integer";
      bounds(&n);
      break;
    case T::kNumber:
      n["type"] = "number";
      bounds(&n);
      break;
    case T::kNumberOrString:
      n["type"] = Json::array({"number", "string"});
      break;
    case T::kDuration:
      n["oneOf"] =
          Json::array({Json{{"type", "string"}, {"pattern", "^(0|[0-9]+(ms|s|m|h|d))$"}},
                       Json{{"type", "integer"}, {"minimum", Number(k.min > -kInf ? k.min : 0)}}});
      break;
    case T::kSize:
      n["oneOf"] =
          Json::array({Json{{"type", "string"}, {"pattern", "^[0-9]+ *([Bb]|[KkMmGg][Ii]?[Bb])$"}},
                       Json{{"type", "integer"}, {"minimum", Number(k.min > -kInf ? k.min : 0)}}});
      break;
    case T::kRate:
      n["oneOf"] =
          Json::array({Json{{"type", "string"}, {"pattern", "^[0-9]+(\\.[0-9]+)?/(s|m|h)$"}},
                       Json{{"type", "number"}, {"exclusiveMinimum", 0}}});
      break;
    case T::kEnum: {
      n["type"] = "string";
      Json values = Json::array();
      std::string c = k.choices;
      size_t start = 0;
      while (start <= c.size()) {
        size_t bar = c.find('|', start);
        if (bar == std::string::npos) bar = c.size();
        values.push_back(c.substr(start, bar - start));
        start = bar + 1;
      }
      n["enum"] = values;
      break;
    }
  }
  if (k.default_json) n["default"] = Json::parse(k.default_json);
  return n;
}

// Fills the schema of `pattern` with its children, recursively.
Json BuildSchema(std::string_view pattern) {
  const ConfigKey* k = FindConfigKey(pattern);
  Json n = SchemaNode(*k);
  std::string prefix = std::string(pattern) + "/";
  if (k->type == T::kObject || k->type == T::kTimestamp) {
    Json props = Json::object();
    Json required = Json::array();
    for (const std::string& child : ChildKeyNames(pattern)) {
      props[child] = BuildSchema(prefix + child);
      if (FindConfigKey(prefix + child)->required) required.push_back(child);
    }
    n["properties"] = props;
    if (!required.empty()) n["required"] = required;
    n["additionalProperties"] = false;
    if (pattern == "/pipelines/*/aggregates/*") {
      // Exactly one kind, plus q for quantile.
      n["minProperties"] = 1;
      n["maxProperties"] = 2;
    }
    if (k->type == T::kTimestamp) {
      Json object = n;
      object.erase("description");
      object.erase("default");
      Json wrapped = Json::object();
      wrapped["description"] = n["description"];
      wrapped["oneOf"] = Json::array({Json{{"type", "string"}, {"enum", {"received"}}}, object});
      wrapped["default"] = n["default"];
      return wrapped;
    }
  } else if (k->type == T::kMap) {
    n["additionalProperties"] = BuildSchema(prefix + "*");
    n["propertyNames"] = Json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}};
  } else if (k->type == T::kArray) {
    n["items"] = BuildSchema(prefix + "*");
  }
  return n;
}

std::string Allowed(const ConfigKey& k) {
  std::ostringstream out;
  auto num = [](double v) {
    Json j = v;
    if (v == static_cast<double>(static_cast<int64_t>(v))) j = static_cast<int64_t>(v);
    return j.dump();
  };
  switch (k.type) {
    case T::kEnum: {
      std::string c = k.choices;
      for (char& ch : c)
        if (ch == '|') ch = ',';
      std::string r;
      size_t start = 0;
      while (start <= c.size()) {
        size_t comma = c.find(',', start);
        if (comma == std::string::npos) comma = c.size();
        if (!r.empty()) r += ", ";
        r += "`" + c.substr(start, comma - start) + "`";
        start = comma + 1;
      }
      return r;
    }
    case T::kName:
      return "`[A-Za-z0-9_.-]{1,64}`";
    case T::kArray:
      return k.min > -kInf ? "at least " + num(k.min) + " item(s)" : "";
    case T::kMap:
      return k.min > -kInf ? "at least " + num(k.min) + " member(s)" : "";
    case T::kDuration:
      return k.min >= 1 ? "> 0" : "";
    case T::kSize:
      return k.min > 1 ? ">= " + num(k.min) + " bytes" : "> 0";
    case T::kInteger:
    case T::kNumber:
      if (k.exclusive) return "(" + num(k.min) + ", " + num(k.max) + ")";
      if (k.min > -kInf && k.max < kInf) return num(k.min) + " to " + num(k.max);
      if (k.min > -kInf) return ">= " + num(k.min);
      return "";
    default:
      return "";
  }
}

std::string EscapeCell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else
      out += c;
  }
  return out;
}

}  // namespace

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey>* table = new std::vector<ConfigKey>(BuildTable());
  return *table;
}

const ConfigKey* FindConfigKey(std::string_view pattern) {
  for (const ConfigKey& k : ConfigKeys())
    if (pattern == k.pattern) return &k;
  return nullptr;
}

std::vector<std::string> ChildKeyNames(std::string_view pattern) {
  std::vector<std::string> names;
  for (const ConfigKey& k : ConfigKeys()) {
    std::string_view p = k.pattern;
    if (!p.empty() && Parent(p) == pattern) names.emplace_back(LastSegment(p));
  }
  return names;
}

std::string GenerateConfigSchema() {
  Json schema = Json::object();
  schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  schema["$id"] = "https://github.com/weir/weir/configs/weir.schema.json";
  schema["title"] = "weir config";
  Json root = BuildSchema("");
  for (auto& [key, value] : root.items()) schema[key] = value;
  return schema.dump(2) + "\n";
}

std::string GenerateConfigReference() {
  std::ostringstream out;
  out << "# weir config reference\n\n"
         "<!-- Generated by `weir-config-gen reference` from config/config_keys.cc; "
         "do not edit by hand. -->\n\n"
         "A weir config is one JSON file (DESIGN section 4). Check it with "
         "`weir validate CONFIG.json`; editors can use `configs/weir.schema.json`.\n\n"
         "- Keys are JSON pointers; `*` stands for any member name or array index.\n"
         "- Unknown keys are errors. Every error names its JSON pointer and says what to do.\n"
         "- Durations are strings with a unit, `\"250ms\"`, `\"10s\"`, `\"5m\"`, `\"2h\"`, "
         "`\"1d\"`, or integer milliseconds (`0` needs no unit).\n"
         "- Sizes are strings, `\"512B\"`, `\"64KB\"`, `\"256MB\"`, `\"1GB\"` (1KB = 1024 bytes; "
         "`KiB` etc. are accepted too), or integer bytes.\n"
         "- Rates are `\"2000/s\"`, `\"100/m\"`, `\"10/h\"` or a number per second.\n"
         "- Names (`gateway`, pipeline names, fields, tags) match `[A-Za-z0-9_.-]{1,64}`.\n"
         "- A pipeline's definition is `key`, `where`, `window`, `aggregates` and "
         "`event_time.clock`. Changing it starts the pipeline over under a new generation "
         "(DESIGN 6.5); every other key can change without touching pipeline state.\n\n"
         "| key | type | default | allowed | description |\n"
         "|---|---|---|---|---|\n";
  for (const ConfigKey& k : ConfigKeys()) {
    if (*k.pattern == '\0') continue;
    std::string def;
    if (k.required)
      def = "required";
    else if (k.default_json)
      def = "`" + Json::parse(k.default_json).dump() + "`";
    else if (k.default_note)
      def = k.default_note;
    if (def.find('<') != std::string::npos) def = "`" + def + "`";
    out << "| `" << EscapeCell(k.pattern) << "` | " << TypeWord(k.type) << " | " << EscapeCell(def)
        << " | " << EscapeCell(Allowed(k)) << " | " << EscapeCell(k.help) << " |\n";
  }
  out << "\n## Rules across keys\n\n"
         "`weir validate` also checks what one key cannot say alone:\n\n"
         "- `source.client_id` defaults to `weir-<gateway>` and `uplink.client_id` to "
         "`weir-<gateway>-uplink`; equal client ids on one broker are rejected.\n"
         "- Topic templates: levels separated by `/`; a capture `{name}` is a whole level; `#` "
         "only as the last level; `+` is written as a capture. Captures become attributes, in "
         "order of first appearance over `source.topics`, followed by `source.tags` not "
         "already captured (at most "
      << kMaxAttributes << " attributes, " << kMaxFields
      << " fields).\n"
         "- `source.device` is a capture present in every JSON topic (a FlatBuffers batch names "
         "its own device) or a JSON pointer. A status topic must capture the device, so it needs "
         "`source.device` to be a capture. `\"device\"` is the device identity, never a tag or "
         "field name.\n"
         "- `key` names are `\"device\"`, captures or tags, each once. `where` names are "
         "fields (compared to numbers) or attributes (compared to text with `==` or `!=`).\n"
         "- Aggregates: exactly one kind per entry; the field must be declared in "
         "`source.fields`; `\"*\"` only with `count`; `q` with `quantile` only.\n"
         "- Windows: `tumbling` takes `size` (and `offset`); `hopping` takes `size`, `hop` (size a "
         "multiple of hop) and `offset`; `session` takes `gap` (and `max_duration`). Window starts "
         "satisfy `(start - offset) mod hop = 0`, so an `offset` of a hop or more is the same "
         "as its remainder.\n"
         "- Pipeline names are unique. `uplink` is required by `weir run` only. "
         "`event_time.clock: \"corrected\"` needs `source.sent_at`. `tls` needs an `ssl://` or "
         "`wss://` uplink, and `cert` and `key` go together. A key given twice in one object is "
         "an error.\n";
  return out.str();
}

}  // namespace weir
