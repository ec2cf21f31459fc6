// ParseConfig: walks a config against the key table (config_keys.cc) for
// structure, types, enums, ranges and unknown keys, then checks what relates
// keys to each other (window keys by type, names that must be declared,
// client ids, topic templates) and fills Config. Every problem is reported.
#include "config/config.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "config/config_keys.h"
#include "core/reading.h"

namespace weir {

using Json = nlohmann::ordered_json;

int Config::FieldIndex(std::string_view name) const {
  for (size_t i = 0; i < source.fields.size(); ++i)
    if (source.fields[i].name == name) return static_cast<int>(i);
  return -1;
}

int Config::AttributeIndex(std::string_view name) const {
  for (size_t i = 0; i < attributes.size(); ++i)
    if (attributes[i] == name) return static_cast<int>(i);
  return -1;
}

// ---------------------------------------------------------------------------
// Durations and sizes

namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses the leading digits of s; nullopt on overflow or none.
std::optional<int64_t> ParseCount(std::string_view digits) {
  if (!AllDigits(digits)) return std::nullopt;
  int64_t v = 0;
  for (char c : digits) {
    if (v > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<int64_t> Scale(int64_t v, int64_t unit) {
  if (v > std::numeric_limits<int64_t>::max() / unit) return std::nullopt;
  return v * unit;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<int64_t> ParseDurationMs(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  std::string_view unit = text.substr(i);
  auto n = ParseCount(text.substr(0, i));
  if (!n) return std::nullopt;
  if (unit.empty()) return *n == 0 ? std::optional<int64_t>(0) : std::nullopt;
  if (unit == "ms") return *n;
  if (unit == "s") return Scale(*n, 1000);
  if (unit == "m") return Scale(*n, 60 * 1000);
  if (unit == "h") return Scale(*n, 3600 * 1000);
  if (unit == "d") return Scale(*n, 24 * 3600 * 1000);
  return std::nullopt;
}

std::optional<int64_t> ParseSizeBytes(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  auto n = ParseCount(text.substr(0, i));
  if (!n) return std::nullopt;
  size_t j = i;
  while (j < text.size() && text[j] == ' ') ++j;
  std::string unit = Lower(text.substr(j));
  if (unit.empty() || unit == "b") return unit.empty() && j != i ? std::nullopt : n;
  if (unit == "kb" || unit == "kib") return Scale(*n, int64_t{1} << 10);
  if (unit == "mb" || unit == "mib") return Scale(*n, int64_t{1} << 20);
  if (unit == "gb" || unit == "gib") return Scale(*n, int64_t{1} << 30);
  return std::nullopt;
}

namespace {

// "2000/s", "100/m", "10/h" -> per second.
std::optional<double> ParseRatePerSecond(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  std::string number(text.substr(0, slash));
  std::string_view unit = text.substr(slash + 1);
  for (char c : number)
    if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !(v > 0) || !std::isfinite(v)) return std::nullopt;
  if (unit == "s") return v;
  if (unit == "m") return v / 60;
  if (unit == "h") return v / 3600;
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Small helpers

std::string EscapePointerToken(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

bool IsName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsJsonPointer(std::string_view s) {
  if (s.empty()) return true;
  if (s[0] != '/') return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '~' && (i + 1 >= s.size() || (s[i + 1] != '0' && s[i + 1] != '1'))) return false;
  return true;
}

// Optimal string alignment distance: edits plus adjacent transpositions
// (">=" for "=>"), case-insensitive.
size_t EditDistance(std::string_view a, std::string_view b) {
  auto eq = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (eq(a[i - 1], b[j - 1]) ? 0 : 1)});
      if (i > 1 && j > 1 && eq(a[i - 1], b[j - 2]) && eq(a[i - 2], b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate within a typo's reach, or "". Ties go to a candidate
// of the same length (a transposition rather than a dropped character).
std::string Closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t limit = std::max<size_t>(2, word.size() / 3);
  size_t best_score = (limit + 1) * 2;
  for (const std::string& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d > limit) continue;
    size_t score = d * 2 + (c.size() == word.size() ? 0 : 1);
    if (score < best_score) {
      best_score = score;
      best = c;
    }
  }
  return best;
}

std::string JoinQuoted(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += "\"" + s + "\"";
  }
  return out;
}

std::vector<std::string> SplitChoices(const char* choices) {
  std::vector<std::string> out;
  std::string c = choices ? choices : "";
  size_t start = 0;
  while (start <= c.size()) {
    size_t bar = c.find('|', start);
    if (bar == std::string::npos) bar = c.size();
    out.push_back(c.substr(start, bar - start));
    start = bar + 1;
  }
  return out;
}

const char* JsonTypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_float:
      return "a number";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    default:
      return "something else";
  }
}

std::string NumberText(double v) {
  Json j = v;
  if (std::fabs(v) < 1e15 && v == std::floor(v)) j = static_cast<int64_t>(v);
  return j.dump();
}

// A parsed topic template: levels, and which are captures.
struct TopicTemplate {
  std::vector<std::string> levels;
  std::vector<std::string> captures;  // in order
  bool multi = false;                 // ends in '#'
};

// Checks topic template syntax; on a problem returns false and sets *why.
bool ParseTopicTemplate(std::string_view topic, TopicTemplate* out, std::string* why) {
  if (topic.empty()) {
    *why = "topic template is empty";
    return false;
  }
  size_t start = 0;
  std::vector<std::string> levels;
  while (true) {
    size_t slash = topic.find('/', start);
    levels.emplace_back(
        topic.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (size_t i = 0; i < levels.size(); ++i) {
    const std::string& level = levels[i];
    if (level == "#") {
      if (i + 1 != levels.size()) {
        *why = "'#' may only be the last level";
        return false;
      }
      out->multi = true;
    } else if (level == "+") {
      *why = "'+' is written as a named capture such as {device}";
      return false;
    } else if (!level.empty() && level.front() == '{' && level.back() == '}') {
      std::string name = level.substr(1, level.size() - 2);
      if (!IsName(name)) {
        *why = "capture {" + name + "} is not a name of [A-Za-z0-9_.-]{1,64}";
        return false;
      }
      if (std::find(out->captures.begin(), out->captures.end(), name) != out->captures.end()) {
        *why = "capture {" + name + "} appears twice";
        return false;
      }
      out->captures.push_back(name);
    } else if (level.find_first_of("{}+#") != std::string::npos) {
      *why = "level \"" + level +
             "\" mixes a capture or wildcard with text; captures and # are whole levels";
      return false;
    }
    out->levels.push_back(level);
  }
  return true;
}

// ---------------------------------------------------------------------------
// The parser

class Parser {
 public:
  Parser(std::vector<ConfigError>* errors, bool for_run) : errors_(errors), for_run_(for_run) {}

  std::optional<Config> Parse(std::string_view text);

 private:
  void Error(std::string pointer, std::string message, std::string hint) {
    errors_->push_back({std::move(pointer), std::move(message), std::move(hint)});
    ++error_count_;
  }

  // Structural pass over the table.
  void Walk(const Json& v, const std::string& pattern, const std::string& pointer);
  bool CheckValue(const Json& v, const ConfigKey& k, const std::string& pointer);

  // Typed readers: the member when present and well-typed, else the table default.
  Json Member(const Json* parent, const char* name, const std::string& pattern) const;
  std::string GetString(const Json* parent, const char* name, const std::string& pattern) const;
  int64_t GetInt(const Json* parent, const char* name, const std::string& pattern) const;
  int64_t GetDuration(const Json* parent, const char* name, const std::string& pattern) const;
  int64_t GetSize(const Json* parent, const char* name, const std::string& pattern) const;

  void BuildSource(const Json& root, Config* c);
  void BuildPipeline(const Json& p, size_t index, const Config& c, PipelineConfig* out);
  void BuildWindow(const Json& w, const std::string& ptr, WindowConfig* out);
  void BuildRest(const Json& root, Config* c);

  std::vector<ConfigError>* errors_;
  bool for_run_;
  int error_count_ = 0;
};

bool Parser::CheckValue(const Json& v, const ConfigKey& k, const std::string& ptr) {
  auto type_error = [&](const char* expected, std::string hint) {
    Error(ptr, std::string("expected ") + expected + ", got " + JsonTypeName(v), std::move(hint));
    return false;
  };
  auto range = [&](double x, const char* unit_hint) {
    bool low = k.exclusive ? !(x > k.min) : x < k.min;
    bool high = k.exclusive ? !(x < k.max) : x > k.max;
    if (!low && !high) return true;
    std::string bounds;
    if (k.exclusive)
      bounds = "strictly between " + NumberText(k.min) + " and " + NumberText(k.max);
    else if (k.max < std::numeric_limits<double>::infinity())
      bounds = "between " + NumberText(k.min) + " and " + NumberText(k.max);
    else
      bounds = "at least " + NumberText(k.min) + unit_hint;
    Error(ptr, "value is out of range", "use a value " + bounds);
    return false;
  };
  const std::string duration_hint =
      "use a string with a unit such as \"250ms\", \"10s\", \"5m\", \"2h\", \"1d\", or integer "
      "milliseconds";
  const std::string size_hint = "use \"64KB\", \"256MB\", \"1GB\" or integer bytes";
  switch (k.type) {
    case KeyType::kObject:
    case KeyType::kMap:
      if (!v.is_object()) return type_error("an object", "write it as {...}");
      if (k.type == KeyType::kMap && v.empty() && k.min >= 1) {
        Error(ptr, "must not be empty", "declare at least one entry");
        return false;
      }
      return true;
    case KeyType::kTimestamp:
      if (v.is_string()) {
        if (v.get<std::string>() == "received") return true;
        Error(ptr, "\"" + v.get<std::string>() + "\" is not a timestamp setting",
              "use \"received\" or an object {\"path\": \"/ts\", \"unit\": \"ms\"}");
        return false;
      }
      if (!v.is_object())
        return type_error("an object or \"received\"", "use {\"path\": \"/ts\", \"unit\": \"ms\"}");
      return true;
    case KeyType::kArray:
      if (!v.is_array()) return type_error("an array", "write it as [...]");
      if (v.empty() && k.min >= 1) {
        Error(ptr, "must not be empty", "add at least one entry");
        return false;
      }
      return true;
    case KeyType::kString:
    case KeyType::kTopic:
      if (!v.is_string()) return type_error("a string", "put the value in double quotes");
      if (v.get<std::string>().empty()) {
        Error(ptr, "must not be empty", "give a value or remove the key");
        return false;
      }
      if (k.type == KeyType::kTopic) {
        TopicTemplate t;
        std::string why;
        if (!ParseTopicTemplate(v.get<std::string>(), &t, &why)) {
          Error(ptr, "bad topic template: " + why,
                "write levels separated by '/', captures as whole levels like {device}, "
                "and '#' only at the end");
          return false;
        }
      }
      return true;
    case KeyType::kName:
      if (!v.is_string()) return type_error("a string", "put the name in double quotes");
      if (!IsName(v.get<std::string>())) {
        Error(ptr, "\"" + v.get<std::string>() + "\" is not a valid name",
              "use 1 to 64 characters of A-Z a-z 0-9 _ . - (it appears in topics and ids)");
        return false;
      }
      return true;
    case KeyType::kPointer:
      if (!v.is_string()) return type_error("a string", "write a JSON pointer such as \"/temp\"");
      if (!IsJsonPointer(v.get<std::string>())) {
        Error(ptr, "\"" + v.get<std::string>() + "\" is not a JSON pointer",
              "a JSON pointer starts with '/', e.g. \"/" + v.get<std::string>() +
                  "\"; write ~ as ~0 and / inside a name as ~1");
        return false;
      }
      return true;
    case KeyType::kInteger:
      if (!v.is_number_integer()) return type_error("an integer", "write a whole number");
      return range(static_cast<double>(v.get<int64_t>()), "");
    case KeyType::kNumber:
      if (!v.is_number()) return type_error("a number", "write a number without quotes");
      return range(v.get<double>(), "");
    case KeyType::kNumberOrString:
      if (!v.is_number() && !v.is_string())
        return type_error("a number or a string",
                          "compare a field to a number, an attribute to a text");
      return true;
    case KeyType::kDuration: {
      std::optional<int64_t> ms;
      if (v.is_number_integer()) {
        if (v.get<int64_t>() < 0) {
          Error(ptr, "duration is negative", duration_hint);
          return false;
        }
        ms = v.get<int64_t>();
      } else if (v.is_string()) {
        ms = ParseDurationMs(v.get<std::string>());
        if (!ms) {
          Error(ptr, "\"" + v.get<std::string>() + "\" is not a duration", duration_hint);
          return false;
        }
      } else {
        return type_error("a duration", duration_hint);
      }
      if (static_cast<double>(*ms) < k.min) {
        Error(ptr, "duration must be greater than 0", duration_hint);
        return false;
      }
      return true;
    }
    case KeyType::kSize: {
      std::optional<int64_t> bytes;
      if (v.is_number_integer()) {
        bytes = v.get<int64_t>();
      } else if (v.is_string()) {
        bytes = ParseSizeBytes(v.get<std::string>());
        if (!bytes) {
          Error(ptr, "\"" + v.get<std::string>() + "\" is not a size", size_hint);
          return false;
        }
      } else {
        return type_error("a size", size_hint);
      }
      if (static_cast<double>(*bytes) < k.min) {
        Error(ptr, "size is too small",
              "use at least " + NumberText(k.min) + " bytes" +
                  (k.min >= 1 << 20 ? std::string(" (") + NumberText(k.min / (1 << 20)) + "MB)"
                                    : std::string()));
        return false;
      }
      return true;
    }
    case KeyType::kRate:
      if (v.is_number()) {
        if (v.get<double>() > 0) return true;
        Error(ptr, "rate must be greater than 0", "use e.g. \"2000/s\", or remove it for no limit");
        return false;
      }
      if (!v.is_string()) return type_error("a rate", "use e.g. \"2000/s\"");
      if (!ParseRatePerSecond(v.get<std::string>())) {
        Error(ptr, "\"" + v.get<std::string>() + "\" is not a rate",
              "use a positive count per unit such as \"2000/s\", \"100/m\" or \"10/h\"");
        return false;
      }
      return true;
    case KeyType::kEnum: {
      std::vector<std::string> choices = SplitChoices(k.choices);
      if (!v.is_string()) return type_error("a string", "use one of " + JoinQuoted(choices));
      const std::string s = v.get<std::string>();
      if (std::find(choices.begin(), choices.end(), s) != choices.end()) return true;
      std::string close = Closest(s, choices);
      Error(
          ptr, "\"" + s + "\" is not one of " + JoinQuoted(choices),
          close.empty() ? "use one of " + JoinQuoted(choices) : "did you mean \"" + close + "\"?");
      return false;
    }
  }
  return true;
}

void Parser::Walk(const Json& v, const std::string& pattern, const std::string& ptr) {
  const ConfigKey* k = FindConfigKey(pattern);
  if (!k || !CheckValue(v, *k, ptr)) return;
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) Walk(v[i], pattern + "/*", ptr + "/" + std::to_string(i));
    return;
  }
  if (!v.is_object()) return;
  if (k->type == KeyType::kMap) {
    for (const auto& [name, child] : v.items()) {
      std::string child_ptr = ptr + "/" + EscapePointerToken(name);
      if (!IsName(name))
        Error(child_ptr, "\"" + name + "\" is not a valid name",
              "use 1 to 64 characters of A-Z a-z 0-9 _ . -");
      Walk(child, pattern + "/*", child_ptr);
    }
    return;
  }
  std::vector<std::string> known = ChildKeyNames(pattern);
  std::vector<std::string> unknown;
  for (const auto& [name, child] : v.items()) {
    std::string child_ptr = ptr + "/" + EscapePointerToken(name);
    std::string child_pattern = pattern + "/" + EscapePointerToken(name);
    if (!FindConfigKey(child_pattern) || name == "*") {
      std::string close = Closest(name, known);
      unknown.push_back(name);
      Error(child_ptr, "unknown key \"" + name + "\"",
            close.empty() ? "valid keys here: " + JoinQuoted(known)
                          : "did you mean \"" + close + "\"?");
      continue;
    }
    Walk(child, child_pattern, child_ptr);
  }
  for (const std::string& name : known) {
    const ConfigKey* child = FindConfigKey(pattern + "/" + name);
    if (child->required && !v.contains(name)) {
      std::string hint = std::string("add \"") + name + "\": " + child->help;
      std::string typo = Closest(name, unknown);
      if (!typo.empty()) hint = "rename \"" + typo + "\" to \"" + name + "\"";
      Error(ptr + "/" + name, "missing required key \"" + name + "\"", hint);
    }
  }
}

Json Parser::Member(const Json* parent, const char* name, const std::string& pattern) const {
  const ConfigKey* k = FindConfigKey(pattern);
  if (parent && parent->is_object() && parent->contains(name)) return (*parent)[name];
  if (k && k->default_json) return Json::parse(k->default_json);
  return Json();
}

std::string Parser::GetString(const Json* parent, const char* name,
                              const std::string& pattern) const {
  Json v = Member(parent, name, pattern);
  if (v.is_string()) return v.get<std::string>();
  const ConfigKey* k = FindConfigKey(pattern);
  if (k && k->default_json) {
    Json d = Json::parse(k->default_json);
    if (d.is_string()) return d.get<std::string>();
  }
  return "";
}

int64_t Parser::GetInt(const Json* parent, const char* name, const std::string& pattern) const {
  Json v = Member(parent, name, pattern);
  if (v.is_number_integer()) return v.get<int64_t>();
  const ConfigKey* k = FindConfigKey(pattern);
  return k && k->default_json ? Json::parse(k->default_json).get<int64_t>() : 0;
}

int64_t Parser::GetDuration(const Json* parent, const char* name,
                            const std::string& pattern) const {
  auto convert = [](const Json& v) -> std::optional<int64_t> {
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
    if (v.is_string()) return ParseDurationMs(v.get<std::string>());
    return std::nullopt;
  };
  if (auto ms = convert(Member(parent, name, pattern))) return *ms;
  const ConfigKey* k = FindConfigKey(pattern);
  if (k && k->default_json)
    if (auto ms = convert(Json::parse(k->default_json))) return *ms;
  return 0;
}

int64_t Parser::GetSize(const Json* parent, const char* name, const std::string& pattern) const {
  auto convert = [](const Json& v) -> std::optional<int64_t> {
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_string()) return ParseSizeBytes(v.get<std::string>());
    return std::nullopt;
  };
  if (auto b = convert(Member(parent, name, pattern))) return *b;
  const ConfigKey* k = FindConfigKey(pattern);
  if (k && k->default_json)
    if (auto b = convert(Json::parse(k->default_json))) return *b;
  return 0;
}

const Json* Child(const Json& parent, const char* name) {
  if (!parent.is_object()) return nullptr;
  auto it = parent.find(name);
  return it == parent.end() ? nullptr : &*it;
}

std::string NormalizeBroker(std::string uri) {
  uri = Lower(uri);
  if (uri.rfind("mqtt://", 0) == 0) uri = "tcp://" + uri.substr(7);
  if (uri.rfind("mqtts://", 0) == 0) uri = "ssl://" + uri.substr(8);
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  return uri;
}

void Parser::BuildSource(const Json& root, Config* c) {
  const Json* src = Child(root, "source");
  SourceConfig& s = c->source;
  const std::string P = "/source";
  s.broker = GetString(src, "broker", P + "/broker");
  if (!s.broker.empty()) {
    static const char* kSchemes[] = {"tcp://", "ssl://", "mqtt://", "mqtts://", "ws://", "wss://"};
    bool ok = false;
    for (const char* scheme : kSchemes) {
      std::string lower = Lower(s.broker);
      if (lower.rfind(scheme, 0) == 0 && lower.size() > std::string(scheme).size()) ok = true;
    }
    if (!ok)
      Error(P + "/broker", "\"" + s.broker + "\" is not a broker URI",
            "write scheme://host:port, e.g. \"tcp://127.0.0.1:1883\" (or ssl://, ws://, wss://)");
  }
  s.client_id = GetString(src, "client_id", P + "/client_id");
  if (s.client_id.empty() && !c->gateway.empty()) s.client_id = "weir-" + c->gateway;
  s.qos = static_cast<int>(GetInt(src, "qos", P + "/qos"));
  s.session_expiry_ms = GetDuration(src, "session_expiry", P + "/session_expiry");
  s.max_payload_bytes = GetSize(src, "max_payload", P + "/max_payload");
  s.max_devices = GetInt(src, "max_devices", P + "/max_devices");
  s.username = GetString(src, "username", P + "/username");
  s.password = GetString(src, "password", P + "/password");
  if (!s.password.empty() && s.username.empty())
    Error(P + "/password", "password without username", "add source.username");

  // Topics, and the captures they declare.
  std::vector<TopicTemplate> templates;
  std::vector<std::string> captures;
  const Json* topics = src ? Child(*src, "topics") : nullptr;
  if (topics && topics->is_array()) {
    std::set<std::string> seen;
    for (size_t i = 0; i < topics->size(); ++i) {
      const Json& t = (*topics)[i];
      std::string tp = P + "/topics/" + std::to_string(i);
      TopicConfig tc;
      tc.topic = GetString(&t, "topic", P + "/topics/*/topic");
      tc.format = GetString(&t, "format", P + "/topics/*/format") == "flatbuffers"
                      ? PayloadFormat::kFlatbuffers
                      : PayloadFormat::kJson;
      TopicTemplate tt;
      std::string why;
      if (tc.topic.empty() || !ParseTopicTemplate(tc.topic, &tt, &why)) continue;  // reported
      if (!seen.insert(tc.topic).second)
        Error(tp + "/topic", "topic \"" + tc.topic + "\" is listed twice",
              "remove the duplicate entry");
      for (const std::string& cap : tt.captures)
        if (std::find(captures.begin(), captures.end(), cap) == captures.end())
          captures.push_back(cap);
      s.topics.push_back(tc);
      templates.push_back(tt);
    }
  }

  // Device identity.
  s.device = GetString(src, "device", P + "/device");
  std::string device_capture;
  if (s.device.size() >= 3 && s.device.front() == '{' && s.device.back() == '}') {
    device_capture = s.device.substr(1, s.device.size() - 2);
    for (size_t i = 0; i < templates.size(); ++i) {
      if (s.topics[i].format != PayloadFormat::kJson) continue;  // a batch names its device
      const auto& caps = templates[i].captures;
      if (std::find(caps.begin(), caps.end(), device_capture) == caps.end())
        Error(P + "/topics/" + std::to_string(i) + "/topic",
              "topic \"" + s.topics[i].topic + "\" has no {" + device_capture +
                  "} capture, so its readings have no device",
              "add a {" + device_capture + "} level, or set source.device to a JSON pointer");
    }
  } else if (!IsJsonPointer(s.device) || s.device.empty()) {
    Error(P + "/device", "\"" + s.device + "\" is neither a topic capture nor a JSON pointer",
          "use a capture such as \"{device}\" or a JSON pointer such as \"/id\"");
  }

  // Status topic.
  if (const Json* st = src ? Child(*src, "status") : nullptr; st && st->is_object()) {
    s.status.enabled = true;
    s.status.topic = GetString(st, "topic", P + "/status/topic");
    s.status.online = GetString(st, "online", P + "/status/online");
    s.status.offline = GetString(st, "offline", P + "/status/offline");
    TopicTemplate tt;
    std::string why;
    if (!s.status.topic.empty() && ParseTopicTemplate(s.status.topic, &tt, &why)) {
      if (device_capture.empty()) {
        Error(P + "/status/topic",
              "status messages cannot name their device: source.device is a JSON pointer and a "
              "status payload is plain text",
              "set source.device to a topic capture such as \"{device}\" used in this topic");
      } else if (std::find(tt.captures.begin(), tt.captures.end(), device_capture) ==
                 tt.captures.end()) {
        Error(P + "/status/topic",
              "status topic \"" + s.status.topic + "\" has no {" + device_capture + "} capture",
              "add a {" + device_capture + "} level so a status message names its device");
      }
    }
    if (s.status.online == s.status.offline)
      Error(P + "/status/offline", "online and offline payloads are equal",
            "use two different payloads, e.g. \"online\" and \"offline\"");
  }

  // Timestamp.
  if (const Json* ts = src ? Child(*src, "timestamp") : nullptr; ts && ts->is_string()) {
    s.timestamp.received = true;
  } else {
    s.timestamp.path = GetString(ts, "path", P + "/timestamp/path");
    std::string unit = GetString(ts, "unit", P + "/timestamp/unit");
    s.timestamp.unit = unit == "s"         ? TimestampUnit::kS
                       : unit == "us"      ? TimestampUnit::kUs
                       : unit == "iso8601" ? TimestampUnit::kIso8601
                                           : TimestampUnit::kMs;
    if (s.timestamp.path.empty())
      Error(P + "/timestamp/path", "timestamp path is empty",
            "point at the timestamp, e.g. \"/ts\", or use \"timestamp\": \"received\"");
  }
  s.seq = GetString(src, "seq", P + "/seq");
  s.sent_at = GetString(src, "sent_at", P + "/sent_at");

  // Fields and tags, in config order.
  auto read_map = [&](const char* key, std::vector<NamedPath>* out) {
    const Json* m = src ? Child(*src, key) : nullptr;
    if (!m || !m->is_object()) return;
    for (const auto& [name, path] : m->items())
      if (path.is_string() && IsName(name)) out->push_back({name, path.get<std::string>()});
  };
  read_map("fields", &s.fields);
  read_map("tags", &s.tags);
  if (s.fields.size() > static_cast<size_t>(kMaxFields))
    Error(P + "/fields",
          std::to_string(s.fields.size()) + " fields declared, at most " +
              std::to_string(kMaxFields) + " are supported",
          "split the readings over two gateways' configs or drop unused fields");

  // Attributes: captures, then tags not already captured. "device" is the
  // device identity (Reading::device), never an attribute.
  for (const std::string& cap : captures) {
    if (cap == "device" && device_capture != "device") {
      Error(P + "/device", "topics capture {device} but source.device is \"" + s.device + "\"",
            "\"device\" names the device identity: set source.device to \"{device}\" or rename "
            "the capture");
      continue;
    }
    if (cap != "device") c->attributes.push_back(cap);
  }
  for (const NamedPath& tag : s.tags) {
    std::string tp = P + "/tags/" + EscapePointerToken(tag.name);
    if (tag.name == "device") {
      Error(tp, "a tag cannot be named \"device\"",
            "\"device\" is the device identity; rename the tag or set source.device to \"" +
                tag.path + "\"");
      continue;
    }
    if (std::find(c->attributes.begin(), c->attributes.end(), tag.name) == c->attributes.end())
      c->attributes.push_back(tag.name);
  }
  if (c->attributes.size() > static_cast<size_t>(kMaxAttributes))
    Error(P + "/tags",
          std::to_string(c->attributes.size()) + " attributes (topic captures and tags), at most " +
              std::to_string(kMaxAttributes) + " are supported",
          "drop tags that no pipeline uses");
  for (const NamedPath& f : s.fields) {
    if (f.name == "device" || c->AttributeIndex(f.name) >= 0)
      Error(P + "/fields/" + EscapePointerToken(f.name),
            "\"" + f.name + "\" is both a field and " +
                (f.name == "device" ? std::string("the device identity")
                                    : std::string("an attribute (capture or tag)")),
            "give the field a name of its own");
  }
}

void Parser::BuildWindow(const Json& w, const std::string& ptr, WindowConfig* out) {
  const std::string P = "/pipelines/*/window";
  std::string type = GetString(&w, "type", P + "/type");
  if (type != "tumbling" && type != "hopping" && type != "session") return;  // reported
  auto present = [&](const char* key) { return w.contains(key); };
  auto require = [&](const char* key, const char* what) {
    if (!present(key))
      Error(ptr + "/" + key,
            std::string("missing required key \"") + key + "\" for a " + type + " window",
            std::string("add \"") + key + "\": " + what);
  };
  auto forbid = [&](const char* key, const char* belongs) {
    if (present(key))
      Error(ptr + "/" + key, std::string("\"") + key + "\" does not apply to a " + type + " window",
            std::string("remove it; it belongs to ") + belongs);
  };
  if (type == "tumbling") {
    out->type = WindowType::kTumbling;
    require("size", "the window length, e.g. \"1m\"");
    forbid("hop", "hopping windows");
    forbid("gap", "session windows");
    forbid("max_duration", "session windows");
  } else if (type == "hopping") {
    out->type = WindowType::kHopping;
    require("size", "the window length, e.g. \"5m\"");
    require("hop", "the distance between window starts, e.g. \"1m\"");
    forbid("gap", "session windows");
    forbid("max_duration", "session windows");
  } else {
    out->type = WindowType::kSession;
    require("gap", "the inactivity that ends a session, e.g. \"30s\"");
    forbid("size", "tumbling and hopping windows");
    forbid("hop", "hopping windows");
    forbid("offset", "tumbling and hopping windows");
  }
  out->size_ms = GetDuration(&w, "size", P + "/size");
  out->hop_ms =
      out->type == WindowType::kHopping ? GetDuration(&w, "hop", P + "/hop") : out->size_ms;
  out->offset_ms = GetDuration(&w, "offset", P + "/offset");
  out->gap_ms = GetDuration(&w, "gap", P + "/gap");
  out->max_duration_ms = GetDuration(&w, "max_duration", P + "/max_duration");
  if (out->type == WindowType::kSession) {
    out->size_ms = out->hop_ms = out->offset_ms = 0;
    return;
  }
  out->gap_ms = out->max_duration_ms = 0;
  if (out->type == WindowType::kHopping && out->size_ms > 0 && out->hop_ms > 0 &&
      out->size_ms % out->hop_ms != 0) {
    int64_t lower = out->size_ms / out->hop_ms * out->hop_ms;
    std::string hint = "make size a multiple of hop: ";
    if (lower > 0) hint += std::to_string(lower) + "ms or ";
    hint += std::to_string(lower + out->hop_ms) + "ms";
    Error(ptr + "/size",
          "size (" + std::to_string(out->size_ms) + "ms) is not a multiple of hop (" +
              std::to_string(out->hop_ms) + "ms)",
          hint);
  }
  // Window starts satisfy (s - offset) mod hop = 0 (DESIGN 5.1, floor modulo), so any
  // offset is valid and offsets a whole hop apart give the same windows: keep the
  // smallest, which is what the engine and the memory budget expect.
  if (out->hop_ms > 0) out->offset_ms = ((out->offset_ms % out->hop_ms) + out->hop_ms) % out->hop_ms;
}

std::string Hex(const unsigned char* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}


const char* OpName(CompareOp op) {
  switch (op) {
    case CompareOp::kLt:
      return "<";
    case CompareOp::kLe:
      return "<=";
    case CompareOp::kGt:
      return ">";
    case CompareOp::kGe:
      return ">=";
    case CompareOp::kEq:
      return "==";
    case CompareOp::kNe:
      return "!=";
  }
  return "";
}

// Canonical JSON of a pipeline's definition (DESIGN 6.5): defaults filled,
// durations in ms, keys sorted (nlohmann::json's std::map), no whitespace.
std::string DefinitionJson(const PipelineConfig& p) {
  nlohmann::json d;
  d["key"] = p.key;
  nlohmann::json where = nlohmann::json::object();
  for (const WhereCondition& w : p.where) {
    if (w.is_text)
      where[w.name][OpName(w.op)] = w.text;
    else
      where[w.name][OpName(w.op)] = static_cast<double>(w.number);
  }
  d["where"] = where;
  nlohmann::json win;
  switch (p.window.type) {
    case WindowType::kTumbling:
      win = {{"type", "tumbling"}, {"size", p.window.size_ms}, {"offset", p.window.offset_ms}};
      break;
    case WindowType::kHopping:
      win = {{"type", "hopping"},
             {"size", p.window.size_ms},
             {"hop", p.window.hop_ms},
             {"offset", p.window.offset_ms}};
      break;
    case WindowType::kSession:
      win = {{"type", "session"},
             {"gap", p.window.gap_ms},
             {"max_duration", p.window.max_duration_ms}};
      break;
  }
  d["window"] = win;
  nlohmann::json aggs = nlohmann::json::object();
  for (const AggregateConfig& a : p.aggregates) {
    nlohmann::json one = {{AggregateKindName(a.kind), a.field}};
    if (a.kind == AggregateKind::kQuantile) one["q"] = a.q;
    aggs[a.name] = one;
  }
  d["aggregates"] = aggs;
  d["event_time"] = {
      {"clock", p.event_time.clock == ClockMode::kCorrected ? "corrected" : "device"}};
  return d.dump();
}

std::string Sha256Hex(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr) != 1) return "";
  return Hex(md, n);
}

