// For operators/ tests only.
#pragma once

#include "operators/engine.h"

namespace weir {

// As Engine::Create; with `exhaustive`, every step rescans every device and
// key instead of using the incremental bookkeeping (minimum tracker, key
// deadlines, idle deadlines), so tests can check that bookkeeping against
// the plain reading of DESIGN 5.
Result<std::unique_ptr<Engine>> CreateEngine(const Config& config,
                                             const std::vector<int64_t>& generations,
                                             bool exhaustive);

}  // namespace weir
