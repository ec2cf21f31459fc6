// `weir replay CONFIG --input FILE [--output FILE] [--drain]` (DESIGN 3, 8):
// a deterministic offline run of the pipelines over recorded input. No
// broker and no wall clock: processing time is each line's `t`.
//
// The input streams through one reused line buffer, so memory does not grow
// with its length. A line that cannot be used is reported on stderr with its
// number and skipped; the run goes on.
#include <simdjson.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "config/config.h"
#include "core/message.h"
#include "core/result.h"
#include "runtime/commands.h"
#include "storage/store.h"
#include "runtime/processor.h"

namespace weir {
namespace {

namespace od = simdjson::ondemand;

// Errors beyond this many are counted but not printed.
constexpr int64_t kMaxReportedErrors = 200;

// Writes results as JSON Lines. Write errors are remembered, not thrown.
class ResultWriter : public EngineOutput {
 public:
  explicit ResultWriter(std::FILE* f) : file_(f) {}
  void OnResult(int, const ResultRecord& result) override {
    line_.clear();
    AppendResultJson(result, &line_);
    line_.push_back('\n');
    if (std::fwrite(line_.data(), 1, line_.size(), file_) != line_.size()) failed_ = true;
    ++results_;
  }
  bool failed() const { return failed_; }
  int64_t results() const { return results_; }

 private:
  std::FILE* file_;
  std::string line_;
  bool failed_ = false;
  int64_t results_ = 0;
};

// `--db`: everything a replay produces also goes into a weir database, as
// `weir run` would have written it (results in the outbox, operator and dedup
// state, the messages as journal rows, the pipelines and config), committed
// every kChunkLines lines, so `weir status` can inspect it and `weir run` can
// carry on from it.
class ReplayStore : public EngineOutput {
 public:
  static constexpr int64_t kChunkLines = 4096;

  ReplayStore(EngineOutput* results, std::unique_ptr<Store> store)
      : results_(results), store_(std::move(store)) {}

  void OnResult(int pipeline, const ResultRecord& r) override {
    results_->OnResult(pipeline, r);
    batch_.outbox.push_back(ResultOutboxEntry(r, now_ms_));
  }

  void Begin(const Config& config) {
    for (const auto& p : config.pipelines)
      batch_.pipelines.push_back({p.name, 0, p.fingerprint, p.definition_json, 0});
    batch_.config = ConfigRecord{config.text, 0};
  }
  void Journal(const Message& m) {
    now_ms_ = m.arrival_ms;
    batch_.journal.push_back(m);
    batch_.journal_processed = static_cast<int64_t>(batch_.journal.size());
  }
  void set_now(int64_t now_ms) { now_ms_ = now_ms; }

  // Commits what the lines so far produced and waits for it.
  Status Commit(MessageProcessor* p) {
    BatchStateWriter writer(&batch_);
    p->engine().CollectChanges(&writer);
    p->dedup().CollectChanges([this](std::string_view device, std::string_view blob) {
      batch_.dedup.emplace_back(std::string(device), std::string(blob));
    });
    Status result;
    store_->Commit(std::move(batch_), [&result](CommitResult&& r) { result = r.status; });
    batch_ = CommitBatch();
    RETURN_IF_ERROR(store_->Flush());
    return result;
  }
  void Close() { store_->Close(); }

