#include "runtime/metrics.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "core/log.h"
#include "core/text.h"
#include "runtime/processor.h"

namespace weir {
namespace {

constexpr const char* kLog = "metrics";
// The delivery rate is averaged over this much wall time: long enough to
// smooth the uplink's batches, short enough to follow a reconnect.
constexpr int64_t kRateWindowMs = 5000;

// Prometheus text output with one family at a time.
class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void Sample(double value) { Sample({}, value); }
  void Sample(std::initializer_list<std::pair<const char*, std::string_view>> labels,
              double value) {
    out_.append(name_);
    if (labels.size() > 0) {
      out_.push_back('{');
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_.push_back(',');
        first = false;
        out_.append(k).append("=\"");
        for (char c : v) {
          if (c == '\\')
            out_.append("\\\\");
          else if (c == '"')
            out_.append("\\\"");
          else if (c == '\n')
            out_.append("\\n");
          else
            out_.push_back(c);
        }
        out_.push_back('"');
      }
      out_.push_back('}');
    }
    out_.push_back(' ');
    // Shortest round-trip form: a start time in seconds needs all its digits.
    if (std::isnan(value))
      out_.append("NaN");
    else if (std::isinf(value))
      out_.append(value > 0 ? "+Inf" : "-Inf");
    else
      AppendKeyNumber(value, &out_);
    out_.push_back('\n');
  }
  std::string Take() { return std::move(out_); }

 private:
  const char* name_ = "";
  std::string out_;
};

double Seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

const SourceState kSourceStates[] = {SourceState::kStopped, SourceState::kConnecting,
                                     SourceState::kConnected, SourceState::kDisconnected};
const UplinkState kUplinkStates[] = {UplinkState::kStopped, UplinkState::kConnecting,
                                     UplinkState::kConnected, UplinkState::kDisconnected};

// "host:port"; a bare port means all interfaces is NOT assumed: DESIGN's
// example is "127.0.0.1:9464", and exposing a gateway's metrics on every
// interface must be asked for ("0.0.0.0:9464").
bool SplitListen(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  char* end = nullptr;
  long p = std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (end == listen.c_str() + colon + 1 || *end != '\0' || p < 0 || p > 65535) return false;
  *port = static_cast<int>(p);
  return true;
}

}  // namespace

