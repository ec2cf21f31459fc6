#include "ingest/decoder.h"

#include <flatbuffers/flatbuffers.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/text.h"
#include "schemas/reading_generated.h"

namespace weir {
namespace {

namespace dom = simdjson::dom;

constexpr double kInt64Limit = 9223372036854775808.0;  // 2^63

// Truncates toward zero; false when the result does not fit int64.
bool TruncToInt64(double v, int64_t* out) {
  if (!std::isfinite(v)) return false;
  double t = std::trunc(v);
  if (t >= kInt64Limit || t < -kInt64Limit) return false;
  *out = static_cast<int64_t>(t);
  return true;
}

// A JSON number in `unit` to int64 ms, truncating toward zero (DESIGN 4).
bool NumberToMs(dom::element v, TimestampUnit unit, int64_t* ms) {
  switch (v.type()) {
    case dom::element_type::INT64: {
      int64_t i = v.get_int64().value_unsafe();
      switch (unit) {
        case TimestampUnit::kMs: *ms = i; return true;
        case TimestampUnit::kUs: *ms = i / 1000; return true;  // C++ division truncates
        case TimestampUnit::kS: return !__builtin_mul_overflow(i, int64_t{1000}, ms);
        case TimestampUnit::kIso8601: return false;
      }
      return false;
    }
    case dom::element_type::UINT64: {  // above INT64_MAX
      uint64_t u = v.get_uint64().value_unsafe();
      if (unit != TimestampUnit::kUs) return false;
      *ms = static_cast<int64_t>(u / 1000);
      return true;
    }
    case dom::element_type::DOUBLE: {
      double d = v.get_double().value_unsafe();
      switch (unit) {
        case TimestampUnit::kMs: return TruncToInt64(d, ms);
        case TimestampUnit::kS: return TruncToInt64(d * 1000.0, ms);
        case TimestampUnit::kUs: return TruncToInt64(d / 1000.0, ms);
        case TimestampUnit::kIso8601: return false;
      }
      return false;
    }
    default: return false;
  }
}

// An integer from a FlatBuffers sample in `unit` to ms (iso8601: taken as ms).
bool IntegerToMs(int64_t i, TimestampUnit unit, int64_t* ms) {
  switch (unit) {
    case TimestampUnit::kMs:
    case TimestampUnit::kIso8601: *ms = i; return true;
    case TimestampUnit::kUs: *ms = i / 1000; return true;
    case TimestampUnit::kS: return !__builtin_mul_overflow(i, int64_t{1000}, ms);
  }
  return false;
}

bool IsNumber(dom::element_type t) {
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
         t == dom::element_type::DOUBLE;
}

double NumberValue(dom::element v) {
  switch (v.type()) {
    case dom::element_type::INT64: return static_cast<double>(v.get_int64().value_unsafe());
    case dom::element_type::UINT64: return static_cast<double>(v.get_uint64().value_unsafe());
    default: return v.get_double().value_unsafe();
  }
}

// Key text of a scalar (DESIGN 4 `key`) written into `buf`; strings are
// views into the parser's storage. False for null, objects and arrays.
// Integers print exactly; other numbers in shortest round-trip form
// without ".0".
bool KeyText(dom::element v, std::array<char, 32>* buf, std::string_view* out) {
  switch (v.type()) {
    case dom::element_type::STRING: *out = v.get_string().value_unsafe(); return true;
    case dom::element_type::BOOL:
      *out = v.get_bool().value_unsafe() ? "true" : "false";
      return true;
    case dom::element_type::INT64: {
      auto r = std::to_chars(buf->data(), buf->data() + buf->size(), v.get_int64().value_unsafe());
      *out = std::string_view(buf->data(), r.ptr - buf->data());
      return true;
    }
    case dom::element_type::UINT64: {
      auto r = std::to_chars(buf->data(), buf->data() + buf->size(), v.get_uint64().value_unsafe());
      *out = std::string_view(buf->data(), r.ptr - buf->data());
      return true;
    }
    case dom::element_type::DOUBLE: {
      // AppendKeyNumber writes to a std::string; a thread-local scratch keeps
      // the capacity, so this does not allocate after the first use.
      thread_local std::string scratch;
      scratch.clear();
      AppendKeyNumber(v.get_double().value_unsafe(), &scratch);
      size_t n = std::min(scratch.size(), buf->size());
      std::copy_n(scratch.data(), n, buf->data());
      *out = std::string_view(buf->data(), n);
      return true;
    }
    default: return false;
  }
}

// Looks up a JSON pointer; NO_SUCH_FIELD, INDEX_OUT_OF_BOUNDS and a wrong
// container type all mean "absent".
bool Lookup(dom::element obj, const std::string& pointer, dom::element* out) {
  // One level without escapes ("/temp"), the usual case: at_pointer would
  // parse the pointer and then look the key up with at_key; go there directly.
  std::string_view p(pointer);
  bool one_level = !p.empty() && p[0] == '/';
  for (size_t i = 1; one_level && i < p.size(); ++i) one_level = p[i] != '/' && p[i] != '~';
  if (one_level && obj.type() == dom::element_type::OBJECT) {
    auto r = obj.get_object().value_unsafe().at_key(p.substr(1));
    if (r.error() != simdjson::SUCCESS) return false;
    *out = r.value_unsafe();
    return true;
  }
  auto r = obj.at_pointer(pointer);
  if (r.error() != simdjson::SUCCESS) return false;
  *out = r.value_unsafe();
  return true;
}

bool ParseDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace

bool ParseIso8601Ms(std::string_view s, int64_t* ms) {
  int year, month, day, hour, minute, second;
  if (!ParseDigits(s, 0, 4, &year) || s.size() < 10 || s[4] != '-' ||
      !ParseDigits(s, 5, 2, &month) || s[7] != '-' || !ParseDigits(s, 8, 2, &day)) {
    return false;
  }
  if (s.size() < 19 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseDigits(s, 11, 2, &hour) || s[13] != ':' || !ParseDigits(s, 14, 2, &minute) ||
      s[16] != ':' || !ParseDigits(s, 17, 2, &second)) {
    return false;
  }
  static constexpr int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDaysIn[month - 1] || hour > 23 ||
      minute > 59 || second > 60) {
    return false;
  }
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap) return false;
  size_t pos = 19;
  int frac_ms = 0;
  bool sub_ms = false;  // nonzero digits beyond milliseconds
  if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
    ++pos;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      size_t k = pos - start;
      if (k < 3) {
        frac_ms = frac_ms * 10 + (s[pos] - '0');
      } else if (s[pos] != '0') {
        sub_ms = true;
      }
      ++pos;
    }
    if (pos == start) return false;
    for (size_t k = pos - start; k < 3; ++k) frac_ms *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size()) {
    char z = s[pos];
    if ((z == 'Z' || z == 'z') && pos + 1 == s.size()) {
      ++pos;
    } else if (z == '+' || z == '-') {
      int oh, om;
      if (!ParseDigits(s, pos + 1, 2, &oh)) return false;
      size_t mpos = pos + 3;
      if (mpos < s.size() && s[mpos] == ':') ++mpos;
      if (!ParseDigits(s, mpos, 2, &om) || mpos + 2 != s.size() || oh > 23 || om > 59) {
        return false;
      }
      offset_s = (oh * 3600 + om * 60) * (z == '+' ? 1 : -1);
      pos = s.size();
    } else {
      return false;
    }
  }
  if (pos != s.size()) return false;
  int64_t secs = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                 offset_s;
  int64_t total = secs * 1000 + frac_ms;
  // The exact instant is total + (sub-ms fraction); truncating toward zero
  // moves a negative instant up by one ms.
  if (sub_ms && total < 0) total += 1;
  *ms = total;
  return true;
}

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kBadJson: return "bad_json";
    case RejectReason::kNotObject: return "not_object";
    case RejectReason::kBadFlatbuffer: return "bad_flatbuffer";
    case RejectReason::kMissingTimestamp: return "missing_timestamp";
    case RejectReason::kNonNumericField: return "non_numeric_field";
    case RejectReason::kOversize: return "oversize";
    case RejectReason::kTooManyDevices: return "too_many_devices";
    case RejectReason::kNoDevice: return "no_device";
    case RejectReason::kUnmatchedTopic: return "unmatched_topic";
  }
  return "unknown";
}