void Parser::BuildPipeline(const Json& p, size_t index, const Config& c, PipelineConfig* out) {
  const std::string ptr = "/pipelines/" + std::to_string(index);
  const std::string P = "/pipelines/*";
  out->name = GetString(&p, "name", P + "/name");

  // key
  out->key.clear();
  Json key = Member(&p, "key", P + "/key");
  if (key.is_array()) {
    for (size_t i = 0; i < key.size(); ++i) {
      if (!key[i].is_string()) continue;  // reported
      std::string name = key[i].get<std::string>();
      std::string kp = ptr + "/key/" + std::to_string(i);
      if (std::find(out->key.begin(), out->key.end(), name) != out->key.end()) {
        Error(kp, "\"" + name + "\" is listed twice", "remove the duplicate");
        continue;
      }
      if (name != "device" && c.AttributeIndex(name) < 0) {
        std::vector<std::string> candidates = c.attributes;
        candidates.push_back("device");
        std::string close = Closest(name, candidates);
        std::string hint = close.empty() ? "use \"device\", a topic capture or a tag (" +
                                               JoinQuoted(candidates) + ")"
                                         : "did you mean \"" + close + "\"?";
        if (c.FieldIndex(name) >= 0)
          hint = "\"" + name + "\" is a numeric field; group by a tag or capture instead";
        Error(kp, "\"" + name + "\" is not \"device\", a topic capture or a tag", hint);
        continue;
      }
      out->key.push_back(name);
    }
  }

  // where
  if (const Json* where = Child(p, "where"); where && where->is_object()) {
    for (const auto& [name, conds] : where->items()) {
      std::string wp = ptr + "/where/" + EscapePointerToken(name);
      bool is_field = c.FieldIndex(name) >= 0;
      bool is_attr = c.AttributeIndex(name) >= 0;
      if (!is_field && !is_attr) {
        std::vector<std::string> candidates = c.attributes;
        for (const NamedPath& f : c.source.fields) candidates.push_back(f.name);
        std::string close = Closest(name, candidates);
        Error(wp, "\"" + name + "\" is not a declared field or attribute",
              close.empty() ? "declare it in source.fields (numbers) or source.tags (text)"
                            : "did you mean \"" + close + "\"?");
        continue;
      }
      if (!conds.is_object()) continue;  // reported
      for (const auto& [op_text, value] : conds.items()) {
        WhereCondition w;
        w.name = name;
        static const std::pair<const char*, CompareOp> kOps[] = {
            {"<", CompareOp::kLt},  {"<=", CompareOp::kLe}, {">", CompareOp::kGt},
            {">=", CompareOp::kGe}, {"==", CompareOp::kEq}, {"!=", CompareOp::kNe}};
        bool known = false;
        for (const auto& [text, op] : kOps)
          if (op_text == text) {
            w.op = op;
            known = true;
          }
        if (!known) continue;  // reported as unknown key
        std::string cp = wp + "/" + EscapePointerToken(op_text);
        if (is_field) {
          if (!value.is_number()) {
            if (value.is_string())
              Error(cp, "\"" + name + "\" is a numeric field but is compared to a text",
                    "compare it to a number without quotes");
            continue;
          }
          w.number = value.get<double>();
        } else {
          if (!value.is_string()) {
            if (value.is_number())
              Error(cp, "\"" + name + "\" is an attribute (text) but is compared to a number",
                    "write the value in quotes, e.g. \"" + NumberText(value.get<double>()) +
                        "\", or declare it in source.fields");
            continue;
          }
          if (w.op != CompareOp::kEq && w.op != CompareOp::kNe) {
            Error(cp, "attribute \"" + name + "\" is text; \"" + op_text + "\" needs a number",
                  "use == or != on attributes, or declare it in source.fields");
            continue;
          }
          w.is_text = true;
          w.text = value.get<std::string>();
        }
        out->where.push_back(w);
      }
    }
  }

  // window
  if (const Json* w = Child(p, "window"); w && w->is_object())
    BuildWindow(*w, ptr + "/window", &out->window);

  // aggregates
  if (const Json* aggs = Child(p, "aggregates"); aggs && aggs->is_object()) {
    std::vector<std::string> field_names;
    for (const NamedPath& f : c.source.fields) field_names.push_back(f.name);
    for (const auto& [name, spec] : aggs->items()) {
      std::string ap = ptr + "/aggregates/" + EscapePointerToken(name);
      if (!spec.is_object()) continue;  // reported
      AggregateConfig a;
      a.name = name;
      int kinds = 0;
      static const std::pair<const char*, AggregateKind> kKinds[] = {
          {"count", AggregateKind::kCount},       {"sum", AggregateKind::kSum},
          {"min", AggregateKind::kMin},           {"max", AggregateKind::kMax},
          {"avg", AggregateKind::kAvg},           {"first", AggregateKind::kFirst},
          {"last", AggregateKind::kLast},         {"stddev", AggregateKind::kStddev},
          {"quantile", AggregateKind::kQuantile}, {"delta", AggregateKind::kDelta}};
      std::string kind_key;
      for (const auto& [text, kind] : kKinds) {
        if (!spec.contains(text)) continue;
        ++kinds;
        a.kind = kind;
        kind_key = text;
        if (spec[text].is_string()) a.field = spec[text].get<std::string>();
      }
      if (kinds == 0) {
        Error(ap, "no aggregate kind",
              "write one of count, sum, min, max, avg, first, last, stddev, quantile, delta, "
              "e.g. {\"avg\": \"temp\"}");
        continue;
      }
      if (kinds > 1) {
        Error(ap, "more than one aggregate kind in one entry",
              "give each aggregate its own output name, e.g. {\"temp_min\": {\"min\": \"temp\"}, "
              "\"temp_max\": {\"max\": \"temp\"}}");
        continue;
      }
      std::string fp = ap + "/" + kind_key;
      if (!spec[kind_key].is_string()) continue;  // reported
      if (a.field == "*") {
        if (a.kind != AggregateKind::kCount)
          Error(fp, "\"*\" only works with count", "name a field declared in source.fields");
      } else if (c.FieldIndex(a.field) < 0) {
        std::string close = Closest(a.field, field_names);
        Error(fp, "\"" + a.field + "\" is not a declared field",
              close.empty()
                  ? "declare it in source.fields, e.g. \"" + a.field + "\": \"/" + a.field + "\""
                  : "did you mean \"" + close + "\"?");
      }
      if (a.kind == AggregateKind::kQuantile) {
        if (!spec.contains("q"))
          Error(ap + "/q", "quantile needs q", "add \"q\": a rank between 0 and 1, e.g. 0.95");
        else if (spec["q"].is_number())
          a.q = spec["q"].get<double>();
      } else if (spec.contains("q")) {
        Error(ap + "/q", "q applies to quantile only", "remove q or use {\"quantile\": ...}");
      }
      out->aggregates.push_back(a);
    }
  }

  // event_time
  const Json* et = Child(p, "event_time");
  const std::string E = P + "/event_time";
  EventTimeConfig& e = out->event_time;
  e.max_out_of_orderness_ms = GetDuration(et, "max_out_of_orderness", E + "/max_out_of_orderness");
  e.idle_timeout_ms = GetDuration(et, "idle_timeout", E + "/idle_timeout");
  e.max_hold_ms = GetDuration(et, "max_hold", E + "/max_hold");
  e.allowed_lateness_ms = GetDuration(et, "allowed_lateness", E + "/allowed_lateness");
  std::string late = GetString(et, "late", E + "/late");
  e.late = late == "update" ? LatePolicy::kUpdate
           : late == "side" ? LatePolicy::kSide
                            : LatePolicy::kDrop;
  e.late_emit_delay_ms = GetDuration(et, "late_emit_delay", E + "/late_emit_delay");
  e.clock = GetString(et, "clock", E + "/clock") == "corrected" ? ClockMode::kCorrected
                                                                : ClockMode::kDevice;
  if (e.clock == ClockMode::kCorrected && c.source.sent_at.empty())
    Error(ptr + "/event_time/clock", "clock \"corrected\" needs source.sent_at",
          "set source.sent_at to the JSON pointer of the device's send time, or use \"device\"");

  const Json* limits = Child(p, "limits");
  out->max_keys = GetInt(limits, "max_keys", P + "/limits/max_keys");

  out->definition_json = DefinitionJson(*out);
  out->fingerprint = Sha256Hex(out->definition_json);
}

