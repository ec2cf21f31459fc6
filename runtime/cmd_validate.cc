// `weir validate CONFIG [--db PATH] [--memory SIZE]` (DESIGN section 3): every
// config error with its JSON pointer and a hint, or a summary with the memory
// budget (runtime/memory_budget.h); with --db, what starting on that database
// would do to each pipeline (DESIGN 6.5). Exit 0 valid, 2 invalid, 1 when the file or the
// database cannot be read.
#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "runtime/commands.h"
#include "runtime/memory_budget.h"
#include "runtime/validate_db.h"
#include "storage/store.h"

namespace weir {
namespace {

std::string FormatDuration(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* suffix;
  };
  static const Unit kUnits[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  if (ms == 0) return "0";
  for (const Unit& u : kUnits)
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.suffix;
  return std::to_string(ms) + "ms";
}

std::string FormatBytes(int64_t bytes) {
  char buf[32];
  if (bytes >= (int64_t{1} << 30) && bytes % (int64_t{1} << 30) == 0)
    std::snprintf(buf, sizeof buf, "%" PRId64 "GB", bytes >> 30);
  else if (bytes >= (int64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1fMB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.1fKB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%" PRId64 "B", bytes);
  return buf;
}


std::string WindowText(const WindowConfig& w) {
  switch (w.type) {
    case WindowType::kTumbling:
      return "tumbling " + FormatDuration(w.size_ms) +
             (w.offset_ms ? " offset " + FormatDuration(w.offset_ms) : "");
    case WindowType::kHopping:
      return "hopping " + FormatDuration(w.size_ms) + " every " + FormatDuration(w.hop_ms) +
             (w.offset_ms ? " offset " + FormatDuration(w.offset_ms) : "");
    case WindowType::kSession:
      return "session gap " + FormatDuration(w.gap_ms) +
             (w.max_duration_ms ? " max " + FormatDuration(w.max_duration_ms) : "");
  }
  return "";
}

// Definition values for people: durations (window keys, in ms in the
// canonical JSON) with units, strings bare, anything else as JSON.
std::string DefinitionValue(const std::string& path, const nlohmann::json& v) {
  static const char* kDurationKeys[] = {"window.size", "window.hop", "window.offset", "window.gap",
                                        "window.max_duration"};
  if (v.is_number_integer()) {
    for (const char* k : kDurationKeys)
      if (path == k) return FormatDuration(v.get<int64_t>());
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// Objects are walked into "a.b.c" paths; arrays and scalars are leaves (an
// empty object has none: `where: {}` gaining a condition is that condition).
void Flatten(const nlohmann::json& j, const std::string& prefix,
             std::map<std::string, nlohmann::json>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      Flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  (*out)[prefix] = j;
}

std::string UtcTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// The error list is validate's report, so it goes to stdout like the summary of a valid
// config; as errors it goes to stderr too, unless both are the same file (a terminal),
// where it would show twice.
void PrintErrorReport(const std::string& report) {
  std::fputs(report.c_str(), stdout);
  std::fflush(stdout);
  struct stat out, err;
  bool same = fstat(fileno(stdout), &out) == 0 && fstat(fileno(stderr), &err) == 0 &&
              out.st_dev == err.st_dev && out.st_ino == err.st_ino;
  if (!same) std::fputs(report.c_str(), stderr);
}

int ReportStart(const Config& config, const std::string& db_path) {
  // A database that does not exist yet is a fresh start: weir run creates it and starts
  // every pipeline empty at generation 0.
  struct stat st;
  if (stat(db_path.c_str(), &st) != 0 && errno == ENOENT) {
    std::printf("database  %s: does not exist yet; weir run creates it\n", db_path.c_str());
    for (const PipelinePlan& p : PlanStart(config, {}))
      std::printf("  %s: new (starts empty, ids %s)\n", p.name.c_str(),
                  PipelineIdPart(p.name, p.generation).c_str());
    return 0;
  }
  // Read-only: never creates the file, never writes, safe while weir runs.
  auto reader = StoreReader::Open(db_path, /*read_only=*/true);
  if (!reader.ok()) {
    std::fprintf(stderr, "weir validate: --db %s: cannot read the database: %s\n", db_path.c_str(),
                 reader.status().ToString().c_str());
    return 1;
  }
  auto stored = reader.value()->Pipelines();
  if (!stored.ok()) {
    std::fprintf(stderr, "weir validate: --db %s: cannot read the pipeline records: %s\n",
                 db_path.c_str(), stored.status().ToString().c_str());
    return 1;
  }
  auto last = reader.value()->LastConfig();
  if (!last.ok()) {
    std::fprintf(stderr, "weir validate: --db %s: cannot read the stored config: %s\n",
                 db_path.c_str(), last.status().ToString().c_str());
    return 1;
  }
  if (last.value())
    std::printf(
        "database  %s: config last applied %s%s\n", db_path.c_str(),
        UtcTime(last.value()->applied_ms).c_str(),
        last.value()->text == config.text ? " (this very file)" : " (differs from this file)");
  else
    std::printf("database  %s: no config applied yet\n", db_path.c_str());
  for (const PipelinePlan& p : PlanStart(config, stored.value())) {
    switch (p.action) {
      case StartAction::kKeep:
        std::printf("  %s: keep (same definition; state carries on, ids %s)\n", p.name.c_str(),
                    PipelineIdPart(p.name, p.generation).c_str());
        break;
      case StartAction::kNew:
        std::printf("  %s: new (starts empty, ids %s)\n", p.name.c_str(),
                    PipelineIdPart(p.name, p.generation).c_str());
        break;
      case StartAction::kRemove:
        std::printf(
            "  %s: remove (its open windows and sessions are emitted, then its state "
            "is deleted)\n",
            p.name.c_str());
        break;
      case StartAction::kNewGeneration: {
        std::printf("  %s: new generation %s (open windows of %s emitted, then starts empty)\n",
                    p.name.c_str(), PipelineIdPart(p.name, p.generation).c_str(),
                    PipelineIdPart(p.name, p.old_generation).c_str());
        for (const std::string& c : p.changes) std::printf("      %s\n", c.c_str());
        break;
      }
    }
  }
  return 0;
}

}  // namespace

const char* StartActionName(StartAction action) {
  switch (action) {
    case StartAction::kKeep:
      return "keep";
    case StartAction::kNew:
      return "new";
    case StartAction::kRemove:
      return "remove";
    case StartAction::kNewGeneration:
      return "new generation";
  }
  return "?";
}

std::string PipelineIdPart(const std::string& name, int64_t generation) {
  return generation == 0 ? name : name + "~" + std::to_string(generation);
}

std::vector<std::string> DefinitionChanges(const std::string& old_json,
                                           const std::string& new_json) {
  auto parse = [](const std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  };
  std::map<std::string, nlohmann::json> a, b;
  Flatten(parse(old_json), "", &a);
  Flatten(parse(new_json), "", &b);
  std::vector<std::string> out;
  auto show = [](const std::string& path, const std::map<std::string, nlohmann::json>& m) {
    auto it = m.find(path);
    return it == m.end() ? std::string("(none)") : DefinitionValue(path, it->second);
  };
  std::map<std::string, bool> paths;
  for (const auto& kv : a) paths[kv.first] = true;
  for (const auto& kv : b) paths[kv.first] = true;
  for (const auto& kv : paths) {
    const std::string& path = kv.first;
    auto ia = a.find(path);
    auto ib = b.find(path);
    if (ia != a.end() && ib != b.end() && ia->second == ib->second) continue;
    out.push_back(path + ": " + show(path, a) + " -> " + show(path, b));
  }
  return out;
}

std::vector<PipelinePlan> PlanStart(const Config& config,
                                    const std::vector<PipelineRecord>& stored) {
  std::vector<PipelinePlan> plan;
  auto find = [&](const std::string& name) -> const PipelineRecord* {
    for (const PipelineRecord& r : stored)
      if (r.name == name) return &r;
    return nullptr;
  };
  for (const PipelineConfig& p : config.pipelines) {
    PipelinePlan pp;
    pp.name = p.name;
    const PipelineRecord* r = find(p.name);
    if (r == nullptr) {
      pp.action = StartAction::kNew;
    } else if (r->fingerprint.empty()) {
      // Removed earlier; its next generation was reserved so no id repeats.
      pp.action = StartAction::kNew;
      pp.generation = r->generation;
    } else if (r->fingerprint == p.fingerprint) {
      pp.action = StartAction::kKeep;
      pp.generation = r->generation;
    } else {
      pp.action = StartAction::kNewGeneration;
      pp.old_generation = r->generation;
      pp.generation = r->generation + 1;
      pp.changes = DefinitionChanges(r->definition_json, p.definition_json);
    }
    plan.push_back(std::move(pp));
  }
  for (const PipelineRecord& r : stored) {
    if (r.fingerprint.empty()) continue;  // already removed
    bool kept = false;
    for (const PipelineConfig& p : config.pipelines)
      if (p.name == r.name) kept = true;
    if (kept) continue;
    PipelinePlan pp;
    pp.name = r.name;
    pp.action = StartAction::kRemove;
    pp.generation = r.generation;
    pp.old_generation = r.generation;
    plan.push_back(std::move(pp));
  }
  return plan;
}

int RunValidate(const ValidateOptions& options) {
  std::vector<ConfigError> errors;
  std::optional<Config> config = LoadConfigFile(options.config_path, &errors);
  if (!config) {
    // A file that cannot be read is "unusable" (1); one that can but is wrong is "invalid" (2).
    bool unreadable = errors.size() == 1 && errors[0].pointer.empty() &&
                      errors[0].message.rfind("cannot read", 0) == 0;
    std::string report = FormatConfigErrors(options.config_path, errors);
    if (!unreadable)
      report += options.config_path + ": " + std::to_string(errors.size()) + " error" +
                (errors.size() == 1 ? "" : "s") + "\n";
    PrintErrorReport(report);
    return unreadable ? 1 : 2;
  }
  const Config& c = *config;
  std::printf("%s: valid\n", options.config_path.c_str());
  std::printf("gateway   %s\n", c.gateway.c_str());
  std::printf("source    %s as %s (qos %d)\n", c.source.broker.c_str(), c.source.client_id.c_str(),
              c.source.qos);
  for (const TopicConfig& t : c.source.topics)
    std::printf("  topic   %s (%s)\n", t.topic.c_str(),
                t.format == PayloadFormat::kJson ? "json" : "flatbuffers");
  if (c.source.status.enabled)
    std::printf("  status  %s (\"%s\" / \"%s\")\n", c.source.status.topic.c_str(),
                c.source.status.online.c_str(), c.source.status.offline.c_str());
  std::string fields;
  for (const NamedPath& f : c.source.fields) fields += (fields.empty() ? "" : ", ") + f.name;
  std::string attrs;
  for (const std::string& a : c.attributes) attrs += (attrs.empty() ? "" : ", ") + a;
  std::printf("  device  %s; fields: %s; attributes: %s\n", c.source.device.c_str(),
              fields.empty() ? "-" : fields.c_str(), attrs.empty() ? "-" : attrs.c_str());

  MemoryBudget budget = ComputeMemoryBudget(c);
  for (size_t pi = 0; pi < c.pipelines.size(); ++pi) {
    const PipelineConfig& p = c.pipelines[pi];
    std::string key;
    for (const std::string& k : p.key) key += (key.empty() ? "" : ", ") + k;
    std::printf("pipeline  %s: %s, key [%s], %zu filter%s\n", p.name.c_str(),
                WindowText(p.window).c_str(), key.c_str(), p.where.size(),
                p.where.size() == 1 ? "" : "s");
    std::string aggs;
    for (const AggregateConfig& a : p.aggregates) {
      aggs += (aggs.empty() ? "" : ", ") + a.name + " = " + AggregateKindName(a.kind) + "(" + a.field;
      if (a.kind == AggregateKind::kQuantile) {
        char q[32];
        std::snprintf(q, sizeof q, ", %g", a.q);
        aggs += q;
      }
      aggs += ")";
    }
    std::printf("  values  %s\n", aggs.c_str());
    const char* late = p.event_time.late == LatePolicy::kUpdate ? "update"
                       : p.event_time.late == LatePolicy::kSide ? "side"
                                                                : "drop";
    std::printf("  late    %s, allowed_lateness %s, max_out_of_orderness %s\n", late,
                FormatDuration(p.event_time.allowed_lateness_ms).c_str(),
                FormatDuration(p.event_time.max_out_of_orderness_ms).c_str());
    const PipelineMemory& m = budget.per_pipeline[pi];
    std::printf("  memory  %s (%" PRId64 " keys x %" PRId64 " windows x %s, incl. pool growth)\n",
                FormatBytes(m.bytes).c_str(), m.keys, m.windows_per_key,
                FormatBytes(m.window_bytes).c_str());
    std::printf("  fingerprint %s\n", p.fingerprint.c_str());
  }
  if (c.uplink.present)
    std::printf("uplink    %s as %s, topic %s, batch_max %" PRId64 "\n", c.uplink.broker.c_str(),
                c.uplink.client_id.c_str(), c.uplink.topic.c_str(), c.uplink.batch_max);
  else
    std::printf("uplink    none (weir run needs one; replay does not)\n");
  std::printf("storage   %s, max %s, sync %s, commit every %s\n", c.storage.path.c_str(),
              FormatBytes(c.storage.max_bytes).c_str(),
              c.storage.sync == SyncMode::kFull ? "full" : "normal",
              FormatDuration(c.storage.commit_interval_ms).c_str());
  if (!c.metrics.listen.empty())
    std::printf("metrics   http://%s/metrics\n", c.metrics.listen.c_str());

  // The same parts `weir run` allocates (runtime/memory_budget.h); the
  // queue's part assumes ~100-byte payloads.
  int64_t total = budget.total;
  std::printf(
      "memory budget: %s = fixed %s + pipelines %s + devices %s + messages %s + "
      "commit %s + SQLite %s\n",
      FormatBytes(total).c_str(), FormatBytes(budget.fixed).c_str(),
      FormatBytes(budget.pipelines).c_str(), FormatBytes(budget.devices).c_str(),
      FormatBytes(budget.messages).c_str(), FormatBytes(budget.commit).c_str(),
      FormatBytes(budget.sqlite).c_str());
  if (options.memory_limit_bytes > 0 && total > options.memory_limit_bytes)
    std::fprintf(stderr,
                 "%s: warning: the memory budget %s exceeds --memory %s (hint: lower "
                 "limits.max_keys, allowed_lateness or source.max_devices)\n",
                 options.config_path.c_str(), FormatBytes(total).c_str(),
                 FormatBytes(options.memory_limit_bytes).c_str());

  if (!options.db_path.empty()) return ReportStart(c, options.db_path);
  return 0;
}

}  // namespace weir
