// The operator Engine alone, on pre-decoded Readings: what weir's event-time
// core costs per reading with no JSON, no broker and no SQLite in the way.
// Global operator new is replaced to count allocations per reading, so the
// report can say whether the hot path allocates.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/reading.h"
#include "operators/engine.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace weir {
namespace {

class CountingOutput : public EngineOutput {
 public:
  void OnResult(int, const ResultRecord&) override { ++results; }
  long results = 0;
};

// The same pipeline shape as the replay benchmark: per-device count, avg, max.
std::string ConfigText(const std::string& window) {
  return R"({"gateway": "gw",
  "source": {"broker": "tcp://127.0.0.1:1883",
             "topics": [{"topic": "s/{device}/data", "format": "json"}],
             "fields": {"temp": "/temp"}},
  "pipelines": [{"name": "p", "key": ["device"], "window": )" +
         window + R"(,
    "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"}, "t_max": {"max": "temp"}}}]})";
}

std::string WindowFor(int kind) {
  switch (kind) {
    case 0: return R"({"type": "tumbling", "size": "1m"})";
    case 1: return R"({"type": "hopping", "size": "1m", "hop": "15s"})";
    default: return R"({"type": "session", "gap": "30s"})";
  }
}

// Each device sends one reading per second in event time, devices round-robin,
// as a fleet reporting in lockstep would, with a silent minute after every
// minute; processing time follows event time.
void BM_Engine(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  const int keys = static_cast<int>(state.range(1));
  std::vector<ConfigError> errors;
  auto config = ParseConfig(ConfigText(WindowFor(kind)), &errors);
  if (!config) {
    state.SkipWithError("config rejected");
    return;
  }
  auto created = Engine::Create(*config);
  if (!created.ok()) {
    state.SkipWithError("engine not created");
    return;
  }
  std::unique_ptr<Engine> engine = std::move(created).value();
  std::vector<std::string> names;
  names.reserve(keys);
  for (int i = 0; i < keys; ++i) names.push_back("dev-" + std::to_string(i));
  const int temp = config->FieldIndex("temp");
  CountingOutput out;
  Reading r;
  int64_t i = 0;
  auto step = [&] {
    // After every minute of readings the fleet is silent for a minute, so
    // sessions (30 s gap) close and fire too.
    const int64_t second = i / keys + (i / keys / 60) * 60;
    r.device = names[i % keys];
    r.ts_ms = 1700000000000 + second * 1000;
    r.field_mask = 0;
    r.SetField(temp, 20.0 + static_cast<double>(i % 97) * 0.1);
    if (i % keys == 0) engine->AdvanceTo(r.ts_ms, &out);
    engine->OnReading(r, r.ts_ms, &out);
    ++i;
  };
  // Warm-up: two minutes of event time, so every key exists and windows have
  // fired and been purged at least once before counting.
  const int64_t warm = static_cast<int64_t>(keys) * 120;
  while (i < warm) step();
  const long allocs_before = g_allocations.load();
  const int64_t first = i;
  for (auto _ : state) step();
  const int64_t n = i - first;
  const long allocs = g_allocations.load() - allocs_before;
  state.SetItemsProcessed(n);
  state.counters["allocs_per_reading"] =
      n ? static_cast<double>(allocs) / static_cast<double>(n) : 0.0;
  state.counters["results"] = static_cast<double>(out.results);
}

BENCHMARK(BM_Engine)
    ->ArgNames({"window", "keys"})
    ->Args({0, 1000})
    ->Args({0, 10000})
    ->Args({0, 100000})
    ->Args({1, 10000})
    ->Args({2, 10000});

}  // namespace
}  // namespace weir

BENCHMARK_MAIN();