// The channel of a FlatBuffers batch that feeds `field` (see Impl::channel_names):
// the unescaped token of a one-level pointer, else the field's name.
static std::string ChannelName(const NamedPath& field) {
  const std::string& p = field.path;
  if (p.size() < 2 || p[0] != '/' || p.find('/', 1) != std::string::npos) return field.name;
  std::string token;
  for (size_t i = 1; i < p.size(); ++i) {
    if (p[i] == '~' && i + 1 < p.size() && (p[i + 1] == '0' || p[i + 1] == '1')) {
      token += p[++i] == '0' ? '~' : '/';
    } else {
      token += p[i];
    }
  }
  return token;
}

// How one template's captures map onto the reading.
struct CapturePlan {
  std::vector<int> attribute;  // per capture: attribute index, or -1
  int device_capture = -1;     // capture holding the device id, or -1
};

struct MessageDecoder::Impl {
  // Per-reading storage for number text (attributes, then the device).
  using NumberText = std::array<std::array<char, 32>, kMaxAttributes + 1>;

  TimestampConfig timestamp;
  std::string seq_pointer;
  std::string sent_at_pointer;
  std::string device_pointer;  // empty when the device is a capture
  struct FieldPath {
    int index;
    std::string pointer;
  };
  std::vector<FieldPath> fields;
  std::vector<FieldPath> tags;  // index = attribute index
  // Per field, the FlatBuffers channel name that feeds it: the one token of its JSON
  // pointer ("temp": "/t" reads channel "t", as a JSON reading's "t" key), or the field's
  // own name when the pointer has more levels.
  std::vector<std::string> channel_names;
  std::vector<CapturePlan> data_plans;
  std::vector<PayloadFormat> formats;
  CapturePlan status_plan;
  std::string online, offline;
  int64_t max_payload = 0;