 private:
  EngineOutput* results_;
  std::unique_ptr<Store> store_;
  CommitBatch batch_;
  int64_t now_ms_ = 0;
};

int Base64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// Standard or URL-safe base64, padding optional.
bool DecodeBase64(std::string_view in, std::string* out) {
  out->clear();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    int v = Base64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return bits < 6;  // a lone trailing symbol carries no full byte
}

// One parsed input line. topic and payload are views into the line buffer,
// the parser or `decoded` (payload_b64), valid until the next line is parsed:
// the line is processed in place, not copied into a Message.
struct Line {
  bool has_t = false;
  int64_t t = 0;
  bool has_topic = false;
  bool has_payload = false;
  std::string_view topic;
  std::string_view payload;
  std::string decoded;  // payload_b64, decoded
};

// Parses the `len` bytes at `data` (with `capacity` bytes allocated, at least
// simdjson's padding beyond `len`) into *line. On failure returns false with
// *error set.
bool ParseLine(od::parser* parser, const char* data, size_t len, size_t capacity, Line* line,
               std::string* error) {
  line->has_t = line->has_topic = line->has_payload = false;
  line->topic = line->payload = {};
  od::document doc;
  simdjson::padded_string_view view(data, len, capacity);
  auto fail = [&](const std::string& what) {
    *error = what;
    return false;
  };
  if (auto err = parser->iterate(view).get(doc)) {
    return fail(std::string("not JSON: ") + simdjson::error_message(err));
  }
  od::object obj;
  if (doc.get_object().get(obj)) return fail("not a JSON object");
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return fail("not JSON: bad key");
    od::value v;
    if (field.value().get(v)) return fail("not JSON: bad value");
    if (key == "t") {
      if (v.get_int64().get(line->t)) return fail("\"t\" must be an integer (ms)");
      line->has_t = true;
    } else if (key == "topic") {
      std::string_view s;
      if (v.get_string().get(s)) return fail("\"topic\" must be a string");
      line->topic = s;
      line->has_topic = true;
    } else if (key == "payload" || key == "payload_b64") {
      if (line->has_payload) return fail("give one of \"payload\" and \"payload_b64\"");
      line->has_payload = true;
      od::json_type type;
      if (v.type().get(type)) return fail("not JSON: bad payload");
      std::string_view s;
      if (key == "payload_b64") {
        if (type != od::json_type::string || v.get_string().get(s)) {
          return fail("\"payload_b64\" must be a base64 string");
        }
        if (!DecodeBase64(s, &line->decoded)) return fail("\"payload_b64\" is not base64");
        line->payload = line->decoded;
        continue;
      }
      simdjson::error_code err = simdjson::SUCCESS;
      switch (type) {
        case od::json_type::string: err = v.get_string().get(s); break;  // raw text, as is
        case od::json_type::object: {
          od::object o;
          err = v.get_object().get(o);
          if (!err) err = o.raw_json().get(s);
          break;
        }
        case od::json_type::array: {
          od::array a;
          err = v.get_array().get(a);
          if (!err) err = a.raw_json().get(s);
          break;
        }
        default: {  // number, true, false, null: the device sent that text
          s = v.raw_json_token();
          while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                                s.back() == '\n')) {
            s.remove_suffix(1);
          }
        }
      }
      if (err) return fail(std::string("not JSON: bad payload: ") + simdjson::error_message(err));
      line->payload = s;
    }
    // Other keys are ignored so that recordings may carry notes.
  }
  // current_location() succeeds only while content remains after the object.
  const char* rest = nullptr;
  if (!doc.current_location().get(rest)) return fail("not JSON: trailing content after the object");
  if (!line->has_t) return fail("missing \"t\"");
  if (line->has_payload && !line->has_topic) return fail("a payload needs a \"topic\"");
  return true;
}

bool ReadFile(const std::string& path, std::string* text) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return false;
  *text = ss.str();
  return true;
}

}  // namespace

