#include "runtime/daemon.h"

#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/log.h"
#include "core/text.h"
#include "ingest/bounded_queue.h"
#include "ingest/mqtt_source.h"
#include "runtime/memory_budget.h"
#include "runtime/metrics.h"
#include "runtime/processor.h"
#include "runtime/uv_handles.h"
#include "storage/store.h"
#include "uplink/mqtt_uplink.h"

#ifdef WEIR_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace weir {
namespace {

constexpr const char* kLog = "run";
// Processing time advances at least this often without messages (idle
// release, late_emit_delay and firing by idleness are measured against it).
constexpr int64_t kTickMs = 100;
// Messages handled per loop wake-up before timers get a turn.
constexpr size_t kIngestSlice = 512;
// While messages stream in, the loop looks at the queue again this long
// after draining it, instead of having the MQTT thread wake it per message.
constexpr uint64_t kIngestPollMs = 1;
// Ingest pauses while this many results wait for a commit (a slow disk
// pushes back to the broker instead of growing memory). A result waiting is
// ~400 bytes in memory; 8192 of them are a few MB, and still several commit
// intervals' worth at the flush rates the bench measures. (At 100000, a
// backlog of 1M readings replayed after an outage held ~50 MB here.)
constexpr size_t kMaxPendingOutbox = 8192;

// ... and never more than a small part of storage.max_bytes (about 2 KB a result
// there with its state and index), so that one commit always fits the file: a batch
// larger than the room left can never commit, and on_full block would wait for ever.
size_t MaxPendingOutbox(const Config& config) {
  int64_t by_size = config.storage.max_bytes / 2048;
  if (config.storage.max_bytes <= 0 || by_size >= static_cast<int64_t>(kMaxPendingOutbox))
    return kMaxPendingOutbox;
  return static_cast<size_t>(std::max<int64_t>(by_size, 64));
}

int64_t WallClockMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
  return s;
}

std::string PipelineStorageId(const std::string& name, int64_t generation) {
  return generation == 0 ? name : name + "~" + std::to_string(generation);
}

// "window.size: 10000 -> 20000, aggregates.t_max: absent -> {...}": the
// leaves that differ between two pipelines' definition_json (DESIGN 6.5 asks
// the reload log to say which keys changed).
std::string DefinitionChanges(const std::string& old_json, const std::string& new_json) {
  nlohmann::json a = nlohmann::json::parse(old_json, nullptr, /*allow_exceptions=*/false);
  nlohmann::json b = nlohmann::json::parse(new_json, nullptr, /*allow_exceptions=*/false);
  if (a.is_discarded() || b.is_discarded()) return "definition";
  nlohmann::json fa = a.flatten(), fb = b.flatten();
  auto dotted = [](const std::string& pointer) {
    std::string out;
    for (size_t i = 1; i < pointer.size(); ++i) out.push_back(pointer[i] == '/' ? '.' : pointer[i]);
    return out;
  };
  std::string out;
  auto add = [&](const std::string& pointer, const std::string& from, const std::string& to) {
    if (!out.empty()) out.append(", ");
    out.append(dotted(pointer)).append(": ").append(from).append(" -> ").append(to);
  };
  // Flattened objects iterate in key order, so the list is stable.
  for (auto it = fa.begin(); it != fa.end(); ++it) {
    auto other = fb.find(it.key());
    if (other == fb.end())
      add(it.key(), it.value().dump(), "absent");
    else if (*other != it.value())
      add(it.key(), it.value().dump(), other->dump());
  }
  for (auto it = fb.begin(); it != fb.end(); ++it)
    if (!fa.contains(it.key())) add(it.key(), "absent", it.value().dump());
  return out.empty() ? "definition" : out;
}

// The settings outside a pipeline's definition that differ (they apply at
// once, state kept), in the words of the config: "event_time.idle_timeout:
// 300000 -> 60000".
std::string SettingChanges(const PipelineConfig& a, const PipelineConfig& b) {
  std::string out;
  auto add = [&](const char* name, int64_t from, int64_t to) {
    if (from == to) return;
    if (!out.empty()) out.append(", ");
    out.append(name)
        .append(": ")
        .append(std::to_string(from))
        .append(" -> ")
        .append(std::to_string(to));
  };
  const EventTimeConfig& x = a.event_time;
  const EventTimeConfig& y = b.event_time;
  add("event_time.max_out_of_orderness", x.max_out_of_orderness_ms, y.max_out_of_orderness_ms);
  add("event_time.idle_timeout", x.idle_timeout_ms, y.idle_timeout_ms);
  add("event_time.max_hold", x.max_hold_ms, y.max_hold_ms);
  add("event_time.allowed_lateness", x.allowed_lateness_ms, y.allowed_lateness_ms);
  if (x.late != y.late) {
    auto name = [](LatePolicy l) {
      return l == LatePolicy::kUpdate ? "update" : l == LatePolicy::kSide ? "side" : "drop";
    };
    if (!out.empty()) out.append(", ");
    out.append("event_time.late: ").append(name(x.late)).append(" -> ").append(name(y.late));
  }
  add("event_time.late_emit_delay", x.late_emit_delay_ms, y.late_emit_delay_ms);
  add("limits.max_keys", a.max_keys, b.max_keys);
  return out;
}

