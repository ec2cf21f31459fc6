// libFuzzer target for the config parser (outside input: a user's file).
// Beyond not crashing, it checks the parser's contract: a rejected config has
// at least one error, an accepted one none, every pointer is a JSON pointer,
// and the fingerprint is a pure function of the text.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<weir::ConfigError> errors;
  auto config = weir::ParseConfig(text, &errors);
  if (config.has_value() != errors.empty()) std::abort();
  for (const weir::ConfigError& e : errors)
    if (!e.pointer.empty() && e.pointer[0] != '/') std::abort();
  if (config) {
    std::vector<weir::ConfigError> again;
    auto second = weir::ParseConfig(text, &again);
    if (!second || second->pipelines.size() != config->pipelines.size()) std::abort();
    for (size_t i = 0; i < config->pipelines.size(); ++i)
      if (second->pipelines[i].fingerprint != config->pipelines[i].fingerprint) std::abort();
  }
  return 0;
}