  dom::parser parser;
  std::string topic_buf;
  std::string payload_buf;  // payload copy with simdjson padding
  std::vector<std::string_view> captures;
  std::vector<Reading> readings;
  std::deque<NumberText> texts;  // deque: growth never moves earlier entries
  size_t count = 0;
  std::string detail;
  DecodedMessage result;

  // FlatBuffers scratch.
  std::vector<int> channel_field;
  std::vector<std::pair<int64_t, uint32_t>> order;  // (group key, sample index)
  std::vector<std::pair<uint32_t, uint32_t>> groups;  // (first sample index, position in order)

  // Reserves the next reading slot, cleared. Only the masks and scalars are
  // reset: field and attribute slots mean something only where their mask
  // bit is set, and zeroing the ~1 KB arrays cost more than the rest of a
  // small reading's decode.
  Reading* NextReading(NumberText** text) {
    if (count == readings.size()) readings.emplace_back();
    if (count == texts.size()) texts.emplace_back();
    Reading* r = &readings[count];
    r->Clear();
    *text = &texts[count];
    return r;
  }

  // Counts a rejection; the first one of a message keeps a detail for logs:
  // "<where>: <what> <subject> <rest>" (parts may be empty).
  void Reject(DecodeCounters* counters, RejectReason reason, std::string_view where,
              std::string_view what = {}, std::string_view subject = {},
              std::string_view rest = {}) {
    ++counters->rejected[static_cast<int>(reason)];
    if (result.rejected++ == 0) {
      result.first_reject = reason;
      detail.assign(where.data(), where.size());
      if (!where.empty() && !what.empty()) detail.append(": ");
      detail.append(what.data(), what.size());
      detail.append(subject.data(), subject.size());
      detail.append(rest.data(), rest.size());
    }
  }

  void ApplyCaptures(const CapturePlan& plan, Reading* r) {
    for (size_t c = 0; c < plan.attribute.size(); ++c) {
      if (plan.attribute[c] >= 0) r->SetAttribute(plan.attribute[c], captures[c]);
    }
  }