void Parser::BuildRest(const Json& root, Config* c) {
  const Json* st = Child(root, "storage");
  c->storage.path = GetString(st, "path", "/storage/path");
  c->storage.max_bytes = GetSize(st, "max_bytes", "/storage/max_bytes");
  c->storage.sync =
      GetString(st, "sync", "/storage/sync") == "full" ? SyncMode::kFull : SyncMode::kNormal;
  c->storage.commit_interval_ms = GetDuration(st, "commit_interval", "/storage/commit_interval");
  c->storage.on_full = GetString(st, "on_full", "/storage/on_full") == "block"
                           ? OnFull::kBlock
                           : OnFull::kDropOldest;

  const Json* in = Child(root, "ingest");
  c->ingest.durability = GetString(in, "durability", "/ingest/durability") == "batch"
                             ? Durability::kBatch
                             : Durability::kJournal;
  c->ingest.queue_capacity = GetInt(in, "queue_capacity", "/ingest/queue_capacity");

  const Json* up = Child(root, "uplink");
  UplinkConfig& u = c->uplink;
  if (!up || !up->is_object()) {
    if (for_run_ && !up)
      Error("/uplink", "missing required key \"uplink\"",
            "weir run forwards results upstream: add \"uplink\": {\"broker\": \"ssl://...\"}");
  } else {
    u.present = true;
    u.broker = GetString(up, "broker", "/uplink/broker");
    u.client_id = GetString(up, "client_id", "/uplink/client_id");
    if (u.client_id.empty() && !c->gateway.empty()) u.client_id = "weir-" + c->gateway + "-uplink";
    u.qos = static_cast<int>(GetInt(up, "qos", "/uplink/qos"));
    u.topic = GetString(up, "topic", "/uplink/topic");
    u.batch_max = GetInt(up, "batch_max", "/uplink/batch_max");
    Json rate = Member(up, "max_rate", "/uplink/max_rate");
    if (rate.is_number() && rate.get<double>() > 0)
      u.max_rate_per_s = rate.get<double>();
    else if (rate.is_string())
      u.max_rate_per_s = ParseRatePerSecond(rate.get<std::string>()).value_or(0);
    u.order = GetString(up, "order", "/uplink/order") == "in_order" ? UplinkOrder::kInOrder
                                                                    : UplinkOrder::kLiveFirst;
    const Json* tls = Child(*up, "tls");
    u.tls.ca = GetString(tls, "ca", "/uplink/tls/ca");
    u.tls.cert = GetString(tls, "cert", "/uplink/tls/cert");
    u.tls.key = GetString(tls, "key", "/uplink/tls/key");
    u.username = GetString(up, "username", "/uplink/username");
    u.password = GetString(up, "password", "/uplink/password");
    if (!u.password.empty() && u.username.empty())
      Error("/uplink/password", "password without username", "add uplink.username");

    std::string lower = Lower(u.broker);
    bool secure = lower.rfind("ssl://", 0) == 0 || lower.rfind("mqtts://", 0) == 0 ||
                  lower.rfind("wss://", 0) == 0;
    bool plain = lower.rfind("tcp://", 0) == 0 || lower.rfind("mqtt://", 0) == 0 ||
                 lower.rfind("ws://", 0) == 0;
    if (!u.broker.empty() && !secure && !plain)
      Error("/uplink/broker", "\"" + u.broker + "\" is not a broker URI",
            "write scheme://host:port, e.g. \"ssl://cloud.example:8883\"");
    if (tls && plain)
      Error("/uplink/tls", "tls is set but the broker URI is not ssl:// or wss://",
            "use ssl://host:8883, or remove tls");
    if (u.tls.cert.empty() != u.tls.key.empty())
      Error(u.tls.cert.empty() ? "/uplink/tls/cert" : "/uplink/tls/key",
            "a client certificate needs its key and the key its certificate",
            "set both tls.cert and tls.key, or neither");

    // Topic placeholders: only {gateway} and {pipeline}; no wildcards.
    std::string rest = u.topic;
    size_t open = 0;
    while ((open = rest.find('{', open)) != std::string::npos) {
      size_t close = rest.find('}', open);
      std::string name = close == std::string::npos ? "" : rest.substr(open + 1, close - open - 1);
      if (name != "gateway" && name != "pipeline") {
        Error("/uplink/topic", "unknown placeholder in \"" + u.topic + "\"",
              "use only {gateway} and {pipeline}");
        break;
      }
      open = close;
    }
    if (u.topic.find_first_of("+#") != std::string::npos)
      Error("/uplink/topic", "a publish topic cannot contain + or #",
            "use a plain topic such as \"weir/{gateway}/{pipeline}\"");

    if (!u.broker.empty() && NormalizeBroker(u.broker) == NormalizeBroker(c->source.broker) &&
        !u.client_id.empty() && u.client_id == c->source.client_id)
      Error("/uplink/client_id",
            "uplink and source use client id \"" + u.client_id + "\" on the same broker",
            "the broker would disconnect one when the other connects; give them different "
            "client ids");
  }

  const Json* metrics = Child(root, "metrics");
  c->metrics.listen = GetString(metrics, "listen", "/metrics/listen");
  if (!c->metrics.listen.empty()) {
    size_t colon = c->metrics.listen.rfind(':');
    auto port = colon == std::string::npos
                    ? std::nullopt
                    : ParseCount(std::string_view(c->metrics.listen).substr(colon + 1));
    if (!port || *port < 1 || *port > 65535)
      Error("/metrics/listen", "\"" + c->metrics.listen + "\" is not host:port",
            "write e.g. \"127.0.0.1:9464\"");
  }
}

