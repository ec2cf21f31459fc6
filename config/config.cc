// Placeholder: the config key table and parser land here (issue 3).
#include "config/config.h"

namespace weir {

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

std::optional<Config> ParseConfig(std::string_view, std::vector<ConfigError>* errors, bool) {
  errors->push_back({"", "config parsing is not implemented yet", ""});
  return std::nullopt;
}

std::optional<Config> LoadConfigFile(const std::string&, std::vector<ConfigError>* errors, bool) {
  errors->push_back({"", "config parsing is not implemented yet", ""});
  return std::nullopt;
}

std::string FormatConfigErrors(const std::string&, const std::vector<ConfigError>&) { return ""; }
std::optional<int64_t> ParseDurationMs(std::string_view) { return std::nullopt; }
std::optional<int64_t> ParseSizeBytes(std::string_view) { return std::nullopt; }

}  // namespace weir