  // Decodes one JSON reading object into the next slot. Returns false (and
  // rejects) when the element is not a valid reading.
  bool DecodeJsonReading(dom::element el, const CapturePlan& plan, int64_t arrival_ms,
                         DecodeCounters* counters, std::string_view where, size_t size,
                         int32_t element) {
    if (el.type() != dom::element_type::OBJECT) {
      Reject(counters, RejectReason::kNotObject, where, "not an object");
      return false;
    }
    NumberText* text;
    Reading* r = NextReading(&text);
    r->json_payload = std::string_view(payload_buf.data(), size);
    r->json_element = element;
    dom::element v;
    if (timestamp.received) {
      r->ts_ms = arrival_ms;
    } else {
      bool ok = Lookup(el, timestamp.path, &v);
      if (ok) {
        if (timestamp.unit == TimestampUnit::kIso8601) {
          ok = v.type() == dom::element_type::STRING &&
               ParseIso8601Ms(v.get_string().value_unsafe(), &r->ts_ms);
        } else {
          ok = NumberToMs(v, timestamp.unit, &r->ts_ms);
        }
      }
      if (!ok) {
        Reject(counters, RejectReason::kMissingTimestamp, where, "timestamp ", timestamp.path,
               timestamp.unit == TimestampUnit::kIso8601 ? " is missing or not an ISO 8601 string"
                                                         : " is missing or not a number");
        return false;
      }
    }
    for (const FieldPath& f : fields) {
      if (!Lookup(el, f.pointer, &v)) continue;
      dom::element_type t = v.type();
      if (t == dom::element_type::NULL_VALUE) continue;
      if (!IsNumber(t)) {
        Reject(counters, RejectReason::kNonNumericField, where, "field ", f.pointer,
               " is not a number");
        return false;
      }
      r->SetField(f.index, NumberValue(v));
    }
    if (!seq_pointer.empty() && Lookup(el, seq_pointer, &v) &&
        v.type() == dom::element_type::INT64) {
      r->has_seq = true;
      r->seq = v.get_int64().value_unsafe();
    }
    if (!sent_at_pointer.empty() && Lookup(el, sent_at_pointer, &v)) {
      if (v.type() == dom::element_type::STRING) {
        r->has_sent_at = ParseIso8601Ms(v.get_string().value_unsafe(), &r->sent_at_ms);
      } else {
        TimestampUnit unit = timestamp.received || timestamp.unit == TimestampUnit::kIso8601
                                 ? TimestampUnit::kMs
                                 : timestamp.unit;
        r->has_sent_at = NumberToMs(v, unit, &r->sent_at_ms);
      }
    }
    for (const FieldPath& t : tags) {
      std::string_view s;
      if (Lookup(el, t.pointer, &v) && KeyText(v, &(*text)[t.index], &s)) {
        r->SetAttribute(t.index, s);
      }
    }
    // Captures win over tags of the same name: the topic is the broker's
    // (ACL-checked) word, the payload only the device's.
    ApplyCaptures(plan, r);
    if (plan.device_capture >= 0) {
      r->device = captures[plan.device_capture];
    } else if (!device_pointer.empty() && Lookup(el, device_pointer, &v)) {
      std::string_view s;
      if (KeyText(v, &(*text)[kMaxAttributes], &s)) r->device = s;
    }
    if (r->device.empty()) {
      Reject(counters, RejectReason::kNoDevice, where,
             device_pointer.empty() ? "the device capture is empty" : "no device id at ",
             device_pointer);
      return false;
    }
    ++count;
    return true;
  }

  void DecodeJson(const CapturePlan& plan, size_t size, int64_t arrival_ms,
                  DecodeCounters* counters) {
    dom::element root;
    auto err = parser.parse(payload_buf.data(), size, false).get(root);
    if (err) {
      Reject(counters, RejectReason::kBadJson, "", simdjson::error_message(err));
      return;
    }
    if (root.type() == dom::element_type::ARRAY) {
      size_t i = 0;
      char where[48] = "array element ";
      const size_t prefix = 14;
      dom::array elements = root.get_array().value_unsafe();
      for (dom::element el : elements) {
        auto r = std::to_chars(where + prefix, where + sizeof where, i);
        DecodeJsonReading(el, plan, arrival_ms, counters, std::string_view(where, r.ptr - where),
                          size, static_cast<int32_t>(i));
        ++i;
      }
    } else {
      DecodeJsonReading(root, plan, arrival_ms, counters, "", size, -1);
    }
  }

