// ResultRecord: one emitted result or retraction (DESIGN 5.7), and its JSON.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace weir {

struct ResultValue {
  std::string name;
  bool is_null = false;  // an aggregate that saw no values (count is 0 instead)
  double value = 0;
};

struct ResultRecord {
  std::string id;  // gateway/pipeline[~g]/key,values/start (percent-encoded parts)
  int64_t rev = 0;
  bool retracted = false;  // a retraction carries only id, rev, retracted

  std::string pipeline;  // bare pipeline name (no ~generation)
  std::vector<std::pair<std::string, std::string>> key;  // attribute name -> key text
  int64_t start = 0;
  int64_t end = 0;
  int64_t count = 0;
  bool has_duration = false;  // sessions only
  int64_t duration_ms = 0;
  std::vector<ResultValue> values;  // in the config's aggregate order
};

// Appends the result's JSON object (no trailing newline) to *out. Numbers use
// the shortest round-trip form, so equal input gives byte-identical output.
void AppendResultJson(const ResultRecord& r, std::string* out);
std::string ResultJson(const ResultRecord& r);

}  // namespace weir