void Notify(const char* state) {
#ifdef WEIR_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

// Appends everything the engine emits to the batch being filled.
class OutboxCollector : public EngineOutput {
 public:
  void Reset(CommitBatch* batch, int64_t now_ms) {
    batch_ = batch;
    now_ms_ = now_ms;
  }
  void set_now(int64_t now_ms) { now_ms_ = now_ms; }

  void OnResult(int, const ResultRecord& r) override {
    batch_->outbox.push_back(ResultOutboxEntry(r, now_ms_));
  }

  void OnLateSide(int pipeline_index, const Reading& reading, int64_t ts_ms) override {
    OutboxEntry e;
    e.kind = OutboxKind::kLateSide;
    if (pipeline_index >= 0 && static_cast<size_t>(pipeline_index) < pipeline_names_.size())
      e.pipeline = pipeline_names_[pipeline_index];
    e.window_start = ts_ms;
    e.window_end = ts_ms;
    e.created_ms = now_ms_;
    // DESIGN 5.4: the raw reading, as the device sent it. A FlatBuffers sample has no
    // JSON form: it is described by what weir decoded.
    e.payload = RawJsonReading(reading);
    if (!e.payload.empty()) {
      batch_->outbox.push_back(std::move(e));
      return;
    }
    std::string& p = e.payload;
    p.append("{\"pipeline\":");
    AppendJsonString(e.pipeline, &p);
    p.append(",\"device\":");
    AppendJsonString(reading.device, &p);
    p.append(",\"ts\":");
    AppendInt(ts_ms, &p);
    if (reading.has_seq) {
      p.append(",\"seq\":");
      AppendInt(reading.seq, &p);
    }
    p.append(",\"fields\":{");
    bool first = true;
    for (size_t i = 0; i < field_names_->size(); ++i) {
      if (!reading.HasField(static_cast<int>(i))) continue;
      if (!first) p.push_back(',');
      first = false;
      AppendJsonString((*field_names_)[i], &p);
      p.push_back(':');
      AppendDouble(reading.field[i], &p);
    }
    p.append("}}");
    e.created_ms = now_ms_;
    batch_->outbox.push_back(std::move(e));
  }

  void SetNames(const Config* config) {
    field_names_storage_.clear();
    for (const auto& f : config->source.fields) field_names_storage_.push_back(f.name);
    field_names_ = &field_names_storage_;
    pipeline_names_.clear();
    for (const auto& p : config->pipelines) pipeline_names_.push_back(p.name);
  }


 private:
  CommitBatch* batch_ = nullptr;
  int64_t now_ms_ = 0;
  std::vector<std::string> field_names_storage_;
  const std::vector<std::string>* field_names_ = &field_names_storage_;
  std::vector<std::string> pipeline_names_;
};

// Appends `more` after `base`, keeping order (a failed batch goes first).
void AppendBatch(CommitBatch* base, CommitBatch&& more) {
  auto move_all = [](auto* dst, auto& src) {
    for (auto& x : src) dst->push_back(std::move(x));
  };
  move_all(&base->outbox, more.outbox);
  move_all(&base->state, more.state);
  move_all(&base->state_cleared, more.state_cleared);
  move_all(&base->dedup, more.dedup);
  move_all(&base->journal, more.journal);
  base->journal_processed += more.journal_processed;
  base->checkpoint_seq = std::max(base->checkpoint_seq, more.checkpoint_seq);
  move_all(&base->pipelines, more.pipelines);
  move_all(&base->pipelines_removed, more.pipelines_removed);
  if (more.config) base->config = std::move(more.config);
  move_all(&base->counters, more.counters);
  base->seal_loss_upto = std::max(base->seal_loss_upto, more.seal_loss_upto);
}

// The checkpoint rows of a pipeline without its spill rows: spilled copies
// are only a cache between checkpoints (every checkpoint also writes the
// key's 'k' row), so a restart restores from checkpoint rows alone.
class CheckpointRows : public StateReader {
 public:
  explicit CheckpointRows(StateReader* all) : all_(all) {}
  Status ForEach(std::string_view pipeline_id,
                 const std::function<Status(char, std::string_view, std::string_view)>& fn)
      override {
    return all_->ForEach(pipeline_id, [&](char kind, std::string_view id, std::string_view blob) {
      return kind == 's' ? Status::Ok() : fn(kind, id, blob);
    });
  }

 private:
  StateReader* all_;
};

// Where the engine puts the state of keys beyond limits.max_keys (DESIGN
// 6.3): spilled rows ride with the next group commit (kind 's'); until that
// commit has succeeded they are served from memory, then from the database.
class DaemonSpillStore : public SpillStore {
 public:
  DaemonSpillStore(CommitBatch* const* pending, StoreReader* const* reader)
      : pending_(pending), reader_(reader) {}

  void Put(std::string_view pipeline_id, std::string_view key_id, std::string_view blob) override {
    std::string k = Key(pipeline_id, key_id);
    uncommitted_[k] = std::string(blob);
    (*pending_)->state.push_back(
        {std::string(pipeline_id), kSpillKind, std::string(key_id), std::string(blob), false});
  }

  bool Get(std::string_view pipeline_id, std::string_view key_id, std::string* blob) override {
    std::string k = Key(pipeline_id, key_id);
    for (auto* m : {&uncommitted_, &committing_}) {
      auto it = m->find(k);
      if (it != m->end()) {
        if (!it->second) return false;  // erased
        *blob = *it->second;
        return true;
      }
    }
    auto row = (*reader_)->GetState(pipeline_id, kSpillKind, key_id);
    if (!row.ok()) {
      LOG_ERROR("storage", "reading spilled state of %.*s: %s",
                static_cast<int>(key_id.size()), key_id.data(), row.status().ToString().c_str());
      return false;
    }
    if (!row.value()) return false;
    *blob = std::move(*row.value());
    return true;
  }

  void Erase(std::string_view pipeline_id, std::string_view key_id) override {
    uncommitted_[Key(pipeline_id, key_id)] = std::nullopt;
    (*pending_)->state.push_back(
        {std::string(pipeline_id), kSpillKind, std::string(key_id), std::string(), true});
  }

  // A commit took the pending batch / finished / failed (then it is retried).
  void OnSubmit() {
    for (auto& [k, v] : uncommitted_) committing_[k] = std::move(v);
    uncommitted_.clear();
  }
  void OnCommitted() { committing_.clear(); }
  void OnFailed() {
    for (auto& [k, v] : uncommitted_) committing_[k] = std::move(v);
    uncommitted_.swap(committing_);
    committing_.clear();
  }

 private:
  static constexpr char kSpillKind = 's';
  static std::string Key(std::string_view p, std::string_view k) {
    std::string s(p);
    s.push_back('\0');
    s.append(k);
    return s;
  }
  CommitBatch* const* pending_;
  StoreReader* const* reader_;
  std::unordered_map<std::string, std::optional<std::string>> uncommitted_, committing_;
};

}  // namespace

struct Daemon::Impl {
  DaemonOptions options;
  Config config;
  std::vector<int64_t> generations;  // parallel to config.pipelines
  // An uplink a reload replaces stops on a thread of its own while the loop
  // keeps draining the queue: stopping a Paho client takes Paho's
  // process-wide lock, which the source's receive thread holds while our
  // callback waits for room in a full queue. Its successor starts from
  // OnTick once it is gone (never two uplinks on one client id).
  std::vector<std::thread> retiring;
  std::atomic<int> retiring_count{0};
  bool restart_uplink = false;

  uv_loop_t loop{};
  std::unique_ptr<Store> store;
  std::unique_ptr<StoreReader> reader;  // loop thread only
  std::unique_ptr<JournalWriter> journal;
  std::unique_ptr<MessageProcessor> processor;
  std::unique_ptr<BoundedQueue<Message>> queue;
  std::unique_ptr<MqttSource> source;
  std::unique_ptr<MqttUplink> uplink;

  std::unique_ptr<UvAsync> ingest_wake, commit_wake, ack_wake;
  std::unique_ptr<UvTimer> tick_timer, commit_timer, retry_timer, ingest_poll;
  std::vector<std::unique_ptr<UvSignal>> signals;

  // Loop-thread state.
  CommitBatch pending;
  CommitBatch* pending_ptr = &pending;
  StoreReader* reader_ptr = nullptr;
  DaemonSpillStore spill{&pending_ptr, &reader_ptr};
  OutboxCollector collector;
  bool commit_inflight = false;
  int64_t last_journal_seq = -1;  // highest journal seq processed (replay, journal mode)
  int64_t checkpoint_submitted = -1;  // the highest checkpoint_seq handed to a commit
  bool stopping = false;
  int exit_code = 0;
  SourceState source_state = SourceState::kStopped;
  RateLimiter reject_log{5, 10000};
  RateLimiter commit_error_log{3, 10000};
  Metrics metrics;  // /metrics (DESIGN 7): a snapshot published every tick

  // Commit completions and PUBACKs cross over from other threads.
  std::mutex cross_mu;
  std::deque<CommitResult> commit_results;
  std::vector<int64_t> acked_positions;