  void DecodeFlatbuffer(const CapturePlan& plan, size_t size, int64_t arrival_ms,
                        DecodeCounters* counters) {
    const auto* data = reinterpret_cast<const uint8_t*>(payload_buf.data());
    flatbuffers::Verifier verifier(data, size);
    if (!fb::VerifyBatchBuffer(verifier)) {
      Reject(counters, RejectReason::kBadFlatbuffer, "", "FlatBuffers verification failed");
      return;
    }
    const fb::Batch* batch = fb::GetBatch(data);
    std::string_view device;
    if (plan.device_capture >= 0) {
      device = captures[plan.device_capture];
    } else if (batch->device() != nullptr) {
      device = batch->device()->string_view();
    }
    if (device.empty()) {
      Reject(counters, RejectReason::kNoDevice, "", "no device in the topic or the batch");
      return;
    }
    // Channel index -> field index (-1: not a configured field).
    channel_field.clear();
    if (batch->channels() != nullptr) {
      for (const flatbuffers::String* name : *batch->channels()) {
        int index = -1;
        if (name != nullptr) {
          auto it = std::find(channel_names.begin(), channel_names.end(), name->string_view());
          if (it != channel_names.end()) index = static_cast<int>(it - channel_names.begin());
        }
        channel_field.push_back(index);
      }
    }
    const auto* samples = batch->samples();
    if (samples == nullptr || samples->size() == 0) return;
    const bool has_seq = batch->has_seq();
    for (const fb::Sample* s : *samples) {
      if (s->channel() >= channel_field.size()) {
        Reject(counters, RejectReason::kBadFlatbuffer, "", "a sample's channel is out of range");
        return;
      }
    }
    // Samples sharing a seq (or, without seqs, a ts) form one reading, in
    // order of their first sample. std::sort on (key, index) keeps equal
    // keys in sample order without stable_sort's temporary buffer.
    order.clear();
    for (uint32_t i = 0; i < samples->size(); ++i) {
      const fb::Sample* s = samples->Get(i);
      order.emplace_back(has_seq ? s->seq() : s->ts(), i);
    }
    std::sort(order.begin(), order.end());
    groups.clear();
    for (uint32_t p = 0; p < order.size(); ++p) {
      if (p == 0 || order[p].first != order[p - 1].first) groups.emplace_back(order[p].second, p);
    }
    std::sort(groups.begin(), groups.end());
    int64_t sent_at_ms = 0;
    bool has_sent_at = batch->sent_at() != 0 &&
                       IntegerToMs(batch->sent_at(),
                                   timestamp.received ? TimestampUnit::kMs : timestamp.unit,
                                   &sent_at_ms);
    for (const auto& [first, start] : groups) {
      const fb::Sample* head = samples->Get(first);
      NumberText* text;
      Reading* r = NextReading(&text);
      if (timestamp.received) {
        r->ts_ms = arrival_ms;
      } else if (!IntegerToMs(head->ts(), timestamp.unit, &r->ts_ms)) {
        Reject(counters, RejectReason::kMissingTimestamp, "", "a sample's ts is out of range");
        continue;
      }
      r->device = device;
      r->has_seq = has_seq;
      r->seq = has_seq ? head->seq() : 0;
      r->has_sent_at = has_sent_at;
      r->sent_at_ms = sent_at_ms;
      ApplyCaptures(plan, r);
      bool ok = true;
      for (uint32_t p = start; p < order.size() && order[p].first == order[start].first; ++p) {
        const fb::Sample* s = samples->Get(order[p].second);
        int field = channel_field[s->channel()];
        if (field < 0) continue;
        if (!std::isfinite(s->value())) {
          ok = false;
          break;
        }
        r->SetField(field, s->value());
      }
      if (!ok) {
        Reject(counters, RejectReason::kNonNumericField, "", "a sample value is not finite");
        continue;
      }
      ++count;
    }
  }
};

