// `weir status --db PATH` and/or `--url URL` (DESIGN 3, 7): the backlog, the
// oldest pending result, per-pipeline generations and counters, the config
// last applied, the uplink's state, and while a backlog drains a progress bar
// with rate and ETA.
//
// --db opens the database read-only (a WAL reader never blocks weir's
// writer), so it is safe while weir runs. --url reads /metrics. The drain
// rate comes from successive samples under --watch (the backlog's own
// decrease, which is what the ETA depends on); from a single sample only the
// metrics' delivery rate is available, so without --url there is no ETA.
#include <httplib.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/commands.h"
#include "runtime/metrics.h"
#include "storage/store.h"

namespace weir {
namespace {

using nlohmann::json;

std::atomic<bool> g_interrupted{false};

int64_t WallClockMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::string Bytes(int64_t bytes) {
  char buf[32];
  if (bytes >= (int64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.1fGB", static_cast<double>(bytes) / (1 << 30));
  else if (bytes >= (int64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1fMB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.1fKB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%" PRId64 "B", bytes);
  return buf;
}

// "3h 12m", "4m 05s", "12.3s".
std::string Age(double seconds) {
  char buf[48];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%dm %02ds", static_cast<int>(seconds) / 60,
                  static_cast<int>(seconds) % 60);
  } else if (seconds < 86400) {
    std::snprintf(buf, sizeof buf, "%dh %02dm", static_cast<int>(seconds) / 3600,
                  static_cast<int>(seconds) / 60 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dd %02dh", static_cast<int>(seconds) / 86400,
                  static_cast<int>(seconds) / 3600 % 24);
  }
  return buf;
}

std::string UtcTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// What /metrics says, reduced to what status shows.
struct UrlSample {
  std::string uplink_state = "unknown";
  bool uplink_connected = false;
  std::string source_state = "unknown";
  double delivered_total = 0;
  double delivery_rate = 0;
  double readings_total = 0;
  double outbox_rows = 0;
  double outbox_bytes = 0;
  double oldest_age_s = 0;
  double reloads_applied = 0;
  double reloads_rejected = 0;
  struct Pipeline {
    std::string name;
    double generation = 0, open_windows = 0, keys = 0, spilled_keys = 0, results = 0;
    std::optional<double> watermark_lag_s;
  };
  std::vector<Pipeline> pipelines;

  Pipeline& For(const std::string& name) {
    for (auto& p : pipelines)
      if (p.name == name) return p;
    pipelines.emplace_back();
    pipelines.back().name = name;
    return pipelines.back();
  }
};

// http://host:port[/path]; the path defaults to /metrics.
bool SplitUrl(const std::string& url, std::string* base, std::string* path) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) return false;
  size_t slash = url.find('/', scheme.size());
  *base = url.substr(0, slash);
  *path = slash == std::string::npos ? "/metrics" : url.substr(slash);
  if (*path == "/") *path = "/metrics";
  return base->size() > scheme.size();
}

Result<UrlSample> ReadUrl(const std::string& url) {
  std::string base, path;
  if (!SplitUrl(url, &base, &path))
    return InvalidArgument("--url " + url +
                           " is not an http:// URL (e.g. http://127.0.0.1:9464/metrics)");
  httplib::Client client(base);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  auto res = client.Get(path);
  if (!res) return Unavailable("cannot read " + url + ": " + httplib::to_string(res.error()));
  if (res->status != 200)
    return Unavailable("cannot read " + url + ": HTTP " + std::to_string(res->status));
  auto samples = ParsePrometheusText(res->body);
  if (!samples.ok()) return Unavailable(url + ": " + samples.status().message());
  UrlSample u;
  bool any = false;
  for (const MetricSample& m : samples.value()) {
    auto label = [&](const char* k) {
      auto it = m.labels.find(k);
      return it == m.labels.end() ? std::string() : it->second;
    };
    if (m.name.rfind("weir_", 0) == 0) any = true;
    if (m.name == "weir_uplink_state" && m.value == 1)
      u.uplink_state = label("state");
    else if (m.name == "weir_source_state" && m.value == 1)
      u.source_state = label("state");
    else if (m.name == "weir_uplink_connected")
      u.uplink_connected = m.value == 1;
    else if (m.name == "weir_uplink_delivered_rows_total")
      u.delivered_total = m.value;
    else if (m.name == "weir_uplink_delivery_rate")
      u.delivery_rate = m.value;
    else if (m.name == "weir_readings_total")
      u.readings_total = m.value;
    else if (m.name == "weir_outbox_rows")
      u.outbox_rows = m.value;
    else if (m.name == "weir_outbox_bytes")
      u.outbox_bytes = m.value;
    else if (m.name == "weir_outbox_oldest_age_seconds")
      u.oldest_age_s = m.value;
    else if (m.name == "weir_config_reloads_total" && label("result") == "applied")
      u.reloads_applied = m.value;
    else if (m.name == "weir_config_reloads_total" && label("result") == "rejected")
      u.reloads_rejected = m.value;
    else if (m.name == "weir_pipeline_generation")
      u.For(label("pipeline")).generation = m.value;
    else if (m.name == "weir_open_windows")
      u.For(label("pipeline")).open_windows = m.value;
    else if (m.name == "weir_keys")
      u.For(label("pipeline")).keys = m.value;
    else if (m.name == "weir_spilled_keys")
      u.For(label("pipeline")).spilled_keys = m.value;
    else if (m.name == "weir_results_total")
      u.For(label("pipeline")).results = m.value;
    else if (m.name == "weir_watermark_lag_seconds")
      u.For(label("pipeline")).watermark_lag_s = m.value;
  }
  if (!any) return Unavailable(url + " does not look like weir's metrics (no weir_ samples)");
  return u;
}

struct Sample {
  int64_t time_ms = 0;
  std::optional<StoreStatus> db;
  std::optional<UrlSample> url;
  std::vector<std::string> errors;

