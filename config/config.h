// Config: the fully resolved configuration (DESIGN section 4), produced by
// ParseConfig from the key table in config_keys.cc. Durations are int64 ms,
// sizes int64 bytes; every default is already filled in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace weir {

enum class PayloadFormat { kJson, kFlatbuffers };
enum class TimestampUnit { kMs, kS, kUs, kIso8601 };

struct TopicConfig {
  std::string topic;  // template: {name} captures one level, may end in '#'
  PayloadFormat format = PayloadFormat::kJson;
};

struct StatusTopicConfig {
  bool enabled = false;
  std::string topic;
  std::string online = "online";
  std::string offline = "offline";
};

struct TimestampConfig {
  bool received = false;     // "timestamp": "received": gateway receive time
  std::string path = "/ts";  // JSON pointer into the reading object
  TimestampUnit unit = TimestampUnit::kMs;
};

struct NamedPath {
  std::string name;  // field or tag name used by pipelines
  std::string path;  // JSON pointer into the reading object
};

struct SourceConfig {
  std::string broker;
  std::string client_id;  // default weir-<gateway>
  int qos = 1;
  std::vector<TopicConfig> topics;
  StatusTopicConfig status;
  std::string device = "{device}";  // "{capture}" or a JSON pointer
  TimestampConfig timestamp;
  std::string seq;      // JSON pointer; empty: no dedup
  std::string sent_at;  // JSON pointer; empty: no clock offset estimate
  std::vector<NamedPath> fields;  // index = Reading field index
  std::vector<NamedPath> tags;
  int64_t max_payload_bytes = 64 * 1024;
  int64_t max_devices = 10000;
  int64_t session_expiry_ms = 7LL * 24 * 3600 * 1000;
  std::string username;
  std::string password;  // never logged
};

enum class CompareOp { kLt, kLe, kGt, kGe, kEq, kNe };

struct WhereCondition {
  std::string name;  // a field name (numeric compare) or attribute name (text compare)
  CompareOp op = CompareOp::kEq;
  bool is_text = false;  // compare attribute text (only == and !=)
  double number = 0;
  std::string text;
};

enum class WindowType { kTumbling, kHopping, kSession };

struct WindowConfig {
  WindowType type = WindowType::kTumbling;
  int64_t size_ms = 0;    // tumbling, hopping
  int64_t hop_ms = 0;     // hopping (== size_ms for tumbling)
  int64_t offset_ms = 0;  // tumbling, hopping
  int64_t gap_ms = 0;     // session
  int64_t max_duration_ms = 0;  // session; 0 = unbounded
};

enum class AggregateKind { kCount, kSum, kMin, kMax, kAvg, kFirst, kLast, kStddev, kQuantile, kDelta };

// "count", "sum", ... as written in configs.
const char* AggregateKindName(AggregateKind kind);

struct AggregateConfig {
  std::string name;   // output name in "values"
  AggregateKind kind = AggregateKind::kCount;
  std::string field;  // field name, or "*" for count of readings
  double q = 0;       // quantile only, in (0,1)
};

enum class LatePolicy { kDrop, kUpdate, kSide };
enum class ClockMode { kDevice, kCorrected };

struct EventTimeConfig {
  int64_t max_out_of_orderness_ms = 0;
  int64_t idle_timeout_ms = 5 * 60 * 1000;
  int64_t max_hold_ms = 24 * 3600 * 1000LL;
  int64_t allowed_lateness_ms = 0;
  LatePolicy late = LatePolicy::kDrop;
  int64_t late_emit_delay_ms = 1000;
  ClockMode clock = ClockMode::kDevice;  // part of the pipeline definition (6.5)
};

struct PipelineConfig {
  std::string name;
  std::vector<std::string> key = {"device"};  // attribute names; "device" is the device id
  std::vector<WhereCondition> where;
  WindowConfig window;
  std::vector<AggregateConfig> aggregates;  // in config order
  EventTimeConfig event_time;
  int64_t max_keys = 10000;  // limits.max_keys
  // Canonical JSON of the definition (key, where, window, aggregates,
  // event_time.clock) and its fingerprint (DESIGN 6.5).
  std::string definition_json;
  std::string fingerprint;
};

enum class SyncMode { kNormal, kFull };
enum class OnFull { kDropOldest, kBlock };

struct StorageConfig {
  std::string path = "weir.db";
  int64_t max_bytes = 256LL * 1024 * 1024;
  SyncMode sync = SyncMode::kNormal;
  int64_t commit_interval_ms = 20;
  OnFull on_full = OnFull::kDropOldest;
};

enum class Durability { kJournal, kBatch };

struct IngestConfig {
  Durability durability = Durability::kJournal;
  int64_t queue_capacity = 4096;  // messages between the MQTT thread and the loop
};

enum class UplinkOrder { kLiveFirst, kInOrder };

struct TlsConfig {
  std::string ca;
  std::string cert;
  std::string key;
};

struct UplinkConfig {
  bool present = false;  // required by `weir run` only
  std::string broker;
  std::string client_id;  // default weir-<gateway>-uplink
  int qos = 1;
  std::string topic = "weir/{gateway}/{pipeline}";
  int64_t batch_max = 100;
  double max_rate_per_s = 0;  // backlog drain rate; 0 = unlimited
  UplinkOrder order = UplinkOrder::kLiveFirst;
  TlsConfig tls;
  std::string username;
  std::string password;  // or WEIR_UPLINK_PASSWORD; never logged
};

struct MetricsConfig {
  std::string listen;  // host:port; empty = no endpoint
};

struct Config {
  std::string gateway;
  SourceConfig source;
  std::vector<PipelineConfig> pipelines;
  StorageConfig storage;
  IngestConfig ingest;
  UplinkConfig uplink;
  MetricsConfig metrics;
  std::string text;  // the config file's text as read

  // Attribute names in Reading::attribute order: topic captures in order of
  // first appearance over source.topics, then source.tags (a name already
  // captured is not repeated). "device" is not an attribute; it is Reading::device.
  std::vector<std::string> attributes;
  int FieldIndex(std::string_view name) const;      // -1 when unknown
  int AttributeIndex(std::string_view name) const;  // -1 when unknown
};

// One problem found in a config file.
struct ConfigError {
  std::string pointer;  // JSON pointer, e.g. "/pipelines/0/window/size"
  std::string message;  // what is wrong
  std::string hint;     // what to do (may be empty)
};

// Parses and validates a config. On any error returns nullopt and appends every
// problem found (not just the first) to *errors. `for_run` also requires uplink.
std::optional<Config> ParseConfig(std::string_view text, std::vector<ConfigError>* errors,
                                  bool for_run = false);

// Reads and parses a file; a missing or unreadable file is one ConfigError with
// an empty pointer.
std::optional<Config> LoadConfigFile(const std::string& path, std::vector<ConfigError>* errors,
                                     bool for_run = false);

// "pointer: message (hint)" lines, as `weir validate` prints them.
std::string FormatConfigErrors(const std::string& file, const std::vector<ConfigError>& errors);

// Durations: "250ms", "10s", "5m", "2h", "1d" or integer ms. Sizes: "64KB",
// "256MB", "1GB" or integer bytes. Exposed for tools and tests.
std::optional<int64_t> ParseDurationMs(std::string_view text);
std::optional<int64_t> ParseSizeBytes(std::string_view text);

}  // namespace weir