int RunReplay(const ReplayOptions& options) {
  std::string config_text;
  if (!ReadFile(options.config_path, &config_text)) {
    std::fprintf(stderr, "weir replay: cannot read config %s: %s\n", options.config_path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::vector<ConfigError> config_errors;
  std::optional<Config> config = ParseConfig(config_text, &config_errors);
  if (!config) {
    std::fprintf(stderr, "%s", FormatConfigErrors(options.config_path, config_errors).c_str());
    return 2;
  }
  Result<std::unique_ptr<MessageProcessor>> processor = MessageProcessor::Create(*config);
  if (!processor.ok()) {
    std::fprintf(stderr, "weir replay: %s\n", processor.status().ToString().c_str());
    return processor.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }

  std::FILE* in = std::fopen(options.input_path.c_str(), "rb");
  if (in == nullptr) {
    std::fprintf(stderr, "weir replay: cannot open input %s: %s\n", options.input_path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::FILE* out = stdout;
  if (!options.output_path.empty()) {
    out = std::fopen(options.output_path.c_str(), "wb");
    if (out == nullptr) {
      std::fprintf(stderr, "weir replay: cannot create output %s: %s\n",
                   options.output_path.c_str(), std::strerror(errno));
      std::fclose(in);
      return 1;
    }
  }

  ResultWriter file_writer(out);
  EngineOutput* sink = &file_writer;
  std::unique_ptr<ReplayStore> db;
  if (!options.db_path.empty()) {
    if (std::FILE* existing = std::fopen(options.db_path.c_str(), "rb")) {
      std::fclose(existing);
      std::fprintf(stderr, "weir replay: %s exists; --db writes a new database (remove it or "
                   "name another file)\n", options.db_path.c_str());
      std::fclose(in);
      if (out != stdout) std::fclose(out);
      return 1;
    }
    StoreOptions so = StoreOptionsFromConfig(*config);
    so.path = options.db_path;
    so.now_ms = [] { return int64_t{0}; };  // no wall clock in a replay
    auto store = Store::Open(so);
    if (!store.ok()) {
      std::fprintf(stderr, "weir replay: %s\n", store.status().ToString().c_str());
      std::fclose(in);
      if (out != stdout) std::fclose(out);
      return 1;
    }
    db = std::make_unique<ReplayStore>(&file_writer, std::move(store).value());
    db->Begin(*config);
    sink = db.get();
  }
  ResultWriter& writer = file_writer;
  MessageProcessor& p = **processor;
  Status db_status;
  auto commit = [&] {
    if (db && db_status.ok()) db_status = db->Commit(&p);
  };
  od::parser parser;
  Line line;
  Message journaled;  // --db: the line as the journal stores it
  std::string error;
  char* raw = nullptr;
  size_t raw_cap = 0;
  int64_t line_no = 0, errors = 0, reported = 0, last_t = 0;
  bool have_t = false;
  auto report = [&](const std::string& what) {
    ++errors;
    if (reported < kMaxReportedErrors) {
      std::fprintf(stderr, "%s:%lld: %s\n", options.input_path.c_str(),
                   static_cast<long long>(line_no), what.c_str());
      if (++reported == kMaxReportedErrors) {
        std::fprintf(stderr, "weir replay: further errors are counted, not shown\n");
      }
    }
  };

  ssize_t n;
  while ((n = getline(&raw, &raw_cap, in)) >= 0) {
    ++line_no;
    size_t len = static_cast<size_t>(n);
    while (len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r')) --len;
    size_t first = 0;
    while (first < len && (raw[first] == ' ' || raw[first] == '\t')) ++first;
    if (first == len) continue;  // blank line
    // simdjson reads up to SIMDJSON_PADDING bytes past the end: pad getline's
    // own buffer (getline keeps using a buffer we grew) instead of copying.
    if (raw_cap < len + simdjson::SIMDJSON_PADDING) {
      size_t cap = 2 * (len + simdjson::SIMDJSON_PADDING);
      char* grown = static_cast<char*>(std::realloc(raw, cap));
      if (grown == nullptr) {
        std::fprintf(stderr, "weir replay: out of memory at line %lld\n",
                     static_cast<long long>(line_no));
        std::free(raw);
        std::fclose(in);
        if (out != stdout) std::fclose(out);
        return 1;
      }
      raw = grown;
      raw_cap = cap;
    }
    std::memset(raw + len, 0, simdjson::SIMDJSON_PADDING);
    if (!ParseLine(&parser, raw, len, raw_cap, &line, &error)) {
      report(error);
      continue;
    }
    if (have_t && line.t < last_t) {
      report("t " + std::to_string(line.t) + " is before the previous line's t " +
             std::to_string(last_t) + " (t must never decrease); line skipped");
      continue;
    }
    have_t = true;
    last_t = line.t;
    if (db && line_no % ReplayStore::kChunkLines == 0) commit();
    if (!line.has_topic) {
      if (db) db->set_now(line.t);
      p.AdvanceTo(line.t, sink);
      continue;
    }
    if (db) {
      journaled.arrival_ms = line.t;
      journaled.topic.assign(line.topic.data(), line.topic.size());
      journaled.payload.assign(line.payload.data(), line.payload.size());
      db->Journal(journaled);
    }
    const MessageOutcome& o = p.Process(line.topic, line.payload, line.t, sink);
    if (o.rejected > 0) {
      std::string what = "rejected ";
      what += o.rejected == 1 ? "payload" : std::to_string(o.rejected) + " payload parts";
      what += " (";
      what += RejectReasonName(o.first_reject);
      if (!o.first_reject_detail.empty()) {
        what += ": ";
        what.append(o.first_reject_detail.data(), o.first_reject_detail.size());
      }
      what += o.rejected > 1 ? ", first shown)" : ")";
      report(what);
    }
  }
  bool read_failed = std::ferror(in) != 0;
  std::free(raw);
  std::fclose(in);
  if (read_failed) {
    std::fprintf(stderr, "weir replay: error reading %s after line %lld\n",
                 options.input_path.c_str(), static_cast<long long>(line_no));
    if (out != stdout) std::fclose(out);
    return 1;
  }
  if (options.drain) p.Drain(sink);
  if (db) {
    commit();
    db->Close();
    if (!db_status.ok()) {
      std::fprintf(stderr, "weir replay: writing %s: %s\n", options.db_path.c_str(),
                   db_status.ToString().c_str());
      if (out != stdout) std::fclose(out);
      return 1;
    }
  }

  bool write_failed = writer.failed() || std::fflush(out) != 0;
  if (out != stdout && std::fclose(out) != 0) write_failed = true;
  if (write_failed) {
    std::fprintf(stderr, "weir replay: cannot write results: %s\n", std::strerror(errno));
    return 1;
  }

  IngestCounters c = p.counters();
  std::string summary = "weir replay: " + std::to_string(line_no) + " lines, " +
                        std::to_string(c.messages) + " messages, " +
                        std::to_string(c.readings) + " readings, " +
                        std::to_string(writer.results()) + " results";
  if (c.duplicates) summary += ", " + std::to_string(c.duplicates) + " duplicates";
  if (c.dedup_unchecked) {
    summary += ", " + std::to_string(c.dedup_unchecked) + " accepted without dedup check";
  }
  for (int r = 0; r < kRejectReasonCount; ++r) {
    if (c.rejected[r]) {
      summary += ", " + std::to_string(c.rejected[r]) + " rejected (" +
                 RejectReasonName(static_cast<RejectReason>(r)) + ")";
    }
  }
  if (c.status_ignored) summary += ", " + std::to_string(c.status_ignored) + " status ignored";
  if (errors) summary += ", " + std::to_string(errors) + " line errors";
  std::fprintf(stderr, "%s\n", summary.c_str());
  return 0;
}

}  // namespace weir