  // DESIGN 3: exit 0 when it could read the database or the URL; what it could not read
  // is still reported.
  bool ok() const { return db || url; }
  double backlog_rows() const {
    return db ? static_cast<double>(db->outbox_rows) : url ? url->outbox_rows : 0;
  }
};

Sample TakeSample(const StatusOptions& o) {
  Sample s;
  s.time_ms = WallClockMs();
  if (!o.db_path.empty()) {
    // Opened per sample: a read transaction held across samples would pin
    // the WAL and keep weir from checkpointing it.
    auto reader = StoreReader::Open(o.db_path, /*read_only=*/true);
    if (!reader.ok()) {
      s.errors.push_back("cannot read " + o.db_path + ": " + reader.status().ToString());
    } else {
      auto st = reader.value()->ReadStatus(s.time_ms);
      if (!st.ok())
        s.errors.push_back("cannot read " + o.db_path + ": " + st.status().ToString());
      else
        s.db = std::move(st).value();
    }
  }
  if (!o.url.empty()) {
    auto u = ReadUrl(o.url);
    if (!u.ok())
      s.errors.push_back(u.status().message());
    else
      s.url = std::move(u).value();
  }
  return s;
}

// The drain: progress against the largest backlog seen while watching.
struct Drain {
  double total = 0;            // the largest backlog seen
  std::optional<double> rate;  // rows/s the backlog shrinks by (or is delivered at)
  std::optional<double> eta_s;
  double progress = 0;  // 0..1
};

// Tracks successive samples under --watch.
class DrainTracker {
 public:
  Drain Update(const Sample& s, bool watching) {
    Drain d;
    double rows = s.backlog_rows();
    if (rows > peak_) peak_ = rows;
    if (rows == 0) peak_ = 0;
    d.total = peak_;
    if (watching) {
      if (last_time_ms_ > 0 && s.time_ms > last_time_ms_) {
        double instant =
            (last_rows_ - rows) * 1000.0 / static_cast<double>(s.time_ms - last_time_ms_);
        // Smoothed: batches arrive in bursts, one second is a noisy window.
        smoothed_ = smoothed_ ? 0.7 * *smoothed_ + 0.3 * instant : instant;
      }
      last_time_ms_ = s.time_ms;
      last_rows_ = rows;
      if (smoothed_) d.rate = *smoothed_;
    } else if (s.url) {
      d.rate = s.url->delivery_rate;
    }
    if (rows > 0 && d.rate && *d.rate > 0) d.eta_s = rows / *d.rate;
    d.progress = peak_ > 0 ? 1.0 - rows / peak_ : 1.0;
    return d;
  }

