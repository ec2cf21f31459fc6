// Placeholder until the engine lands.
#include "operators/engine.h"

namespace weir {
Result<std::unique_ptr<Engine>> Engine::Create(const Config&, const std::vector<int64_t>&) {
  return Internal("engine not implemented yet");
}
}  // namespace weir
