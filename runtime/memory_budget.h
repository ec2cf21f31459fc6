// The memory `weir run` needs for a config (DESIGN 3, issue 9): what `weir
// validate` prints and checks against --memory. Every part is an upper bound
// of what the daemon allocates for that config, built from the sizes of its
// tables and buffers (operators/engine.cc, ingest/dedup.cc, runtime/daemon.cc,
// storage/) and one measured constant, the process's fixed overhead.
// tests/ops/memory_budget_test.py runs `weir run` at 1k and 10k keys and
// checks peak RSS <= budget <= 2 x peak RSS (measured on amd64: budget/RSS
// 1.2 at 1k keys, 1.4 at 10k, 1.95 at 100k, in runs where no window fires:
// the budget also holds a commit in which every key fires).
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"

namespace weir {

// With durability batch, `weir run` pauses taking messages off the queue
// while this many processed messages wait for their group commit (they are in
// memory until it is through).
inline int64_t MaxPendingMessages(const Config& config) {
  return config.ingest.queue_capacity > 4096 ? config.ingest.queue_capacity : 4096;
}

struct PipelineMemory {
  int64_t keys = 0;             // keys held in memory at most (beyond: spilled)
  int64_t windows_per_key = 0;  // open, plus fired ones kept for allowed_lateness
  int64_t window_bytes = 0;     // one window with its aggregate slots
  int64_t bytes = 0;            // the pipeline's state tables, with pool growth
};

struct MemoryBudget {
  int64_t fixed = 0;      // binary, shared libraries, threads, parsers (measured)
  int64_t pipelines = 0;  // sum of PipelineMemory::bytes
  int64_t devices = 0;    // per-device watermarks and dedup
  int64_t messages = 0;   // ingest queue and messages between group commits
  int64_t commit = 0;     // one group commit: checkpoint rows and results
  int64_t sqlite = 0;     // page caches and connection overhead
  int64_t total = 0;
  std::vector<PipelineMemory> per_pipeline;  // parallel to config.pipelines
};

MemoryBudget ComputeMemoryBudget(const Config& config);

}  // namespace weir
