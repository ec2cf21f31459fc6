// Metrics: the Prometheus text exposition of `weir run` at `metrics.listen`
// /metrics (DESIGN 7), and its parser for `weir status --url`.
//
// The loop never waits for a scrape: every tick it collects an immutable
// MetricsSnapshot and swaps it in under a mutex; cpp-httplib's own thread
// renders whatever snapshot is current when a request arrives.
//
// Counters stay monotonic across reloads: a reload rebuilds the processor
// (and may restart the uplink or the source), whose counters start again at
// zero, so the collector carries what the old instance had counted.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "ingest/decoder.h"
#include "ingest/mqtt_source.h"
#include "storage/store.h"
#include "uplink/mqtt_uplink.h"

namespace httplib {
class Server;
}

namespace weir {

class MessageProcessor;

struct PipelineMetrics {
  std::string name;
  int64_t generation = 0;
  // Counters (monotonic over the process's life).
  int64_t readings = 0;
  int64_t filtered = 0;
  int64_t late_dropped = 0;
  int64_t late_updates = 0;
  int64_t results = 0;
  int64_t retractions = 0;
  // Gauges.
  int64_t open_windows = 0;
  int64_t keys = 0;
  int64_t spilled_keys = 0;
  bool has_watermark = false;
  int64_t watermark_lag_ms = 0;  // processing time - lowest key watermark
};

struct MetricsSnapshot {
  int64_t time_ms = 0;
  int64_t start_time_ms = 0;
  // Source side (counters).
  int64_t messages = 0;
  int64_t readings = 0;
  int64_t duplicates = 0;
  int64_t dedup_unchecked = 0;
  int64_t status_messages = 0;
  std::array<int64_t, kRejectReasonCount> rejected{};
  bool has_source = false;
  SourceState source_state = SourceState::kStopped;
  int64_t source_bytes = 0;
  int64_t source_connects = 0;
  int64_t source_connection_losses = 0;
  std::vector<PipelineMetrics> pipelines;
  // Storage.
  StoreStats store;
  int64_t oldest_pending_age_ms = 0;
  // Uplink.
  bool has_uplink = false;
  UplinkState uplink_state = UplinkState::kStopped;
  int64_t uplink_rows_delivered = 0;
  int64_t uplink_messages_published = 0;
  int64_t uplink_rows_resent = 0;
  int64_t uplink_rows_queued = 0;
  int64_t uplink_rows_inflight = 0;
  int64_t uplink_connection_losses = 0;
  double uplink_delivery_rate = 0;  // rows/s over the last few seconds
  // Reloads.
  int64_t reloads_applied = 0;
  int64_t reloads_rejected = 0;
};

// The text exposition format, version 0.0.4.
std::string RenderPrometheus(const MetricsSnapshot& snapshot);

// What the daemon hands to Metrics::Refresh; any pointer may be null.
struct MetricsSources {
  const Config* config = nullptr;
  const std::vector<int64_t>* generations = nullptr;  // parallel to config->pipelines
  MessageProcessor* processor = nullptr;
  const Store* store = nullptr;
  const MqttSource* source = nullptr;
  const MqttUplink* uplink = nullptr;
};

// Owned by the loop thread; the HTTP thread only reads published snapshots.
class Metrics {
 public:
  Metrics();
  ~Metrics();  // Stop()s
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Loop thread, every tick: serves at sources.config->metrics.listen
  // (binding, or rebinding when a reload changed it; an empty listen stops
  // the endpoint) and publishes a fresh snapshot.
  void Refresh(const MetricsSources& sources, int64_t now_ms);
  // Loop thread, after a SIGHUP was applied or rejected.
  void CountReload(bool applied);
  // Stops the HTTP thread (shutdown).
  void Stop();

  // The address actually bound ("127.0.0.1:9464"), empty when not serving.
  std::string bound() const;
  // The snapshot being served (tests).
  std::shared_ptr<const MetricsSnapshot> latest() const;

 private:
  struct Counter {
    const void* owner = nullptr;
    int64_t base = 0;
    int64_t last = 0;
  };
  // `value` from a component `owner`; a new owner or a smaller value means
  // the component was rebuilt: what it had counted is kept in the base.
  int64_t Monotonic(const std::string& key, const void* owner, int64_t value);
  bool Listen(const std::string& listen);
  void Collect(const MetricsSources& sources, int64_t now_ms, MetricsSnapshot* s);

  std::unordered_map<std::string, Counter> counters_;
  int64_t start_time_ms_ = 0;
  int64_t reloads_applied_ = 0;
  int64_t reloads_rejected_ = 0;
  // (time, delivered) samples for the delivery rate.
  std::vector<std::pair<int64_t, int64_t>> delivered_samples_;
  std::string listen_;         // as configured
  std::string failed_listen_;  // last listen value that could not be bound (logged once)

  mutable std::mutex mu_;
  std::shared_ptr<const MetricsSnapshot> latest_;
  std::string bound_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// ---- reading /metrics back (weir status --url) ---------------------------

struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the text exposition: samples only (HELP/TYPE/comments skipped).
// Malformed lines give kInvalidArgument naming the line.
Result<std::vector<MetricSample>> ParsePrometheusText(std::string_view text);

}  // namespace weir