MessageDecoder::MessageDecoder(std::unique_ptr<Impl> impl, TopicRouter router)
    : impl_(std::move(impl)), router_(std::move(router)) {}

MessageDecoder::~MessageDecoder() = default;

namespace {

// "{name}" -> "name"; anything else is a JSON pointer.
bool CaptureName(const std::string& device, std::string* name) {
  if (device.size() >= 2 && device.front() == '{' && device.back() == '}') {
    *name = device.substr(1, device.size() - 2);
    return true;
  }
  return false;
}

Status CheckPointer(const std::string& pointer, const char* what) {
  if (!pointer.empty() && pointer.front() != '/') {
    return InvalidArgument(std::string(what) + " \"" + pointer +
                           "\" is not a JSON pointer (it must start with '/')");
  }
  return Status::Ok();
}

CapturePlan MakePlan(const TopicTemplate& t, const Config& config,
                     const std::string& device_capture) {
  CapturePlan plan;
  for (size_t c = 0; c < t.capture_names().size(); ++c) {
    const std::string& name = t.capture_names()[c];
    plan.attribute.push_back(config.AttributeIndex(name));
    if (!device_capture.empty() && name == device_capture) plan.device_capture = static_cast<int>(c);
  }
  return plan;
}

}  // namespace

Result<std::unique_ptr<MessageDecoder>> MessageDecoder::Create(const Config& config) {
  const SourceConfig& src = config.source;
  Result<TopicRouter> router = TopicRouter::Create(src);
  if (!router.ok()) return router.status();
  if (static_cast<int>(src.fields.size()) > kMaxFields) {
    return InvalidArgument("more than " + std::to_string(kMaxFields) + " source.fields");
  }
  if (static_cast<int>(config.attributes.size()) > kMaxAttributes) {
    return InvalidArgument("more than " + std::to_string(kMaxAttributes) +
                           " topic captures and tags");
  }
  auto impl = std::make_unique<Impl>();
  impl->timestamp = src.timestamp;
  if (!src.timestamp.received) RETURN_IF_ERROR(CheckPointer(src.timestamp.path, "timestamp.path"));
  if (!src.timestamp.received && src.timestamp.path.empty()) {
    return InvalidArgument("source.timestamp.path is empty");
  }
  RETURN_IF_ERROR(CheckPointer(src.seq, "source.seq"));
  RETURN_IF_ERROR(CheckPointer(src.sent_at, "source.sent_at"));
  impl->seq_pointer = src.seq;
  impl->sent_at_pointer = src.sent_at;
  std::string device_capture;
  if (!CaptureName(src.device, &device_capture)) {
    if (src.device.empty()) return InvalidArgument("source.device is empty");
    RETURN_IF_ERROR(CheckPointer(src.device, "source.device"));
    impl->device_pointer = src.device;
  }
  for (size_t i = 0; i < src.fields.size(); ++i) {
    RETURN_IF_ERROR(CheckPointer(src.fields[i].path, "field path"));
    impl->fields.push_back({static_cast<int>(i), src.fields[i].path});
    impl->channel_names.push_back(ChannelName(src.fields[i]));
  }
  for (const NamedPath& tag : src.tags) {
    RETURN_IF_ERROR(CheckPointer(tag.path, "tag path"));
    int index = config.AttributeIndex(tag.name);
    if (index < 0) return InvalidArgument("tag \"" + tag.name + "\" is not in Config::attributes");
    impl->tags.push_back({index, tag.path});
  }
  for (int i = 0; i < router->data_template_count(); ++i) {
    impl->data_plans.push_back(MakePlan(router->data_template(i), config, device_capture));
    impl->formats.push_back(src.topics[i].format);
  }
  if (router->has_status()) {
    // A status topic names its device by the same capture as data topics;
    // when the device id comes from the payload, by a {device} capture.
    impl->status_plan = MakePlan(router->status_template(), config,
                                 device_capture.empty() ? "device" : device_capture);
    impl->online = src.status.online;
    impl->offline = src.status.offline;
  }
  impl->max_payload = src.max_payload_bytes;
  impl->captures.resize(router->max_captures());
  size_t reserve = static_cast<size_t>(std::min<int64_t>(src.max_payload_bytes, 1 << 20));
  impl->payload_buf.reserve(reserve + simdjson::SIMDJSON_PADDING);
  // Size the parser and its document for the largest payload up front (up to
  // 1 MB; beyond that they grow on first use), so decoding does not allocate.
  const size_t capacity = std::max<size_t>(reserve, 4096);
  if (impl->parser.allocate(capacity) || impl->parser.doc.allocate(capacity)) {
    return ResourceExhausted("cannot allocate the JSON parser");
  }
  return std::unique_ptr<MessageDecoder>(
      new MessageDecoder(std::move(impl), std::move(router.value())));
}