std::string RenderPrometheus(const MetricsSnapshot& s) {
  Writer w;
  w.Family("weir_start_time_seconds", "gauge", "When this weir process started (Unix time).");
  w.Sample(Seconds(s.start_time_ms));

  // ---- source ------------------------------------------------------------
  w.Family("weir_source_connected", "gauge", "1 while connected to the gateway broker.");
  w.Sample(s.has_source && s.source_state == SourceState::kConnected ? 1 : 0);
  w.Family("weir_source_state", "gauge",
           "Gateway broker connection state (1 for the current one).");
  for (SourceState st : kSourceStates)
    w.Sample({{"state", SourceStateName(st)}}, s.has_source && s.source_state == st ? 1 : 0);
  w.Family("weir_source_received_bytes_total", "counter", "MQTT payload bytes received.");
  w.Sample(static_cast<double>(s.source_bytes));
  w.Family("weir_source_connection_losses_total", "counter",
           "Connections to the gateway broker lost.");
  w.Sample(static_cast<double>(s.source_connection_losses));
  w.Family("weir_messages_total", "counter", "MQTT messages processed.");
  w.Sample(static_cast<double>(s.messages));
  w.Family("weir_readings_total", "counter",
           "Readings taken from the source and handed to the pipelines.");
  w.Sample(static_cast<double>(s.readings));
  w.Family("weir_rejected_total", "counter", "Payloads or array elements rejected, by reason.");
  for (int i = 0; i < kRejectReasonCount; ++i)
    w.Sample({{"reason", RejectReasonName(static_cast<RejectReason>(i))}},
             static_cast<double>(s.rejected[static_cast<size_t>(i)]));
  w.Family("weir_duplicates_total", "counter", "Readings dropped as duplicates (seq seen before).");
  w.Sample(static_cast<double>(s.duplicates));
  w.Family("weir_dedup_unchecked_total", "counter",
           "Readings accepted without a duplicate check (seq too far behind the newest).");
  w.Sample(static_cast<double>(s.dedup_unchecked));
  w.Family("weir_status_messages_total", "counter", "Device online/offline messages.");
  w.Sample(static_cast<double>(s.status_messages));

  // ---- pipelines ---------------------------------------------------------
  struct PipelineFamily {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const PipelineMetrics&);
  };
  static const PipelineFamily kFamilies[] = {
      {"weir_pipeline_generation", "gauge", "Definition generation (ids carry name~g from 1 on).",
       [](const PipelineMetrics& p) { return static_cast<double>(p.generation); }},
      {"weir_pipeline_readings_total", "counter", "Readings that reached the pipeline.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.readings); }},
      {"weir_pipeline_filtered_total", "counter", "Readings that failed the pipeline's where.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.filtered); }},
      {"weir_late_updates_total", "counter",
       "Late readings added to a fired window (late: update).",
       [](const PipelineMetrics& p) { return static_cast<double>(p.late_updates); }},
      {"weir_late_dropped_total", "counter", "Late readings dropped, counted per window.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.late_dropped); }},
      {"weir_results_total", "counter", "Results emitted, revisions included.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.results); }},
      {"weir_retractions_total", "counter", "Retractions emitted.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.retractions); }},
      {"weir_open_windows", "gauge", "Windows and sessions currently held.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.open_windows); }},
      {"weir_keys", "gauge", "Keys held in memory.",
       [](const PipelineMetrics& p) { return static_cast<double>(p.keys); }},
      {"weir_spilled_keys", "gauge", "Keys spilled to storage (beyond limits.max_keys).",
       [](const PipelineMetrics& p) { return static_cast<double>(p.spilled_keys); }},
  };
  for (const PipelineFamily& f : kFamilies) {
    w.Family(f.name, f.type, f.help);
    for (const PipelineMetrics& p : s.pipelines) w.Sample({{"pipeline", p.name}}, f.get(p));
  }
  w.Family("weir_watermark_lag_seconds", "gauge",
           "Wall clock minus the pipeline's lowest key watermark (absent before any reading).");
  for (const PipelineMetrics& p : s.pipelines)
    if (p.has_watermark) w.Sample({{"pipeline", p.name}}, Seconds(p.watermark_lag_ms));

  // ---- storage -----------------------------------------------------------
  w.Family("weir_journal_rows", "gauge", "Journaled messages not yet covered by a checkpoint.");
  w.Sample(static_cast<double>(s.store.journal_rows));
  w.Family("weir_outbox_rows", "gauge", "Results waiting for the uplink's PUBACK.");
  w.Sample(static_cast<double>(s.store.outbox_rows));
  w.Family("weir_outbox_bytes", "gauge", "Payload bytes of the results waiting in the outbox.");
  w.Sample(static_cast<double>(s.store.outbox_bytes));
  w.Family("weir_outbox_oldest_age_seconds", "gauge",
           "Age of the oldest undelivered result (0 when the outbox is empty).");
  w.Sample(Seconds(s.oldest_pending_age_ms));
  w.Family("weir_results_lost_total", "counter",
           "Undelivered results dropped at storage.max_bytes (on_full: drop_oldest).");
  w.Sample(static_cast<double>(s.store.lost_total));
  w.Family("weir_storage_used_bytes", "gauge", "Database pages in use.");
  w.Sample(static_cast<double>(s.store.used_bytes));
  w.Family("weir_storage_file_bytes", "gauge", "Database file plus WAL on disk.");
  w.Sample(static_cast<double>(s.store.file_bytes));
  w.Family("weir_storage_limit_bytes", "gauge",
           "Pages in use at which on_full acts: storage.max_bytes less room kept for the WAL "
           "and the transaction in flight (0: unbounded).");
  w.Sample(static_cast<double>(s.store.limit_bytes));
  w.Family("weir_storage_full", "gauge", "1 while on_full: block holds ingest back.");
  w.Sample(s.store.full ? 1 : 0);
  w.Family("weir_storage_commits_total", "counter", "Storage transactions finished.");
  w.Sample(static_cast<double>(s.store.commits));
  w.Family("weir_storage_commit_failures_total", "counter", "Storage transactions that failed.");
  w.Sample(static_cast<double>(s.store.failed_commits));
  w.Family("weir_storage_commit_latency_seconds", "gauge", "Duration of the last transaction.");
  w.Sample(static_cast<double>(s.store.last_commit_us) / 1e6);

  // ---- uplink ------------------------------------------------------------
  w.Family("weir_uplink_connected", "gauge", "1 while connected to the uplink broker.");
  w.Sample(s.has_uplink && s.uplink_state == UplinkState::kConnected ? 1 : 0);
  w.Family("weir_uplink_state", "gauge", "Uplink connection state (1 for the current one).");
  for (UplinkState st : kUplinkStates)
    w.Sample({{"state", UplinkStateName(st)}}, s.has_uplink && s.uplink_state == st ? 1 : 0);
  w.Family("weir_uplink_delivered_rows_total", "counter",
           "Outbox rows acknowledged by the uplink broker.");
  w.Sample(static_cast<double>(s.uplink_rows_delivered));
  w.Family("weir_uplink_published_messages_total", "counter",
           "MQTT messages published, resends included.");
  w.Sample(static_cast<double>(s.uplink_messages_published));
  w.Family("weir_uplink_resent_rows_total", "counter",
           "Rows put back for sending after a lost connection or a refusal.");
  w.Sample(static_cast<double>(s.uplink_rows_resent));
  w.Family("weir_uplink_connection_losses_total", "counter",
           "Connections to the uplink broker lost.");
  w.Sample(static_cast<double>(s.uplink_connection_losses));
  w.Family("weir_uplink_queued_rows", "gauge", "Rows handed to the uplink, not yet published.");
  w.Sample(static_cast<double>(s.uplink_rows_queued));
  w.Family("weir_uplink_inflight_rows", "gauge", "Rows published, awaiting PUBACK.");
  w.Sample(static_cast<double>(s.uplink_rows_inflight));
  w.Family("weir_uplink_delivery_rate", "gauge",
           "Rows delivered per second over the last 5 seconds (publish rate).");
  w.Sample(s.uplink_delivery_rate);

  w.Family("weir_config_reloads_total", "counter", "SIGHUP reloads by result.");
  w.Sample({{"result", "applied"}}, static_cast<double>(s.reloads_applied));
  w.Sample({{"result", "rejected"}}, static_cast<double>(s.reloads_rejected));
  return w.Take();
}

// ---- Metrics ----------------------------------------------------------------

Metrics::Metrics() = default;
Metrics::~Metrics() { Stop(); }

int64_t Metrics::Monotonic(const std::string& key, const void* owner, int64_t value) {
  Counter& c = counters_[key];
  if (c.owner != owner || value < c.last) {
    // A rebuilt component restarts at zero: keep what the old one counted.
    c.base += c.last;
    c.last = 0;
    c.owner = owner;
  }
  c.last = value;
  return c.base + value;
}

void Metrics::CountReload(bool applied) {
  if (applied)
    ++reloads_applied_;
  else
    ++reloads_rejected_;
}

void Metrics::Collect(const MetricsSources& src, int64_t now_ms, MetricsSnapshot* s) {
  s->time_ms = now_ms;
  s->start_time_ms = start_time_ms_;
  s->reloads_applied = reloads_applied_;
  s->reloads_rejected = reloads_rejected_;
  if (src.processor != nullptr) {
    const void* p = src.processor;
    IngestCounters c = src.processor->counters();
    s->messages = Monotonic("messages", p, c.messages);
    s->readings = Monotonic("readings", p, c.readings);
    s->duplicates = Monotonic("duplicates", p, c.duplicates);
    s->dedup_unchecked = Monotonic("dedup_unchecked", p, c.dedup_unchecked);
    s->status_messages = Monotonic("status_messages", p, c.status_messages);
    for (int i = 0; i < kRejectReasonCount; ++i)
      s->rejected[static_cast<size_t>(i)] =
          Monotonic(std::string("rejected/") + RejectReasonName(static_cast<RejectReason>(i)), p,
                    c.rejected[static_cast<size_t>(i)]);
    if (src.config != nullptr) {
      const Engine* engine = &src.processor->engine();
      for (size_t i = 0; i < src.config->pipelines.size(); ++i) {
        const PipelineCounters& pc = engine->counters(static_cast<int>(i));
        PipelineMetrics m;
        m.name = src.config->pipelines[i].name;
        if (src.generations != nullptr && i < src.generations->size())
          m.generation = (*src.generations)[i];
        const std::string k = "pipeline/" + m.name + "/";
        // A pipeline's counters live in its checkpoint: an engine rebuilt by
        // a reload restores them and carries on, so only a new generation
        // (which starts empty) counts as a new owner. Keyed by the engine,
        // every reload added the restored counts once more.
        const void* owner = reinterpret_cast<const void*>(static_cast<uintptr_t>(m.generation + 1));
        m.readings = Monotonic(k + "readings", owner, pc.readings);
        m.filtered = Monotonic(k + "filtered", owner, pc.filtered);
        m.late_dropped = Monotonic(k + "late_dropped", owner, pc.late_dropped);
        m.late_updates = Monotonic(k + "late_updates", owner, pc.late_updates);
        m.results = Monotonic(k + "results", owner, pc.results);
        m.retractions = Monotonic(k + "retractions", owner, pc.retractions);
        m.open_windows = pc.open_windows;
        m.keys = pc.keys;
        m.spilled_keys = pc.spilled_keys;
        // Before any reading the watermark is -infinity: no lag to report.
        m.has_watermark = pc.min_watermark > std::numeric_limits<int64_t>::min() / 8;
        if (m.has_watermark) m.watermark_lag_ms = std::max<int64_t>(0, now_ms - pc.min_watermark);
        s->pipelines.push_back(std::move(m));
      }
    }
  }
  if (src.store != nullptr) {
    s->store = src.store->stats();
    if (s->store.oldest_enqueued_ms > 0)
      s->oldest_pending_age_ms = std::max<int64_t>(0, now_ms - s->store.oldest_enqueued_ms);
  }
  if (src.source != nullptr) {
    const void* p = src.source;
    MqttSourceStats st = src.source->stats();
    s->has_source = true;
    s->source_state = st.state;
    s->source_bytes = Monotonic("source/bytes", p, static_cast<int64_t>(st.payload_bytes));
    s->source_connection_losses =
        Monotonic("source/losses", p, static_cast<int64_t>(st.connection_losses));
  }
  if (src.uplink != nullptr) {
    const void* p = src.uplink;
    MqttUplinkStats st = src.uplink->stats();
    s->has_uplink = true;
    s->uplink_state = st.state;
    s->uplink_rows_delivered =
        Monotonic("uplink/delivered", p, static_cast<int64_t>(st.rows_delivered));
    s->uplink_messages_published =
        Monotonic("uplink/published", p, static_cast<int64_t>(st.messages_published));
    s->uplink_rows_resent = Monotonic("uplink/resent", p, static_cast<int64_t>(st.rows_resent));
    s->uplink_connection_losses =
        Monotonic("uplink/losses", p, static_cast<int64_t>(st.connection_losses));
    s->uplink_rows_queued = static_cast<int64_t>(st.rows_queued);
    s->uplink_rows_inflight = static_cast<int64_t>(st.rows_inflight);
  }
  delivered_samples_.emplace_back(now_ms, s->uplink_rows_delivered);
  size_t drop = 0;
  while (drop + 1 < delivered_samples_.size() &&
         delivered_samples_[drop + 1].first <= now_ms - kRateWindowMs)
    ++drop;
  delivered_samples_.erase(delivered_samples_.begin(), delivered_samples_.begin() + drop);
  const auto& first = delivered_samples_.front();
  if (now_ms > first.first)
    s->uplink_delivery_rate = static_cast<double>(s->uplink_rows_delivered - first.second) *
                              1000.0 / static_cast<double>(now_ms - first.first);
}

bool Metrics::Listen(const std::string& listen) {
  std::string host;
  int port = 0;
  if (!SplitListen(listen, &host, &port)) {
    LOG_ERROR(kLog, "metrics.listen %s is not host:port; no metrics endpoint", listen.c_str());
    return false;
  }
  auto server = std::make_unique<httplib::Server>();
  // One worker: scrapes are rare and cheap, and a gateway has few cores.
  server->new_task_queue = [] { return new httplib::ThreadPool(1); };
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::shared_ptr<const MetricsSnapshot> snap = latest();
    std::string body = snap ? RenderPrometheus(*snap) : RenderPrometheus(MetricsSnapshot());
    res.set_content(std::move(body), "text/plain; version=0.0.4; charset=utf-8");
  });
  server->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("weir: metrics at /metrics\n", "text/plain");
  });
  int bound_port = port;
  if (port == 0) {
    bound_port = server->bind_to_any_port(host);
    if (bound_port < 0) bound_port = 0;
  } else if (!server->bind_to_port(host, port)) {
    bound_port = 0;
  }
  if (bound_port == 0) {
    LOG_ERROR(kLog, "cannot listen on %s (address in use or not local); no metrics endpoint",
              listen.c_str());
    return false;
  }
  httplib::Server* raw = server.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    server_ = std::move(server);
    bound_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
             std::to_string(bound_port);
  }
  thread_ = std::thread([raw] { raw->listen_after_bind(); });
  LOG_INFO(kLog, "serving metrics at http://%s/metrics", bound().c_str());
  return true;
}