  // Uplink hand-over (loop thread): rows above live_cursor are read in
  // position order; [backlog_after, backlog_upto] is what was pending when
  // weir started, drained oldest-first behind live rows (order live_first).
  int64_t live_cursor = 0;
  int64_t backlog_after = 0;
  int64_t backlog_upto = 0;
  std::unordered_map<int64_t, int64_t> handed_rev;  // pos -> rev, until acked
  bool uplink_connected = false;
  std::deque<Message> held;  // taken off the queue, not yet processed (in order)
  bool source_paused = false;  // storage full (on_full block): source disconnected
  int64_t loss_sealed = 0;     // loss records at or below this position are final
  int64_t seal_requested = 0;  // waiting for this loss record to be sealed
  int64_t inflight_seal = 0;   // the seal carried by the commit in flight
  // Topic filters a config applied at start removed (same client id): the
  // source unsubscribes them from its persistent session when it starts.
  std::vector<std::string> pending_unsubscribe;
  std::string uplink_topic_template;

  explicit Impl(DaemonOptions o) : options(std::move(o)) {}

  // ---- setup -------------------------------------------------------------

  bool LoadConfig(const std::string& path, Config* out) {
    std::vector<ConfigError> errors;
    auto parsed = LoadConfigFile(path, &errors, /*for_run=*/true);
    if (!parsed) {
      std::fputs(FormatConfigErrors(path, errors).c_str(), stderr);
      return false;
    }
    *out = std::move(*parsed);
    return true;
  }

  Status OpenStore() {
    StoreOptions so = StoreOptionsFromConfig(config);
    auto st = Store::Open(so);
    if (!st.ok()) return st.status();
    store = std::move(st).value();
    auto rd = StoreReader::Open(config.storage.path, /*read_only=*/false);
    if (!rd.ok()) return rd.status();
    reader = std::move(rd).value();
    reader_ptr = reader.get();
    if (config.ingest.durability == Durability::kJournal) {
      auto jw = store->NewJournalWriter();
      if (!jw.ok()) return jw.status();
      journal = std::move(jw).value();
    }
    return Status::Ok();
  }

  // Generations for `cfg` from the stored pipeline records (DESIGN 6.5). A
  // stored record with another fingerprint means the definition changed
  // while weir was down; Recover handles that by applying it as a reload.
  std::vector<int64_t> StoredGenerations(const Config& cfg,
                                         const std::vector<PipelineRecord>& stored) {
    std::vector<int64_t> gens;
    for (const auto& p : cfg.pipelines) {
      int64_t g = 0;
      for (const auto& r : stored)
        if (r.name == p.name) g = r.generation;
      gens.push_back(g);
    }
    return gens;
  }

  Status BuildProcessor(const Config& cfg, const std::vector<int64_t>& gens) {
    auto proc = MessageProcessor::Create(cfg, gens);
    if (!proc.ok()) return proc.status();
    processor = std::move(proc).value();
    collector.SetNames(&cfg);
    processor->engine().SetSpillStore(&spill);  // before Restore, as the engine requires
    CheckpointRows rows(reader.get());
    RETURN_IF_ERROR(processor->engine().Restore(&rows));
    return reader->ForEachDedup([this](std::string_view device, std::string_view blob) {
      return processor->dedup().Restore(device, blob);
    });
  }

  // Commits everything processed so far and waits for it (startup, reload,
  // shutdown). A commit already in flight holds only the changes up to its
  // start, and engine and dedup changes are collected by SubmitCommit (an
  // empty `pending` does not mean nothing changed): wait for it first, then
  // commit the rest. Without that, a reload that came while a timer commit
  // was in flight rebuilt its pipelines from state missing the readings
  // processed since, while the journal checkpoint moved past them.
  Status CommitAndWait() {
    if (commit_inflight) {
      RETURN_IF_ERROR(store->Flush());
      HandleCommitResults();
      if (commit_inflight) return Internal("commit did not complete");
    }
    // A failed batch is merged back into pending: try once more.
    for (int attempt = 0; attempt < 2; ++attempt) {
      SubmitCommit(/*force=*/true);
      Status st = store->Flush();
      HandleCommitResults();
      if (!st.ok()) return st;
      if (commit_inflight) return Internal("commit did not complete");
      if (pending.empty()) return Status::Ok();
    }
    return Unavailable("could not commit the pending batch");
  }

  Status Recover() {
    auto stored = reader->Pipelines();
    if (!stored.ok()) return stored.status();
    auto last = reader->LastConfig();
    if (!last.ok()) return last.status();

    // Recover under the config the state was written with, then apply the
    // file's config as a reload when it differs (DESIGN 6.5): the journal
    // tail was taken in under the stored config, so it is processed under it.
    Config recovery = config;
    bool differs = false;
    bool unreadable = false;
    if (last.value() && last.value()->text != config.text) {
      std::vector<ConfigError> errors;
      auto old = ParseConfig(last.value()->text, &errors, /*for_run=*/false);
      if (old) {
        // Clients and storage in force are the file's; only the pipelines
        // and the decoding of messages come from the stored config.
        old->uplink = config.uplink;
        old->storage = config.storage;
        old->ingest = config.ingest;
        old->metrics = config.metrics;
        recovery = std::move(*old);
        differs = true;
      } else {
        unreadable = true;
        LOG_WARN(kLog, "the config stored in %s no longer parses (%s); recovering under %s",
                 config.storage.path.c_str(),
                 errors.empty() ? "?" : errors[0].message.c_str(), options.config_path.c_str());
      }
    }
    std::vector<int64_t> gens = StoredGenerations(recovery, stored.value());
    if (unreadable) RetireUnreadable(recovery, stored.value(), &gens);
    RETURN_IF_ERROR(BuildProcessor(recovery, gens));
    Config new_config = std::move(config);
    config = std::move(recovery);
    generations = gens;

    auto checkpoint = reader->CheckpointSeq();
    if (!checkpoint.ok()) return checkpoint.status();
    last_journal_seq = checkpoint.value();
    int64_t replayed = 0;
    collector.Reset(&pending, 0);
    RETURN_IF_ERROR(reader->ForEachJournal(checkpoint.value(), [&](const Message& m) {
      collector.set_now(m.arrival_ms);
      processor->Process(m, &collector);
      last_journal_seq = m.journal_seq;
      ++replayed;
      return Status::Ok();
    }));
    if (replayed > 0) {
      LOG_INFO(kLog, "replayed %lld journaled messages after checkpoint %lld",
               static_cast<long long>(replayed), static_cast<long long>(checkpoint.value()));
    }
    if (!differs) {
      RecordConfig(config, generations, stored.value(), &pending);
      // The config history grows by changes only, not by every start.
      if (last.value() && last.value()->text == config.text) pending.config.reset();
      Status st = CommitAndWait();
      if (!st.ok() && store->stats().full) {
        // on_full block with a full file: the replayed batch waits in `pending` like
        // any refused batch, the uplink frees room by delivering, and the commit
        // timer retries; the journal keeps the readings until then.
        LOG_WARN(kLog, "storage is full: the replayed readings' results wait for room (%s)",
                 st.ToString().c_str());
        return Status::Ok();
      }
      return st;
    }
    RETURN_IF_ERROR(CommitAndWait());
    LOG_INFO(kLog,
             "%s differs from the config last applied: recovered under the stored one, "
             "applying the file's as a reload",
             options.config_path.c_str());
    return ApplyConfig(std::move(new_config), stored.value());
  }

