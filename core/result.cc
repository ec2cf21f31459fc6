#include "core/result.h"

#include "core/text.h"

namespace weir {

void AppendResultJson(const ResultRecord& r, std::string* out) {
  out->append("{\"id\":");
  AppendJsonString(r.id, out);
  out->append(",\"rev\":");
  AppendInt(r.rev, out);
  if (r.retracted) {
    out->append(",\"retracted\":true}");
    return;
  }
  out->append(",\"pipeline\":");
  AppendJsonString(r.pipeline, out);
  out->append(",\"key\":{");
  bool first = true;
  for (const auto& [name, text] : r.key) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(name, out);
    out->push_back(':');
    AppendJsonString(text, out);
  }
  out->append("},\"start\":");
  AppendInt(r.start, out);
  out->append(",\"end\":");
  AppendInt(r.end, out);
  out->append(",\"count\":");
  AppendInt(r.count, out);
  if (r.has_duration) {
    out->append(",\"duration_ms\":");
    AppendInt(r.duration_ms, out);
  }
  out->append(",\"values\":{");
  first = true;
  for (const auto& v : r.values) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(v.name, out);
    out->push_back(':');
    if (v.is_null) {
      out->append("null");
    } else {
      AppendDouble(v.value, out);
    }
  }
  out->append("}}");
}

std::string ResultJson(const ResultRecord& r) {
  std::string s;
  AppendResultJson(r, &s);
  return s;
}

}  // namespace weir
