// The config key table: every key of DESIGN section 4 declared once. The
// parser (config.cc) walks a config against it; the JSON Schema in configs/
// and the reference in docs/config.md are generated from it, so there is no
// second list to keep in sync.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace weir {

enum class KeyType {
  kObject,     // fixed members, each declared as its own row
  kMap,        // free member names (fields, tags, aggregates, where); members are "<pattern>/*"
  kArray,      // items are "<pattern>/*"
  kTimestamp,  // an object with declared members, or the string "received"
  kString,
  kName,     // [A-Za-z0-9_.-]{1,64}
  kPointer,  // a JSON pointer: "" or "/a/b" (with ~0 ~1 escapes)
  kTopic,    // MQTT topic template: "{name}" captures a whole level, "#" only last
  kInteger,
  kNumber,
  kNumberOrString,
  kDuration,  // "250ms", "10s", "5m", "2h", "1d" or integer milliseconds
  kSize,      // "64KB", "256MB", "1GB" or integer bytes
  kRate,      // "2000/s", "100/m", "10/h" or a number per second
  kEnum,
};

struct ConfigKey {
  const char* pattern;  // JSON pointer pattern; "*" stands for any member or item
  KeyType type;
  bool required;             // required whenever its parent is present
  const char* default_json;  // JSON text of the default; nullptr: none (see default_note)
  const char* default_note;  // for computed or absent defaults, shown in the reference
  double min;                // numbers: inclusive lower bound; durations in ms, sizes in bytes
  double max;                // inclusive upper bound
  bool exclusive;            // bounds are exclusive (quantile's q in (0,1))
  const char* choices;       // kEnum: values separated by '|'
  const char* help;
};

// All rows, parents before children.
const std::vector<ConfigKey>& ConfigKeys();

// The row for a pattern such as "/pipelines/*/window/size"; nullptr when none.
const ConfigKey* FindConfigKey(std::string_view pattern);

// The last segments of the rows directly below `pattern` (for did-you-mean hints).
std::vector<std::string> ChildKeyNames(std::string_view pattern);

// configs/weir.schema.json and docs/config.md, generated from the table.
std::string GenerateConfigSchema();
std::string GenerateConfigReference();

}  // namespace weir
