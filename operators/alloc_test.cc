// The hot path allocates nothing once the pools have grown to the working
// set: global operator new is replaced here to count allocations while a
// steady fleet keeps reading, firing, revising and purging.
#include <execinfo.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "operators/fleet.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1);
    if (std::getenv("WEIR_ALLOC_TRACE") && g_allocations.load() % 1 == 0) {
      g_counting = false;
      void* frames[12];
      int k = backtrace(frames, 12);
      backtrace_symbols_fd(frames, k, 2);
      write(2, "--\n", 3);
      g_counting = true;
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace weir::testing {
namespace {

class CountingOutput : public EngineOutput {
 public:
  void OnResult(int, const ResultRecord& r) override { results += 1 + (r.rev > 0); }
  void OnLateSide(int, const Reading&, int64_t) override { ++side; }
  long results = 0;
  long side = 0;
};

TEST(Allocation, SteadyStateReadingsAllocateNothing) {
  const int kDevices = 40;
  Config c = FleetConfig();
  // Warm-up plays the fleet once; the measured run plays the same fleet again
  // three days later (a multiple of every window size, so the engine sees the
  // same working set): same devices and keys, and late readings, revisions,
  // session merges, statuses and idleness all happening again.
  std::vector<FleetEvent> events = MakeFleet(7, kDevices, 150000);
  FleetPlayer player(c, kDevices);
  auto engine = std::move(Engine::Create(c)).value();
  CountingOutput out;
  player.Play(*engine, events, 0, events.size(), &out);
  engine->Drain(&out);
  const int64_t kShift = 3 * 24 * 3600000LL;
  for (FleetEvent& e : events) {
    e.now += kShift;
    e.ts += kShift;
  }
  long results_before = out.results;

  g_allocations = 0;
  g_counting = true;
  player.Play(*engine, events, 0, events.size(), &out);
  g_counting = false;

  EXPECT_GT(out.results - results_before, 1000);  // the engine did real work meanwhile
  EXPECT_EQ(g_allocations.load(), 0);
}

// The figure: a million readings after warm-up, 10k devices keyed by
// device into 10 s tumbling windows (every device fires a window every 10
// rounds), and not one allocation.
TEST(Allocation, MillionReadingsTumbling10kKeysAllocateNothing) {
  const int kDevices = 10000;
  Config c = ExampleConfig();
  PipelineConfig p = ExamplePipeline({"device"});
  p.window.size_ms = 10000;
  // Windows are purged as they fire, so the working set stays the same
  // (with allowed_lateness they would be kept, and the pools would grow).
  p.event_time.allowed_lateness_ms = 0;
  p.aggregates = {Agg("n", AggregateKind::kCount, "*"), Agg("avg", AggregateKind::kAvg, "temp"),
                  Agg("max", AggregateKind::kMax, "temp"),
                  Agg("p95", AggregateKind::kQuantile, "temp", 0.95)};
  c.pipelines = {p};
  std::vector<std::string> names;
  for (int d = 0; d < kDevices; ++d) names.push_back("dev" + std::to_string(d));
  auto engine = std::move(Engine::Create(c)).value();
  CountingOutput out;
  Reading r;
  int64_t round = 0;
  auto play = [&](int rounds) {
    for (int i = 0; i < rounds; ++i, ++round) {
      const int64_t ts = 1700000000000 + round * 1000;
      for (int d = 0; d < kDevices; ++d) {
        r.device = names[d];
        r.ts_ms = ts;
        r.field_mask = 0;
        r.SetField(0, 20.0 + (d % 17) * 0.25 + (round % 7));
        engine->OnReading(r, ts + 5, &out);
      }
      engine->AdvanceTo(ts + 10, &out);
    }
  };
  play(30);  // warm-up: every key, window and sketch pool at its working size
  long results_before = out.results;
  g_allocations = 0;
  g_counting = true;
  play(100);  // 1,000,000 readings
  g_counting = false;
  EXPECT_GE(out.results - results_before, 9 * kDevices);
  EXPECT_EQ(g_allocations.load(), 0);
}

}  // namespace
}  // namespace weir::testing