 private:
  double peak_ = 0;
  int64_t last_time_ms_ = 0;
  double last_rows_ = 0;
  std::optional<double> smoothed_;
};

json ToJson(const StatusOptions& o, const Sample& s, const Drain& d) {
  json j;
  j["time_ms"] = s.time_ms;
  j["ok"] = s.ok();
  j["errors"] = s.errors;
  if (!o.db_path.empty()) j["db"] = o.db_path;
  if (!o.url.empty()) j["url"] = o.url;
  json backlog;
  backlog["rows"] = static_cast<int64_t>(s.backlog_rows());
  if (s.db) {
    const StoreStatus& st = *s.db;
    backlog["bytes"] = st.outbox_bytes;
    backlog["oldest_age_ms"] = st.oldest_age_ms;
    backlog["oldest_enqueued_ms"] = st.oldest_enqueued_ms;
    backlog["loss_records"] = st.loss_records;
    backlog["lost_total"] = st.lost_total;
    j["journal"] = {{"rows", st.journal_rows},
                    {"bytes", st.journal_bytes},
                    {"checkpoint_seq", st.checkpoint_seq}};
    j["file_bytes"] = st.file_bytes;
    j["schema_version"] = st.schema_version;
    if (st.config)
      j["config"] = {{"applied_ms", st.config->applied_ms},
                     {"fingerprint", Sha256Hex(st.config->text)}};
    else
      j["config"] = nullptr;
  } else if (s.url) {
    backlog["bytes"] = static_cast<int64_t>(s.url->outbox_bytes);
    backlog["oldest_age_ms"] = static_cast<int64_t>(s.url->oldest_age_s * 1000);
  }
  j["backlog"] = backlog;
  json pipelines = json::array();
  auto from_url = [&](const std::string& name) -> const UrlSample::Pipeline* {
    if (!s.url) return nullptr;
    for (const auto& p : s.url->pipelines)
      if (p.name == name) return &p;
    return nullptr;
  };
  auto add_url = [](json* pj, const UrlSample::Pipeline& p) {
    (*pj)["open_windows"] = static_cast<int64_t>(p.open_windows);
    (*pj)["keys"] = static_cast<int64_t>(p.keys);
    (*pj)["spilled_keys"] = static_cast<int64_t>(p.spilled_keys);
    (*pj)["results_total"] = static_cast<int64_t>(p.results);
    (*pj)["watermark_lag_s"] = p.watermark_lag_s ? json(*p.watermark_lag_s) : json(nullptr);
  };
  if (s.db) {
    for (const PipelineStatus& ps : s.db->pipelines) {
      json pj = {{"name", ps.pipeline.name},
                 {"generation", ps.pipeline.generation},
                 {"fingerprint", ps.pipeline.fingerprint},
                 {"removed", ps.pipeline.fingerprint.empty()},
                 {"pending_rows", ps.pending_rows},
                 {"updated_ms", ps.pipeline.updated_ms}};
      if (const auto* p = from_url(ps.pipeline.name)) add_url(&pj, *p);
      pipelines.push_back(pj);
    }
  } else if (s.url) {
    for (const auto& p : s.url->pipelines) {
      json pj = {{"name", p.name}, {"generation", static_cast<int64_t>(p.generation)}};
      add_url(&pj, p);
      pipelines.push_back(pj);
    }
  }
  j["pipelines"] = pipelines;
  if (s.url) {
    j["uplink"] = {{"state", s.url->uplink_state},
                   {"connected", s.url->uplink_connected},
                   {"delivered_total", static_cast<int64_t>(s.url->delivered_total)},
                   {"delivery_rate", s.url->delivery_rate}};
    j["source"] = {{"state", s.url->source_state},
                   {"readings_total", static_cast<int64_t>(s.url->readings_total)}};
    j["reloads"] = {{"applied", static_cast<int64_t>(s.url->reloads_applied)},
                    {"rejected", static_cast<int64_t>(s.url->reloads_rejected)}};
  }
  j["drain"] = {{"total_rows", static_cast<int64_t>(d.total)},
                {"progress", d.progress},
                {"rate_rows_per_s", d.rate ? json(*d.rate) : json(nullptr)},
                {"eta_s", d.eta_s ? json(*d.eta_s) : json(nullptr)}};
  return j;
}

std::string ProgressBar(double fraction, int width) {
  fraction = std::min(1.0, std::max(0.0, fraction));
  int filled = static_cast<int>(std::lround(fraction * width));
  return "[" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(width - filled), '.') + "]";
}

std::string Human(const StatusOptions& o, const Sample& s, const Drain& d) {
  std::string out;
  char buf[512];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
    out += '\n';
  };
  line("weir status at %s", UtcTime(s.time_ms).c_str());
  for (const std::string& e : s.errors) line("error       %s", e.c_str());
  if (s.db) {
    const StoreStatus& st = *s.db;
    std::string oldest =
        st.outbox_rows > 0 ? ", oldest pending " + Age(static_cast<double>(st.oldest_age_ms) / 1000)
                           : "";
    line("backlog     %" PRId64 " result%s, %s%s", st.outbox_rows, st.outbox_rows == 1 ? "" : "s",
         Bytes(st.outbox_bytes).c_str(), oldest.c_str());
    if (st.loss_records > 0 || st.lost_total > 0)
      line("lost        %" PRId64 " results dropped at storage.max_bytes (%" PRId64
           " loss record%s pending)",
           st.lost_total, st.loss_records, st.loss_records == 1 ? "" : "s");
    line("journal     %" PRId64 " message%s (%s) after checkpoint %" PRId64, st.journal_rows,
         st.journal_rows == 1 ? "" : "s", Bytes(st.journal_bytes).c_str(), st.checkpoint_seq);
    line("database    %s, %s on disk", o.db_path.c_str(), Bytes(st.file_bytes).c_str());
    if (st.config) {
      double ago = static_cast<double>(s.time_ms - st.config->applied_ms) / 1000;
      line("config      applied %s (%s ago), fingerprint %.12s",
           UtcTime(st.config->applied_ms).c_str(), Age(std::max(0.0, ago)).c_str(),
           Sha256Hex(st.config->text).c_str());
    } else {
      out += "config      none applied yet\n";
    }
  } else if (s.url) {
    line("backlog     %.0f results, %s, oldest pending %s", s.url->outbox_rows,
         Bytes(static_cast<int64_t>(s.url->outbox_bytes)).c_str(),
         Age(s.url->oldest_age_s).c_str());
  }
  auto url_pipeline = [&](const std::string& name) -> const UrlSample::Pipeline* {
    if (!s.url) return nullptr;
    for (const auto& p : s.url->pipelines)
      if (p.name == name) return &p;
    return nullptr;
  };
  auto live = [&](const UrlSample::Pipeline* p) {
    if (p == nullptr) return std::string();
    char b[200];
    std::snprintf(b, sizeof b, ", %.0f open windows, %.0f keys (%.0f spilled)", p->open_windows,
                  p->keys, p->spilled_keys);
    std::string r = b;
    if (p->watermark_lag_s) r += ", watermark lag " + Age(*p->watermark_lag_s);
    return r;
  };
  if (s.db) {
    for (const PipelineStatus& ps : s.db->pipelines) {
      if (ps.pipeline.fingerprint.empty()) {
        line("pipeline    %s: removed (generation %" PRId64 " reserved), %" PRId64 " pending",
             ps.pipeline.name.c_str(), ps.pipeline.generation, ps.pending_rows);
        continue;
      }
      line("pipeline    %s: generation %" PRId64 ", fingerprint %.12s, %" PRId64 " pending%s",
           ps.pipeline.name.c_str(), ps.pipeline.generation, ps.pipeline.fingerprint.c_str(),
           ps.pending_rows, live(url_pipeline(ps.pipeline.name)).c_str());
    }
  } else if (s.url) {
    for (const auto& p : s.url->pipelines)
      line("pipeline    %s: generation %.0f%s", p.name.c_str(), p.generation, live(&p).c_str());
  }
  if (s.url) {
    line("source      %s, %.0f readings taken", s.url->source_state.c_str(), s.url->readings_total);
    line("uplink      %s, %.0f results delivered, %.1f/s", s.url->uplink_state.c_str(),
         s.url->delivered_total, s.url->delivery_rate);
    line("reloads     %.0f applied, %.0f rejected", s.url->reloads_applied,
         s.url->reloads_rejected);
  }
  double rows = s.backlog_rows();
  if (rows > 0 && d.rate && *d.rate > 0) {
    line("draining    %s %3.0f%%  %.0f left, %.1f/s, ETA %s", ProgressBar(d.progress, 30).c_str(),
         d.progress * 100, rows, *d.rate, Age(d.eta_s.value_or(0)).c_str());
  } else if (rows > 0 && d.rate) {
    line("draining    not draining (%.0f left, %.1f/s)", rows, *d.rate);
  }
  return out;
}