  // The stored config cannot be parsed any more (so its pipelines cannot be
  // drained): a pipeline whose stored definition differs from the file's
  // must not restore that state into the new definition nor reuse its ids.
  // Its old state is deleted and it starts empty under the next generation;
  // a stored pipeline missing from the file is retired the same way.
  void RetireUnreadable(const Config& cfg, const std::vector<PipelineRecord>& stored,
                        std::vector<int64_t>* gens) {
    int64_t now = WallClockMs();
    for (const auto& r : stored) {
      if (r.fingerprint.empty()) continue;  // removed already
      size_t i = 0;
      while (i < cfg.pipelines.size() && cfg.pipelines[i].name != r.name) ++i;
      bool kept = i < cfg.pipelines.size() && cfg.pipelines[i].fingerprint == r.fingerprint;
      if (kept) continue;
      LOG_WARN(kLog,
               "pipeline %s: the stored definition differs and cannot be read back; its "
               "open windows are lost, state deleted",
               r.name.c_str());
      pending.state_cleared.push_back(PipelineStorageId(r.name, r.generation));
      if (i < cfg.pipelines.size())
        (*gens)[i] = r.generation + 1;
      else
        pending.pipelines.push_back({r.name, r.generation + 1, "", "", now});
    }
  }

  // Adds to `batch` the pipeline records of `cfg` that differ from the stored
  // ones, and the config text (DESIGN 6.5).
  static void RecordConfig(const Config& cfg, const std::vector<int64_t>& gens,
                           const std::vector<PipelineRecord>& stored, CommitBatch* batch) {
    int64_t now = WallClockMs();
    for (size_t i = 0; i < cfg.pipelines.size(); ++i) {
      const auto& p = cfg.pipelines[i];
      bool same = false;
      for (const auto& r : stored)
        if (r.name == p.name && r.generation == gens[i] && r.fingerprint == p.fingerprint)
          same = true;
      if (!same)
        batch->pipelines.push_back({p.name, gens[i], p.fingerprint, p.definition_json, now});
    }
    batch->config = ConfigRecord{cfg.text, now};
  }

  // A failure after a config change was committed: the database already
  // says the new config, memory still the old one. Stopping is the only safe
  // way on; the next start recovers under the stored (new) config, and the
  // journal and the broker's session hold everything not yet processed.
  [[noreturn]] void FailAfterCommit(const Status& st) {
    LOG_ERROR(kLog,
              "applying the config failed after it was committed: %s; stopping (the next "
              "start recovers under the new config)",
              st.ToString().c_str());
    if (source) source->Stop();  // no more PUBACKs
    std::fflush(stderr);
    std::_Exit(70);
  }

  // Applies `next` pipeline by pipeline (DESIGN 6.5). Called between two
  // messages with everything processed so far committed (CommitAndWait), so
  // the database holds exactly the in-memory state. The whole change (the
  // drained results, the cleared state, the pipeline records, the config
  // text) is one commit: a crash before it recovers under the old config and
  // applies the new one again, a crash after it recovers under the new one.
  // An error before that commit leaves the running config in force.
  Status ApplyConfig(Config next, const std::vector<PipelineRecord>& stored) {
    // Pipelines whose old state ends: removed ones and changed definitions.
    Config ending = config;
    ending.pipelines.clear();
    std::vector<int64_t> ending_gens;
    std::vector<int64_t> next_gens;
    // Logged once the change is committed: the new config's pipelines in
    // its order, then the removed ones.
    std::vector<std::string> lines, removed_lines;
    CommitBatch change;
    int64_t now = WallClockMs();
    for (size_t i = 0; i < config.pipelines.size(); ++i) {
      const auto& old = config.pipelines[i];
      const PipelineConfig* found = nullptr;
      for (const auto& p : next.pipelines)
        if (p.name == old.name) found = &p;
      if (found && found->fingerprint == old.fingerprint) continue;
      ending.pipelines.push_back(old);
      ending_gens.push_back(generations[i]);
      if (!found) {
        removed_lines.push_back("pipeline " + old.name +
                                ": removed; open windows emitted as --drain would, state deleted");
        // Keep the name's record with the next generation reserved, so a
        // pipeline added again under this name never reuses an old id.
        change.pipelines.push_back({old.name, generations[i] + 1, "", "", now});
      }
    }
    for (const auto& p : next.pipelines) {
      int64_t g = 0;
      bool known = false;
      for (size_t i = 0; i < config.pipelines.size(); ++i) {
        if (config.pipelines[i].name != p.name) continue;
        known = true;
        g = generations[i];
        if (config.pipelines[i].fingerprint == p.fingerprint) {
          std::string settings = SettingChanges(config.pipelines[i], p);
          lines.push_back("pipeline " + p.name + ": definition unchanged; state kept (ids " +
                          PipelineStorageId(p.name, g) + ")" +
                          (settings.empty() ? "" : "; from now on " + settings));
        } else {
          g += 1;
          lines.push_back(
              "pipeline " + p.name + ": definition changed (" +
              DefinitionChanges(config.pipelines[i].definition_json, p.definition_json) +
              "); open windows emitted as --drain would, restarting empty as generation " +
              std::to_string(g) + " (ids " + PipelineStorageId(p.name, g) + ")");
        }
      }
      if (!known) {
        for (const auto& r : stored)
          if (r.name == p.name) g = r.generation;  // a name used before (reserved generation)
        lines.push_back("pipeline " + p.name + ": new; starting empty as generation " +
                        std::to_string(g) + " (ids " + PipelineStorageId(p.name, g) + ")");
      }
      next_gens.push_back(g);
    }

    if (!ending.pipelines.empty()) {
      // Emit the ending pipelines' windows as --drain would, from their
      // committed state (equal to memory here), then delete that state.
      auto drained = Engine::Create(ending, ending_gens);
      if (!drained.ok()) return drained.status();
      CheckpointRows rows(reader.get());
      RETURN_IF_ERROR(drained.value()->Restore(&rows));
      collector.Reset(&change, processor->now_ms());
      drained.value()->Drain(&collector);
      for (size_t i = 0; i < ending.pipelines.size(); ++i)
        change.state_cleared.push_back(PipelineStorageId(ending.pipelines[i].name, ending_gens[i]));
    }
    RecordConfig(next, next_gens, stored, &change);
    lines.insert(lines.end(), removed_lines.begin(), removed_lines.end());

    const std::vector<std::string> old_filters = SubscriptionFilters(config);
    const std::vector<std::string> new_filters = SubscriptionFilters(next);
    const std::string old_client_id = config.source.client_id;
    // Topic filters alone change in the running session (SUBSCRIBE and
    // UNSUBSCRIBE); anything else about the source needs a new connection.
    bool source_changed =
        config.source.broker != next.source.broker ||
        config.source.client_id != next.source.client_id || config.source.qos != next.source.qos ||
        config.source.session_expiry_ms != next.source.session_expiry_ms ||
        config.source.username != next.source.username ||
        config.source.password != next.source.password;
    std::vector<std::string> added_filters, removed_filters;
    for (const std::string& f : new_filters)
      if (std::find(old_filters.begin(), old_filters.end(), f) == old_filters.end())
        added_filters.push_back(f);
    for (const std::string& f : old_filters)
      if (std::find(new_filters.begin(), new_filters.end(), f) == new_filters.end())
        removed_filters.push_back(f);
    bool uplink_changed =
        config.uplink.broker != next.uplink.broker ||
        config.uplink.client_id != next.uplink.client_id || config.uplink.qos != next.uplink.qos ||
        config.uplink.username != next.uplink.username ||
        config.uplink.password != next.uplink.password ||
        config.uplink.tls.ca != next.uplink.tls.ca ||
        config.uplink.tls.cert != next.uplink.tls.cert ||
        config.uplink.tls.key != next.uplink.tls.key ||
        config.uplink.batch_max != next.uplink.batch_max ||
        config.uplink.order != next.uplink.order || config.uplink.topic != next.uplink.topic;
    if (uplink && uplink_changed) {
      // Refuse before anything is committed (a key readable by others, 6.4).
      UplinkTlsOptions tls;
      tls.ca = next.uplink.tls.ca;
      tls.cert = next.uplink.tls.cert;
      tls.key = next.uplink.tls.key;
      RETURN_IF_ERROR(MqttUplink::CheckTlsFiles(tls));
    }

    // The commit point. The old processor goes first: its checkpoint rows
    // were committed already, and collecting them again would write the
    // ending pipelines' rows back after the store clears them.
    int64_t now_ms = processor->now_ms();
    // The ingest counters live in the processor: /metrics keeps what a
    // replaced one counted, but only as of its last snapshot. Take one now,
    // and another as soon as the new processor exists (below), or the
    // messages since the last tick go uncounted (and a new processor at the
    // old one's address would not even be noticed).
    RefreshMetrics();
    processor.reset();
    collector.Reset(&pending, now_ms);  // not the local batch, which is moved from next
    AppendBatch(&pending, std::move(change));
    Status st = CommitAndWait();
    if (!st.ok()) FailAfterCommit(st);
    config = std::move(next);
    generations = next_gens;
    for (const auto& line : lines) LOG_INFO(kLog, "%s", line.c_str());

    // Unchanged pipelines come back from the state just committed, which is
    // what they held in memory; processing time carries on where it was
    // (never back), and the first step at it finds idle devices again.
    st = BuildProcessor(config, generations);
    if (!st.ok()) FailAfterCommit(st);
    RefreshMetrics();
    if (now_ms > 0) processor->AdvanceTo(now_ms, &collector);

    if ((uplink || restart_uplink) && uplink_changed) {
      LOG_INFO(kLog, "uplink settings changed: reconnecting the uplink");
      if (uplink) Retire(std::move(uplink));
      restart_uplink = true;
    } else if (uplink) {
      uplink->SetMaxRate(config.uplink.max_rate_per_s);
    }
    if (source && source_changed) {
      LOG_INFO(kLog, "source settings changed: reconnecting to the gateway broker");
      // StartSource stops the old client while it drains the queue into
      // `held`: those messages are processed next, under the new config.
      st = StartSource();
      if (!st.ok()) FailAfterCommit(st);
      // The new client subscribes the new set; filters dropped from the
      // config leave the persistent session (when it is the same one) at
      // its connect. Another client id: the old session just expires.
      if (config.source.client_id == old_client_id && !removed_filters.empty())
        source->Unsubscribe(removed_filters);
    } else if (!source && config.source.client_id == old_client_id) {
      // On start, applying the file's config after recovery: the source is
      // not running yet. It subscribes the new set; the removed filters
      // leave the persistent session when it starts.
      pending_unsubscribe = removed_filters;
    } else if (source && (!added_filters.empty() || !removed_filters.empty())) {
      // Same session, same connection: messages on a removed filter that the
      // broker sent before the UNSUBSCRIBE are rejected as matching no topic.
      for (const std::string& f : added_filters)
        LOG_INFO(kLog, "source topic filter %s added: subscribing", f.c_str());
      for (const std::string& f : removed_filters)
        LOG_INFO(kLog, "source topic filter %s removed: unsubscribing", f.c_str());
      if (!added_filters.empty()) source->Subscribe(added_filters);
      if (!removed_filters.empty()) source->Unsubscribe(removed_filters);
    }
    return Status::Ok();
  }