std::optional<Config> Parser::Parse(std::string_view text) {
  Json root;
  try {
    // JSON allows a key twice and keeps one silently; in a config that is
    // almost always a pasted block, so it is reported with its pointer.
    struct Frame {
      bool array = false;
      long index = -1;
      std::string key;
      std::set<std::string> keys;
    };
    std::vector<Frame> stack;
    auto next_value = [&stack] {
      if (!stack.empty() && stack.back().array) ++stack.back().index;
    };
    auto callback = [&](int, Json::parse_event_t event, Json& parsed) {
      switch (event) {
        case Json::parse_event_t::object_start:
          next_value();
          stack.emplace_back();
          break;
        case Json::parse_event_t::array_start:
          next_value();
          stack.emplace_back();
          stack.back().array = true;
          break;
        case Json::parse_event_t::object_end:
        case Json::parse_event_t::array_end:
          if (!stack.empty()) stack.pop_back();
          break;
        case Json::parse_event_t::value:
          next_value();
          break;
        case Json::parse_event_t::key: {
          Frame& f = stack.back();
          f.key = parsed.get<std::string>();
          if (!f.keys.insert(f.key).second) {
            std::string pointer;
            for (const Frame& g : stack)
              pointer += "/" + (g.array ? std::to_string(g.index) : EscapePointerToken(g.key));
            Error(pointer, "key \"" + f.key + "\" appears twice in this object",
                  "keep one of them; JSON keeps only one value per key");
          }
          break;
        }
      }
      return true;
    };
    root = Json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::parse_error& e) {
    // Turn the byte offset into line:column for people.
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    size_t cut = what.find("syntax error");
    Error("",
          "not valid JSON at line " + std::to_string(line) + ", column " + std::to_string(col) +
              ": " + (cut == std::string::npos ? what : what.substr(cut)),
          "fix the JSON syntax (a missing comma or quote, or a trailing comma)");
    return std::nullopt;
  }
  Walk(root, "", "");
  if (!root.is_object()) return std::nullopt;

  Config c;
  c.text = std::string(text);
  c.gateway = GetString(&root, "gateway", "/gateway");
  if (!IsName(c.gateway)) c.gateway.clear();  // reported by Walk
  BuildSource(root, &c);

  if (const Json* ps = Child(root, "pipelines"); ps && ps->is_array()) {
    std::set<std::string> names;
    for (size_t i = 0; i < ps->size(); ++i) {
      const Json& p = (*ps)[i];
      if (!p.is_object()) continue;
      PipelineConfig pc;
      BuildPipeline(p, i, c, &pc);
      if (!pc.name.empty() && !names.insert(pc.name).second)
        Error("/pipelines/" + std::to_string(i) + "/name",
              "pipeline name \"" + pc.name + "\" is used twice",
              "pipeline names must be unique; rename one");
      c.pipelines.push_back(std::move(pc));
    }
  }
  BuildRest(root, &c);
  if (error_count_ > 0) return std::nullopt;
  return c;
}

}  // namespace