void OnInterrupt(int) { g_interrupted = true; }

}  // namespace

int RunStatus(const StatusOptions& o) {
  if (o.db_path.empty() && o.url.empty()) {
    std::fprintf(stderr,
                 "weir status: give --db PATH (weir's database) and/or --url URL "
                 "(http://host:port/metrics)\n");
    return 1;
  }
  DrainTracker tracker;
  if (!o.watch) {
    Sample s = TakeSample(o);
    Drain d = tracker.Update(s, false);
    if (o.json)
      std::printf("%s\n", ToJson(o, s, d).dump().c_str());
    else
      std::fputs(Human(o, s, d).c_str(), stdout);
    for (const std::string& e : s.errors) std::fprintf(stderr, "weir status: %s\n", e.c_str());
    return s.ok() ? 0 : 1;
  }
  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
  bool tty = !o.json && isatty(fileno(stdout));
  bool last_ok = false;
  while (!g_interrupted) {
    Sample s = TakeSample(o);
    Drain d = tracker.Update(s, true);
    last_ok = s.ok();
    if (o.json) {
      std::printf("%s\n", ToJson(o, s, d).dump().c_str());  // one JSON object per line
    } else {
      if (tty) std::fputs("\033[H\033[2J", stdout);
      std::fputs(Human(o, s, d).c_str(), stdout);
      if (!tty) std::fputs("\n", stdout);
    }
    std::fflush(stdout);
    auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!g_interrupted && std::chrono::steady_clock::now() < next)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last_ok ? 0 : 1;
}

}  // namespace weir
