#include "tools/sim/scenario.h"

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

namespace weir::sim {
namespace {

using Json = nlohmann::ordered_json;  // fields keep the scenario's order

}  // namespace

std::optional<int64_t> ParseDuration(const std::string& text) {
  size_t i = 0;
  int64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (n > (INT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + (text[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string unit = text.substr(i);
  int64_t scale = unit == "ms"  ? 1
                  : unit == "s" ? 1000
                  : unit == "m" ? 60000
                  : unit == "h" ? 3600000
                  : unit == "d" ? 86400000
                                : 0;
  if (scale == 0 || n > INT64_MAX / scale) return std::nullopt;
  return n * scale;
}

namespace {

Status ReadDuration(const Json& obj, const char* key, const std::string& where, int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  std::optional<int64_t> ms;
  if (it->is_number_integer()) ms = it->get<int64_t>();
  if (it->is_string()) ms = ParseDuration(it->get<std::string>());
  if (!ms || *ms < 0) return InvalidArgument(where + "/" + key + ": not a duration such as \"1s\"");
  *out = *ms;
  return Status::Ok();
}

Status ReadNumber(const Json& obj, const char* key, const std::string& where, double* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_number()) return InvalidArgument(where + "/" + key + ": not a number");
  *out = it->get<double>();
  return Status::Ok();
}

Status ParseField(const std::string& name, const Json& j, const std::string& where, FieldModel* f) {
  if (!j.is_object()) return InvalidArgument(where + ": a field model is an object");
  f->name = name;
  std::string model = j.value("model", "sine");
  if (model == "sine") {
    f->model = ValueModel::kSine;
  } else if (model == "random_walk") {
    f->model = ValueModel::kRandomWalk;
  } else if (model == "constant") {
    f->model = ValueModel::kConstant;
  } else {
    return InvalidArgument(where + "/model: \"" + model +
                           "\" is not sine, random_walk or constant");
  }
  RETURN_IF_ERROR(ReadNumber(j, "mean", where, &f->mean));
  RETURN_IF_ERROR(ReadNumber(j, "value", where, &f->mean));
  RETURN_IF_ERROR(ReadNumber(j, "amplitude", where, &f->amplitude));
  RETURN_IF_ERROR(ReadDuration(j, "period", where, &f->period_ms));
  RETURN_IF_ERROR(ReadNumber(j, "noise", where, &f->noise));
  RETURN_IF_ERROR(ReadNumber(j, "start", where, &f->start));
  RETURN_IF_ERROR(ReadNumber(j, "step", where, &f->step));
  RETURN_IF_ERROR(ReadNumber(j, "min", where, &f->min));
  RETURN_IF_ERROR(ReadNumber(j, "max", where, &f->max));
  double decimals = f->decimals;
  RETURN_IF_ERROR(ReadNumber(j, "decimals", where, &decimals));
  f->decimals = static_cast<int>(decimals);
  if (f->period_ms <= 0) return InvalidArgument(where + "/period: must be positive");
  if (f->min > f->max) return InvalidArgument(where + ": min is above max");
  if (f->decimals < 0 || f->decimals > 9) return InvalidArgument(where + "/decimals: 0 to 9");
  return Status::Ok();
}

}  // namespace

Result<Scenario> ParseScenario(const std::string& text) {
  Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return InvalidArgument("scenario: not a JSON object");
  Scenario s;
  RETURN_IF_ERROR(ReadDuration(doc, "duration", "", &s.duration_ms));
  auto groups = doc.find("groups");
  if (groups == doc.end() || !groups->is_array() || groups->empty()) {
    return InvalidArgument("/groups: a non-empty array of device groups is required");
  }
  for (size_t i = 0; i < groups->size(); ++i) {
    const Json& g = (*groups)[i];
    std::string where = "/groups/" + std::to_string(i);
    if (!g.is_object()) return InvalidArgument(where + ": a group is an object");
    DeviceGroup d;
    d.count = g.value("count", int64_t{1});
    d.id = g.value("id", d.id);
    d.topic = g.value("topic", d.topic);
    d.format = g.value("format", d.format);
    d.seq = g.value("seq", true);
    d.sent_at = g.value("sent_at", true);
    RETURN_IF_ERROR(ReadDuration(g, "period", where, &d.period_ms));
    RETURN_IF_ERROR(ReadDuration(g, "clock_skew", where, &d.clock_skew_ms));
    RETURN_IF_ERROR(ReadNumber(g, "duplicates", where, &d.duplicates));
    if (d.duplicates < 0 || d.duplicates > 1) {
      return InvalidArgument(where + "/duplicates: a probability from 0 to 1");
    }
    if (d.count < 1) return InvalidArgument(where + "/count: at least 1");
    if (d.period_ms < 1) return InvalidArgument(where + "/period: must be positive");
    if (d.format != "json") {
      return InvalidArgument(where + "/format: only \"json\" in this version of weir-sim");
    }
    if (d.count > 1 && d.id.find("{n}") == std::string::npos) {
      return InvalidArgument(where + "/id: needs {n} to tell " + std::to_string(d.count) +
                             " devices apart");
    }
    auto fields = g.find("fields");
    if (fields != g.end()) {
      if (!fields->is_object()) return InvalidArgument(where + "/fields: an object");
      for (auto it = fields->begin(); it != fields->end(); ++it) {
        FieldModel f;
        RETURN_IF_ERROR(ParseField(it.key(), it.value(), where + "/fields/" + it.key(), &f));
        d.fields.push_back(std::move(f));
      }
    }
    s.groups.push_back(std::move(d));
  }
  return s;
}

Result<Scenario> LoadScenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot read scenario " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Result<Scenario> s = ParseScenario(ss.str());
  if (!s.ok()) return InvalidArgument(path + s.status().message());
  return s;
}

}  // namespace weir::sim