std::optional<Config> ParseConfig(std::string_view text, std::vector<ConfigError>* errors,
                                  bool for_run) {
  Parser parser(errors, for_run);
  return parser.Parse(text);
}

std::optional<Config> LoadConfigFile(const std::string& path, std::vector<ConfigError>* errors,
                                     bool for_run) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errors->push_back({"", "cannot read " + path, "check the path and its permissions"});
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    errors->push_back({"", "cannot read " + path, "check the path and its permissions"});
    return std::nullopt;
  }
  return ParseConfig(buf.str(), errors, for_run);
}

std::string FormatConfigErrors(const std::string& file, const std::vector<ConfigError>& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    out += file + ": ";
    if (!e.pointer.empty()) out += e.pointer + ": ";
    out += e.message;
    if (!e.hint.empty()) out += " (hint: " + e.hint + ")";
    out += "\n";
  }
  return out;
}

const char* AggregateKindName(AggregateKind k) {
  switch (k) {
    case AggregateKind::kCount:
      return "count";
    case AggregateKind::kSum:
      return "sum";
    case AggregateKind::kMin:
      return "min";
    case AggregateKind::kMax:
      return "max";
    case AggregateKind::kAvg:
      return "avg";
    case AggregateKind::kFirst:
      return "first";
    case AggregateKind::kLast:
      return "last";
    case AggregateKind::kStddev:
      return "stddev";
    case AggregateKind::kQuantile:
      return "quantile";
    case AggregateKind::kDelta:
      return "delta";
  }
  return "";
}

}  // namespace weir