const DecodedMessage& MessageDecoder::Decode(std::string_view topic, std::string_view payload,
                                             int64_t arrival_ms) {
  Impl& m = *impl_;
  ++counters_.messages;
  m.result = DecodedMessage();
  m.count = 0;
  m.detail.clear();
  m.topic_buf.assign(topic.data(), topic.size());
  TopicMatch match = router_.Route(m.topic_buf, m.captures.data());

  if (match.kind == TopicMatch::Kind::kStatus) {
    const CapturePlan& plan = m.status_plan;
    std::string_view device = plan.device_capture >= 0 ? m.captures[plan.device_capture] : "";
    if (!device.empty() && (payload == m.online || payload == m.offline)) {
      m.result.kind = DecodedMessage::Kind::kStatus;
      m.result.device = device;
      m.result.online = payload == m.online;
      ++counters_.status_messages;
    } else {
      m.result.kind = DecodedMessage::Kind::kStatusIgnored;
      ++counters_.status_ignored;
    }
    return m.result;
  }

  m.result.kind = DecodedMessage::Kind::kData;
  if (match.kind == TopicMatch::Kind::kNone) {
    m.Reject(&counters_, RejectReason::kUnmatchedTopic, "", "no template matches ", m.topic_buf);
  } else if (static_cast<int64_t>(payload.size()) > m.max_payload) {
    m.Reject(&counters_, RejectReason::kOversize, "", "payload is larger than source.max_payload");
  } else {
    // Own copy of the payload: simdjson needs padding after the bytes, and
    // the FlatBuffers verifier wants aligned data.
    m.payload_buf.resize(payload.size() + simdjson::SIMDJSON_PADDING);
    std::copy(payload.begin(), payload.end(), m.payload_buf.begin());
    std::fill(m.payload_buf.begin() + payload.size(), m.payload_buf.end(), '\0');
    const CapturePlan& plan = m.data_plans[match.topic_index];
    if (m.formats[match.topic_index] == PayloadFormat::kFlatbuffers) {
      m.DecodeFlatbuffer(plan, payload.size(), arrival_ms, &counters_);
    } else {
      m.DecodeJson(plan, payload.size(), arrival_ms, &counters_);
    }
  }
  counters_.readings += static_cast<int64_t>(m.count);
  m.result.readings = m.readings.data();
  m.result.reading_count = m.count;
  m.result.first_reject_detail = m.detail;
  return m.result;
}

std::string RawJsonReading(const Reading& reading) {
  std::string_view p = reading.json_payload;
  if (p.empty()) return {};
  if (reading.json_element < 0) {
    // The payload is the reading: as sent, less surrounding white space.
    size_t b = p.find_first_not_of(" \t\r\n");
    size_t e = p.find_last_not_of(" \t\r\n");
    return b == std::string_view::npos ? std::string() : std::string(p.substr(b, e - b + 1));
  }
  // An element of an array: parsed again (late side output is rare) and minified.
  dom::parser parser;
  dom::element root;
  if (parser.parse(p.data(), p.size(), true).get(root) || root.type() != dom::element_type::ARRAY)
    return {};
  dom::element el;
  if (root.at(static_cast<size_t>(reading.json_element)).get(el)) return {};
  return simdjson::minify(el);
}

}  // namespace weir