void Metrics::Refresh(const MetricsSources& sources, int64_t now_ms) {
  if (start_time_ms_ == 0) start_time_ms_ = now_ms;
  std::string want = sources.config != nullptr ? sources.config->metrics.listen : listen_;
  if (want != listen_) {
    Stop();
    listen_ = want;
  }
  if (!listen_.empty() && !server_ && failed_listen_ != listen_) {
    if (!Listen(listen_)) failed_listen_ = listen_;
  }
  auto snap = std::make_shared<MetricsSnapshot>();
  Collect(sources, now_ms, snap.get());
  std::lock_guard<std::mutex> lock(mu_);
  latest_ = std::move(snap);
}

void Metrics::Stop() {
  std::unique_ptr<httplib::Server> server;
  {
    std::lock_guard<std::mutex> lock(mu_);
    server = std::move(server_);
    bound_.clear();
  }
  if (server) server->stop();
  if (thread_.joinable()) thread_.join();
}

std::string Metrics::bound() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bound_;
}

std::shared_ptr<const MetricsSnapshot> Metrics::latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_;
}

// ---- parser -----------------------------------------------------------------

Result<std::vector<MetricSample>> ParsePrometheusText(std::string_view text) {
  std::vector<MetricSample> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](const char* why) {
      return InvalidArgument("metrics line " + std::to_string(line_no) + ": " + why + ": " +
                             std::string(line.substr(0, 120)));
    };
    MetricSample sample;
    size_t i = 0;
    while (i < line.size() &&
           (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':'))
      ++i;
    if (i == 0) return bad("no metric name");
    sample.name = std::string(line.substr(0, i));
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        size_t k = i;
        while (i < line.size() && line[i] != '=' && line[i] != '}') ++i;
        if (i >= line.size() || line[i] != '=') return bad("bad label");
        std::string key(line.substr(k, i - k));
        ++i;
        if (i >= line.size() || line[i] != '"') return bad("label value not quoted");
        ++i;
        std::string value;
        for (;; ++i) {
          if (i >= line.size()) return bad("unterminated label value");
          char c = line[i];
          if (c == '"') break;
          if (c == '\\' && i + 1 < line.size()) {
            char e = line[++i];
            value.push_back(e == 'n' ? '\n' : e);
          } else {
            value.push_back(c);
          }
        }
        ++i;
        sample.labels[key] = std::move(value);
      }
    }
    while (i < line.size() && line[i] == ' ') ++i;
    std::string rest(line.substr(i));
    size_t sp = rest.find(' ');  // an optional timestamp follows
    std::string number = rest.substr(0, sp);
    if (number.empty()) return bad("no value");
    if (number == "+Inf") {
      sample.value = std::numeric_limits<double>::infinity();
    } else if (number == "-Inf") {
      sample.value = -std::numeric_limits<double>::infinity();
    } else if (number == "NaN") {
      sample.value = std::numeric_limits<double>::quiet_NaN();
    } else {
      char* end = nullptr;
      sample.value = std::strtod(number.c_str(), &end);
      if (end == number.c_str() || *end != '\0') return bad("value is not a number");
    }
    out.push_back(std::move(sample));
  }
  return out;
}

}  // namespace weir
