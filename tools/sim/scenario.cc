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

Status ReadInt(const Json& obj, const char* key, const std::string& where, int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_number_integer()) return InvalidArgument(where + "/" + key + ": not an integer");
  *out = it->get<int64_t>();
  return Status::Ok();
}

Status ReadString(const Json& obj, const char* key, const std::string& where, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_string()) return InvalidArgument(where + "/" + key + ": not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ReadBool(const Json& obj, const char* key, const std::string& where, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_boolean()) return InvalidArgument(where + "/" + key + ": not true or false");
  *out = it->get<bool>();
  return Status::Ok();
}

Status ParseField(const std::string& name, const Json& j, const std::string& where, FieldModel* f) {
  if (!j.is_object()) return InvalidArgument(where + ": a field model is an object");
  f->name = name;
  std::string model = "sine";
  RETURN_IF_ERROR(ReadString(j, "model", where, &model));
  if (model == "sine") {
    f->model = ValueModel::kSine;
  } else if (model == "random_walk") {
    f->model = ValueModel::kRandomWalk;
  } else if (model == "constant") {
    f->model = ValueModel::kConstant;
  } else if (model == "duty_cycle") {
    f->model = ValueModel::kDutyCycle;
  } else if (model == "step") {
    f->model = ValueModel::kStep;
  } else {
    return InvalidArgument(where + "/model: \"" + model +
                           "\" is not sine, random_walk, constant, duty_cycle or step");
  }
  RETURN_IF_ERROR(ReadNumber(j, "on_value", where, &f->on_value));
  RETURN_IF_ERROR(ReadNumber(j, "off_value", where, &f->off_value));
  RETURN_IF_ERROR(ReadDuration(j, "on", where, &f->on_ms));
  RETURN_IF_ERROR(ReadDuration(j, "off", where, &f->off_ms));
  RETURN_IF_ERROR(ReadDuration(j, "every", where, &f->every_ms));
  if (auto lv = j.find("levels"); lv != j.end()) {
    if (!lv->is_array() || lv->empty())
      return InvalidArgument(where + "/levels: a non-empty array");
    for (const Json& v : *lv) {
      if (!v.is_number()) return InvalidArgument(where + "/levels: numbers only");
      f->levels.push_back(v.get<double>());
    }
  }
  if (f->model == ValueModel::kDutyCycle && (f->on_ms <= 0 || f->off_ms <= 0)) {
    return InvalidArgument(where + ": duty_cycle needs positive \"on\" and \"off\" durations");
  }
  if (f->model == ValueModel::kStep && (f->levels.empty() || f->every_ms <= 0)) {
    return InvalidArgument(where + ": step needs \"levels\" and a positive \"every\"");
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
    // Wrong types are errors with their place, never exceptions.
    RETURN_IF_ERROR(ReadInt(g, "count", where, &d.count));
    RETURN_IF_ERROR(ReadString(g, "id", where, &d.id));
    RETURN_IF_ERROR(ReadString(g, "topic", where, &d.topic));
    RETURN_IF_ERROR(ReadString(g, "format", where, &d.format));
    RETURN_IF_ERROR(ReadBool(g, "seq", where, &d.seq));
    RETURN_IF_ERROR(ReadBool(g, "sent_at", where, &d.sent_at));
    RETURN_IF_ERROR(ReadDuration(g, "period", where, &d.period_ms));
    RETURN_IF_ERROR(ReadDuration(g, "clock_skew", where, &d.clock_skew_ms));
    RETURN_IF_ERROR(ReadNumber(g, "duplicates", where, &d.duplicates));
    if (d.duplicates < 0 || d.duplicates > 1) {
      return InvalidArgument(where + "/duplicates: a probability from 0 to 1");
    }
    if (d.count < 1) return InvalidArgument(where + "/count: at least 1");
    if (d.period_ms < 1) return InvalidArgument(where + "/period: must be positive");
    if (d.format != "json" && d.format != "flatbuffers") {
      return InvalidArgument(where + "/format: \"json\" or \"flatbuffers\"");
    }
    RETURN_IF_ERROR(ReadNumber(g, "clock_drift_ppm", where, &d.clock_drift_ppm));
    RETURN_IF_ERROR(ReadDuration(g, "jitter", where, &d.jitter_ms));
    RETURN_IF_ERROR(ReadInt(g, "batch", where, &d.batch));
    RETURN_IF_ERROR(ReadInt(g, "buffer", where, &d.buffer));
    if (d.batch < 1) return InvalidArgument(where + "/batch: at least 1");
    if (d.buffer < 0) return InvalidArgument(where + "/buffer: 0 or more readings");
    if (auto st = g.find("status"); st != g.end()) {
      if (!st->is_object() || !st->contains("topic") || !(*st)["topic"].is_string()) {
        return InvalidArgument(where + "/status: an object with a \"topic\"");
      }
      d.status.topic = (*st)["topic"].get<std::string>();
      RETURN_IF_ERROR(ReadString(*st, "online", where + "/status", &d.status.online));
      RETURN_IF_ERROR(ReadString(*st, "offline", where + "/status", &d.status.offline));
    }
    if (auto ds = g.find("disconnects"); ds != g.end()) {
      if (!ds->is_array()) return InvalidArgument(where + "/disconnects: an array");
      for (size_t k = 0; k < ds->size(); ++k) {
        const Json& dj = (*ds)[k];
        std::string dw = where + "/disconnects/" + std::to_string(k);
        if (!dj.is_object()) return InvalidArgument(dw + ": an object");
        Disconnect dc;
        RETURN_IF_ERROR(ReadDuration(dj, "at", dw, &dc.at_ms));
        RETURN_IF_ERROR(ReadDuration(dj, "for", dw, &dc.for_ms));
        RETURN_IF_ERROR(ReadNumber(dj, "fraction", dw, &dc.fraction));
        if (dc.for_ms <= 0) return InvalidArgument(dw + "/for: a positive duration");
        if (dc.fraction < 0 || dc.fraction > 1) {
          return InvalidArgument(dw + "/fraction: from 0 to 1");
        }
        d.disconnects.push_back(dc);
      }
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