  void Retire(std::unique_ptr<MqttUplink> client) {
    ++retiring_count;
    retiring.emplace_back([this, c = std::move(client)]() mutable {
      c->Stop();
      c.reset();
      --retiring_count;
    });
  }

  // Loop thread (OnTick): starts the uplink a reload replaced once the old
  // one has stopped. An error here is after the commit point (fatal).
  void FinishClientSwap() {
    if (retiring.empty() || retiring_count > 0) return;
    for (auto& t : retiring) t.join();
    retiring.clear();
    if (stopping) return;
    if (restart_uplink) {
      restart_uplink = false;
      Status st = StartUplink();
      if (!st.ok()) FailAfterCommit(st);
      PumpUplink();
    }
  }

  // Shutdown: waits for a retiring uplink, keeping the queue drained into
  // `held` meanwhile (as StopSource does).
  void AwaitRetiring() {
    restart_uplink = false;
    while (retiring_count > 0) {
      queue->PopSome(&held, SIZE_MAX);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (auto& t : retiring) t.join();
    retiring.clear();
  }

  static std::vector<std::string> SubscriptionFilters(const Config& cfg) {
    auto router = TopicRouter::Create(cfg.source);
    if (!router.ok()) return {};
    return router.value().SubscriptionFilters();
  }

  Status StartUplink() {
    if (uplink) {
      uplink->Stop();
      uplink.reset();
    }
    MqttUplinkOptions uo;
    uo.broker = config.uplink.broker;
    uo.client_id = config.uplink.client_id;
    uo.username = config.uplink.username;
    uo.password = config.uplink.password;
    uo.tls.ca = config.uplink.tls.ca;
    uo.tls.cert = config.uplink.tls.cert;
    uo.tls.key = config.uplink.tls.key;
    uo.batch_max = config.uplink.batch_max;
    uo.max_rate_per_s = config.uplink.max_rate_per_s;
    uplink_topic_template = ReplaceAll(config.uplink.topic, "{gateway}", config.gateway);
    uplink = std::make_unique<MqttUplink>(uo, [this](const std::vector<int64_t>& positions) {
      {
        std::lock_guard<std::mutex> lock(cross_mu);
        acked_positions.insert(acked_positions.end(), positions.begin(), positions.end());
      }
      if (ack_wake) ack_wake->Send();
    });
    uplink_connected = false;
    handed_rev.clear();
    return uplink->Start();
  }

  // Rows are handed to the uplink only while it is connected; a lost
  // connection discards the uplink's memory (everything is still in the
  // outbox), so rows dropped by storage.max_bytes meanwhile are never sent
  // as well as counted lost, and after the reconnect new results go first
  // while what piled up drains oldest-first (order live_first, DESIGN 6.4).
  void WatchUplink() {
    if (!uplink) return;
    MqttUplinkStats st = uplink->stats();
    bool connected = st.state == UplinkState::kConnected;
    if (connected == uplink_connected) return;
    if (!connected) {
      LOG_WARN("uplink", "lost %s; results wait in the outbox", config.uplink.broker.c_str());
      Status s = StartUplink();
      if (!s.ok()) LOG_ERROR("uplink", "%s", s.ToString().c_str());
      return;
    }
    uplink_connected = true;
    StoreStats ss = store->stats();
    handed_rev.clear();
    backlog_after = 0;
    backlog_upto = ss.newest_pos;
    live_cursor = config.uplink.order == UplinkOrder::kLiveFirst ? ss.newest_pos : 0;
    LOG_INFO("uplink", "connected to %s; %lld result(s) waiting", config.uplink.broker.c_str(),
             static_cast<long long>(ss.outbox_rows));
    PumpUplink();
  }

  // Stops the source without a deadlock: its callback may be waiting on a
  // full queue, so the loop keeps taking messages off the queue (into
  // `held`, processed before the queue) until Stop has returned.
  void StopSource() {
    if (!source) return;
    std::atomic<bool> done{false};
    std::thread stopper([&] {
      source->Stop();
      done = true;
    });
    while (!done.load()) {
      queue->PopSome(&held, SIZE_MAX);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stopper.join();
    queue->PopSome(&held, SIZE_MAX);
  }

  Status StartSource() {
    if (source) {
      StopSource();
      source.reset();
    }
    MqttSourceOptions so;
    so.broker = config.source.broker;
    so.client_id = config.source.client_id;
    so.qos = config.source.qos;
    so.filters = SubscriptionFilters(config);
    so.session_expiry_ms = config.source.session_expiry_ms;
    so.username = config.source.username;
    so.password = config.source.password;
    so.clock_ms = WallClockMs;
    source = std::make_unique<MqttSource>(so, [this](Message&& m) { OnArrival(std::move(m)); });
    source_state = SourceState::kStopped;
    if (!pending_unsubscribe.empty()) {
      for (const std::string& f : pending_unsubscribe)
        LOG_INFO(kLog, "source topic filter %s removed while weir was down: unsubscribing",
                 f.c_str());
      source->Unsubscribe(pending_unsubscribe);
      pending_unsubscribe.clear();
    }
    return source->Start();
  }

  // ---- MQTT thread -------------------------------------------------------

  // Runs inside Paho's callback: the broker's PUBACK follows our return, so
  // under durability journal the message must be in the journal first.
  void OnArrival(Message&& m) {
    if (journal) {
      // A full store (on_full block, or a full disk) gets a few seconds to
      // make room: meanwhile the loop stops the source. Paho runs every
      // client's callbacks on one thread, so waiting here for long would
      // also stall the uplink that is to make the room: past the deadline,
      // exit without acknowledging; the broker keeps the message.
      const int64_t give_up_ms = WallClockMs() + 5000;
      for (int attempt = 0;; ++attempt) {
        Status st = journal->Append(&m);
        if (st.ok()) break;
        bool transient = st.code() == StatusCode::kResourceExhausted ||
                         st.code() == StatusCode::kUnavailable;
        if (transient && WallClockMs() < give_up_ms) {
          int64_t suppressed = 0;
          if (commit_error_log.Allow(WallClockMs(), &suppressed))
            LOG_ERROR("ingest", "journal append failed, holding ingest: %s",
                      st.ToString().c_str());
          std::this_thread::sleep_for(std::chrono::milliseconds(10 << std::min(attempt, 5)));
          continue;
        }
        LOG_ERROR("ingest", "journal append failed: %s; exiting without acknowledging the "
                  "message (the gateway broker keeps it for the next start)",
                  st.ToString().c_str());
        std::fflush(stderr);
        std::_Exit(75);
      }
    }
    queue->Push(std::move(m));
  }

  // ---- loop thread -------------------------------------------------------

  // With durability batch, processed messages wait in `pending` for their
  // group commit; bounding them keeps memory within the budget `weir
  // validate` prints when a commit is slow (the queue then fills and pushes
  // back to the broker, DESIGN 6.1).
  bool IngestPaused() const {
    return pending.outbox.size() >= MaxPendingOutbox(config) ||
           pending.journal.size() >= static_cast<size_t>(MaxPendingMessages(config)) ||
           store->stats().full;
  }

  // on_full block: while the store is full the source is disconnected, so
  // the gateway broker holds the readings in weir's persistent session
  // (blocking Paho's callback instead would stall the uplink too: Paho runs
  // all clients on shared threads).
  void WatchStorageFull() {
    bool full = store->stats().full;
    if (full && source && !source_paused) {
      source_paused = true;
      LOG_WARN("ingest", "storage is full (storage.on_full block): holding ingest until results "
               "are delivered; the gateway broker keeps the readings");
      StopSource();
    } else if (!full && source_paused) {
      source_paused = false;
      LOG_INFO("ingest", "room in storage again: ingest resumes");
      Status st = StartSource();
      if (!st.ok()) LOG_ERROR("ingest", "%s", st.ToString().c_str());
    }
  }

  // Runs on ingest_wake (the queue's wake-up hook, commit completions) and
  // on ingest_poll. The hand-over is batched: while a stream keeps coming,
  // the loop takes slices and then polls the queue every kIngestPollMs; only
  // a poll that finds nothing arms the queue's wake-up hook, so the MQTT
  // thread pays for a wake-up (uv_async_send, a syscall and a context
  // switch) once per burst instead of once per message, and a lone message
  // on an idle gateway is still handled at once.
  void OnIngestWake() {
    if (!processor) return;
    WatchStorageFull();
    if (IngestPaused()) return;  // the commit completion (or the tick) wakes us again
    // Messages held back while the source was stopped go first.
    if (held.size() < kIngestSlice) queue->PopSome(&held, kIngestSlice - held.size());
    size_t n = 0;
    for (; n < kIngestSlice && !held.empty() && !IngestPaused(); ++n) {
      ProcessOne(std::move(held.front()));
      held.pop_front();
    }
    if (IngestPaused()) return;
    if (queue->size() > 0 || !held.empty()) {
      ingest_wake->Send();  // more waiting: after the timers' turn
    } else if (n > 0) {
      ingest_poll->Start(kIngestPollMs, 0);
    } else if (!queue->ArmWake()) {
      ingest_wake->Send();  // a push came in between
    }
  }

  void ProcessOne(Message&& m) {
    collector.Reset(&pending, m.arrival_ms);
    const MessageOutcome& out = processor->Process(m, &collector);
    if (out.rejected > 0) {
      int64_t suppressed = 0;
      if (reject_log.Allow(m.arrival_ms, &suppressed)) {
        LOG_WARN("ingest", "rejected %d reading(s) on %s: %s: %.*s%s", out.rejected,
                 m.topic.c_str(), RejectReasonName(out.first_reject),
                 static_cast<int>(out.first_reject_detail.size()),
                 out.first_reject_detail.data(),
                 suppressed ? (" (" + std::to_string(suppressed) + " similar suppressed)").c_str()
                            : "");
      }
    }
    // Under durability batch the message is not written anywhere: the group
    // commit that carries its effect on state and outbox is what makes it
    // durable (DESIGN 6.2). Appending it to the journal in that same
    // transaction, only to trim it again at once, bought nothing.
    if (journal) last_journal_seq = m.journal_seq;
  }

  // Logs connection changes of the source (the readiness line tests wait for).
  void WatchSource() {
    if (!source) return;
    MqttSourceStats st = source->stats();
    if (st.state == source_state) return;
    source_state = st.state;
    if (st.state == SourceState::kConnected) {
      LOG_INFO("ingest", "subscribed to %s as %s (MQTT %d, session %s)",
               config.source.broker.c_str(), config.source.client_id.c_str(), st.mqtt_version,
               st.session_present ? "resumed" : "new");
    } else if (st.state == SourceState::kDisconnected) {
      LOG_WARN("ingest", "lost the gateway broker %s; reconnecting", config.source.broker.c_str());
    }
  }

  void OnTick() {
    if (!processor) return;
    FinishClientSwap();
    WatchSource();
    WatchUplink();
    WatchStorageFull();
    int64_t now = WallClockMs();
    collector.Reset(&pending, now);
    processor->AdvanceTo(now, &collector);
    // A backstop for the batched hand-over: whatever left the queue's
    // wake-up unarmed, waiting messages are never stuck longer than a tick.
    if (!stopping && (queue->size() > 0 || !held.empty())) ingest_wake->Send();
    RefreshMetrics(now);
  }

  void RefreshMetrics(int64_t now = WallClockMs()) {
    metrics.Refresh({&config, &generations, processor.get(), store.get(), source.get(),
                     uplink.get()},
                    now);
  }

  void SubmitCommit(bool force) {
    if (commit_inflight) return;
    BatchStateWriter writer(&pending);
    if (processor) {
      processor->engine().CollectChanges(&writer);
      processor->dedup().CollectChanges([this](std::string_view device, std::string_view blob) {
        pending.dedup.emplace_back(std::string(device), std::string(blob));
      });
    }
    // Journal mode moves the checkpoint with every message. In batch mode
    // only a startup replay of an earlier journal-mode tail moves it, and
    // that position must be committed too, or the tail is replayed again.
    if (last_journal_seq > 0 && (journal || last_journal_seq > checkpoint_submitted)) {
      pending.checkpoint_seq = last_journal_seq;
      checkpoint_submitted = last_journal_seq;
    }
    if (pending.empty() && !force) return;
    commit_inflight = true;
    inflight_seal = pending.seal_loss_upto;
    spill.OnSubmit();
    CommitBatch batch = std::move(pending);
    pending = CommitBatch();
    store->Commit(std::move(batch), [this](CommitResult&& r) {
      {
        std::lock_guard<std::mutex> lock(cross_mu);
        commit_results.push_back(std::move(r));
      }
      if (commit_wake) commit_wake->Send();
    });
    // Ingest may have paused on a full pending batch, which is empty now.
    if (ingest_wake && queue && (queue->size() > 0 || !held.empty())) ingest_wake->Send();
  }

  void HandleCommitResults() {
    std::deque<CommitResult> results;
    {
      std::lock_guard<std::mutex> lock(cross_mu);
      results.swap(commit_results);
    }
    for (CommitResult& r : results) {
      commit_inflight = false;
      if (r.status.ok()) {
        spill.OnCommitted();
        if (inflight_seal > 0) {
          loss_sealed = std::max(loss_sealed, inflight_seal);
          if (seal_requested <= loss_sealed) seal_requested = 0;
          inflight_seal = 0;
        }
        if (r.dropped > 0)
          LOG_WARN("storage", "storage.max_bytes reached: dropped %lld oldest undelivered "
                   "results (a loss record tells the receiver)", static_cast<long long>(r.dropped));
        continue;
      }
      int64_t suppressed = 0;
      if (commit_error_log.Allow(WallClockMs(), &suppressed))
        LOG_ERROR("storage", "commit failed, will retry: %s", r.status.ToString().c_str());
      inflight_seal = 0;  // the seal is in the batch that is retried
      spill.OnFailed();
      // Nothing of the batch was written: put it back in front and retry.
      CommitBatch retry = std::move(r.batch);
      AppendBatch(&retry, std::move(pending));
      pending = std::move(retry);
      if (retry_timer && !stopping) retry_timer->Start(1000, 0);
    }
  }

  void OnCommitWake() {
    HandleCommitResults();
    WatchStorageFull();
    PumpUplink();
    // Also when the queue is empty: ingest may have paused for this commit
    // without arming the queue's wake-up (OnIngestWake arms it).
    if (!stopping && queue) ingest_wake->Send();
  }

  std::string TopicFor(const OutboxRow& row) const {
    // A loss record belongs to no single pipeline: it goes on the first
    // pipeline's topic (with one pipeline, or a template without {pipeline},
    // that is simply the uplink topic).
    const std::string& pipeline =
        row.pipeline.empty() && !config.pipelines.empty() ? config.pipelines[0].name : row.pipeline;
    std::string t = ReplaceAll(uplink_topic_template, "{pipeline}", pipeline);
    if (row.kind == OutboxKind::kLateSide) t += "/late";
    return t;
  }

  size_t UplinkWindow() const {
    return static_cast<size_t>(std::max<int64_t>(2000, 20 * config.uplink.batch_max));
  }

  // Hands committed rows to the uplink: new rows first, then the backlog
  // that was pending at start, keeping at most UplinkWindow() rows in memory.
  void PumpUplink() {
    if (!uplink || !uplink_connected || !reader || seal_requested > 0) return;
    std::vector<weir::OutboxRow> rows;
    while (uplink->pending_rows() < UplinkWindow()) {
      int room = static_cast<int>(std::min<size_t>(500, UplinkWindow() - uplink->pending_rows()));
      rows.clear();
      int64_t* cursor = &live_cursor;
      int64_t upto = INT64_MAX;
      bool backlog = false;
      if (config.uplink.order == UplinkOrder::kInOrder) {
        backlog = live_cursor < backlog_upto;
      } else {
        Status st = reader->ReadOutbox(live_cursor, INT64_MAX, room, &rows);
        if (!st.ok()) {
          LOG_ERROR("uplink", "reading the outbox: %s", st.ToString().c_str());
          return;
        }
        if (rows.empty()) {
          if (backlog_after >= backlog_upto) return;
          cursor = &backlog_after;
          upto = backlog_upto;
          backlog = true;
        }
      }
      if (rows.empty()) {
        Status st = reader->ReadOutbox(*cursor, upto, room, &rows);
        if (!st.ok()) {
          LOG_ERROR("uplink", "reading the outbox: %s", st.ToString().c_str());
          return;
        }
        if (rows.empty()) {
          if (cursor == &backlog_after) backlog_after = backlog_upto;
          return;
        }
      }
      if (!HandOver(&rows, backlog, cursor)) return;
    }
  }

  // Hands `rows` over up to the first loss record that may still grow: that
  // one is sealed first (a commit), then read again (DESIGN 6.3: one record
  // per contiguous dropped range, and the receiver gets its final version).
  // Returns false when it stopped for a seal.
  bool HandOver(std::vector<weir::OutboxRow>* rows, bool backlog, int64_t* cursor) {
    size_t cut = rows->size();
    for (size_t i = 0; i < rows->size(); ++i) {
      if ((*rows)[i].kind == OutboxKind::kLoss && (*rows)[i].pos > loss_sealed) {
        cut = i;
        break;
      }
    }
    std::vector<UplinkRow> out;
    out.reserve(cut);
    for (size_t i = 0; i < cut; ++i) {
      weir::OutboxRow& r = (*rows)[i];
      handed_rev[r.pos] = r.rev;
      UplinkRow u;
      u.position = r.pos;
      u.topic = TopicFor(r);
      u.id = r.id;
      u.payload = std::move(r.payload);
      out.push_back(std::move(u));
      *cursor = r.pos;
    }
    if (!out.empty()) uplink->Enqueue(std::move(out), backlog);
    if (cut == rows->size()) return true;
    seal_requested = (*rows)[cut].pos;
    pending.seal_loss_upto = seal_requested;
    SubmitCommit(/*force=*/true);
    return false;
  }

  void OnAckWake() {
    std::vector<int64_t> positions;
    {
      std::lock_guard<std::mutex> lock(cross_mu);
      positions.swap(acked_positions);
    }
    if (!positions.empty()) {
      std::vector<OutboxKey> keys;
      keys.reserve(positions.size());
      for (int64_t pos : positions) {
        auto it = handed_rev.find(pos);
        if (it == handed_rev.end()) continue;  // reported twice
        keys.push_back({pos, it->second});
        handed_rev.erase(it);
      }
      if (!keys.empty()) {
        store->DeleteDelivered(std::move(keys), [](const DeleteResult& r) {
          if (!r.status.ok())
            LOG_ERROR("storage", "deleting delivered results: %s (they will be sent again)",
                      r.status.ToString().c_str());
        });
      }
    }
    PumpUplink();
  }

  void Reload() {
    LOG_INFO(kLog, "SIGHUP: reloading %s", options.config_path.c_str());
    std::vector<ConfigError> errors;
    auto parsed = LoadConfigFile(options.config_path, &errors, /*for_run=*/true);
    if (!parsed) {
      // The same lines `weir validate` prints, its count line included.
      LOG_ERROR(kLog, "reload rejected; the running config stays in force:\n%s%s: %zu error%s",
                FormatConfigErrors(options.config_path, errors).c_str(),
                options.config_path.c_str(), errors.size(), errors.size() == 1 ? "" : "s");
      metrics.CountReload(false);
      return;
    }
    // The database and the ingest queue are opened once: those settings wait
    // for a restart. The commit interval applies at once.
    const StorageConfig& s = config.storage;
    const StorageConfig& n = parsed->storage;
    if (n.path != s.path || n.max_bytes != s.max_bytes || n.sync != s.sync ||
        n.on_full != s.on_full)
      LOG_WARN(kLog,
               "storage.path, max_bytes, sync and on_full change only on restart; keeping "
               "the running ones");
    if (parsed->ingest.durability != config.ingest.durability ||
        parsed->ingest.queue_capacity != config.ingest.queue_capacity)
      LOG_WARN(kLog, "ingest settings change only on restart; keeping the running ones");
    int64_t commit_interval = n.commit_interval_ms;
    parsed->storage = config.storage;
    parsed->storage.commit_interval_ms = commit_interval;
    parsed->ingest = config.ingest;
    // Messages already taken from the queue were processed under the old
    // config; the rest go through the new one (DESIGN 6.5). The queue itself
    // is not touched.
    Status st = CommitAndWait();
    if (st.ok()) {
      auto stored = reader->Pipelines();
      st = stored.ok() ? ApplyConfig(std::move(*parsed), stored.value()) : stored.status();
    }
    if (!st.ok()) {
      LOG_ERROR(kLog, "reload failed; the running config stays in force: %s",
                st.ToString().c_str());
      metrics.CountReload(false);
      return;
    }
    int64_t interval = std::max<int64_t>(1, config.storage.commit_interval_ms);
    if (commit_timer && !stopping) commit_timer->Start(interval, interval);
    metrics.CountReload(true);
    LOG_INFO(kLog, "reload applied");
    PumpUplink();
    if (queue && queue->size() > 0) ingest_wake->Send();
  }

  void Shutdown() {
    if (stopping) return;
    stopping = true;
    LOG_INFO(kLog, "shutting down");
    Notify("STOPPING=1");
    StopSource();  // no more callbacks: nothing is acknowledged after this
    AwaitRetiring();
    metrics.Stop();
    tick_timer->Stop();
    commit_timer->Stop();
    retry_timer->Stop();
    ingest_poll->Stop();
    // Everything already taken from the broker is processed and committed.
    while (!held.empty()) {
      ProcessOne(std::move(held.front()));
      held.pop_front();
    }
    Status st = CommitAndWait();
    if (!st.ok()) {
      LOG_ERROR(kLog, "final commit failed: %s", st.ToString().c_str());
      exit_code = 1;
    }
    if (uplink) {
      PumpUplink();
      uplink->WaitIdle(2000);
      OnAckWake();
      uplink->Stop();
    }
    Status fs = store->Flush();
    if (!fs.ok()) LOG_ERROR(kLog, "storage flush: %s", fs.ToString().c_str());
    store->Close();
    ingest_wake->Close();
    commit_wake->Close();
    ack_wake->Close();
    tick_timer->Close();
    commit_timer->Close();
    retry_timer->Close();
    ingest_poll->Close();
    for (auto& s : signals) s->Close();
    LOG_INFO(kLog, "stopped");
  }

  int Run() {
    if (!LoadConfig(options.config_path, &config)) return 2;
    uv_loop_init(&loop);
    queue = std::make_unique<BoundedQueue<Message>>(
        static_cast<size_t>(config.ingest.queue_capacity), [this] { ingest_wake->Send(); });
    ingest_wake = std::make_unique<UvAsync>(&loop, [this] { OnIngestWake(); });
    commit_wake = std::make_unique<UvAsync>(&loop, [this] { OnCommitWake(); });
    ack_wake = std::make_unique<UvAsync>(&loop, [this] { OnAckWake(); });
    tick_timer = std::make_unique<UvTimer>(&loop, [this] { OnTick(); });
    commit_timer = std::make_unique<UvTimer>(&loop, [this] {
      SubmitCommit(false);
    });
    retry_timer = std::make_unique<UvTimer>(&loop, [this] { SubmitCommit(false); });
    ingest_poll = std::make_unique<UvTimer>(&loop, [this] { OnIngestWake(); });
    signals.push_back(std::make_unique<UvSignal>(&loop, SIGINT, [this] { Shutdown(); }));
    signals.push_back(std::make_unique<UvSignal>(&loop, SIGTERM, [this] { Shutdown(); }));
    signals.push_back(std::make_unique<UvSignal>(&loop, SIGHUP, [this] { Reload(); }));

    Status st = OpenStore();
    if (st.ok()) st = Recover();
    if (st.ok()) st = StartUplink();
    if (st.ok()) st = StartSource();
    if (!st.ok()) {
      LOG_ERROR(kLog, "%s", st.ToString().c_str());
      StopSource();
      if (uplink) uplink->Stop();
      if (store) store->Close();
      stopping = true;
      ingest_wake->Close();
      commit_wake->Close();
      ack_wake->Close();
      tick_timer->Close();
      commit_timer->Close();
      retry_timer->Close();
      ingest_poll->Close();
      for (auto& s : signals) s->Close();
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
      return 1;
    }
    tick_timer->Start(kTickMs, kTickMs);
    int64_t interval = std::max<int64_t>(1, config.storage.commit_interval_ms);
    commit_timer->Start(interval, interval);
    PumpUplink();
    LOG_INFO(kLog, "weir %s running: gateway %s, %zu pipeline(s), storage %s", WEIR_VERSION,
             config.gateway.c_str(), config.pipelines.size(), config.storage.path.c_str());
    Notify("READY=1");
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return exit_code;
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Daemon::~Daemon() = default;
int Daemon::Run() { return impl_->Run(); }

}  // namespace weir
