// The memory budget's structure (runtime/memory_budget.h): which keys,
// windows and messages it counts for a config. Expected counts are worked
// out by hand from DESIGN 4 and 6.3; the byte sizes are checked against
// measured RSS by tests/ops/memory_budget_test.py.
#include "runtime/memory_budget.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir {
namespace {

Config Parse(const std::string& pipeline, const std::string& extra = "") {
  std::string text = R"({"gateway": "gw",
    "source": {"broker": "tcp://127.0.0.1:1", "topics": [{"topic": "s/{device}/{room}/data"}],
               "fields": {"temp": "/temp"}, "max_devices": 500},
    "pipelines": [)" + pipeline + "]" + extra + "}";
  std::vector<ConfigError> errors;
  auto c = ParseConfig(text, &errors);
  EXPECT_TRUE(c.has_value()) << (errors.empty() ? text : errors[0].message);
  return c.value_or(Config());
}

TEST(MemoryBudget, KeysFollowTheKeyAndTheLimits) {
  // key [device]: no more keys than devices (500), whatever max_keys says.
  Config c = Parse(R"({"name": "a", "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"n": {"count": "*"}}, "limits": {"max_keys": 2000}},
                      {"name": "b", "key": [], "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"n": {"count": "*"}}},
                      {"name": "c", "key": ["room"], "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"n": {"count": "*"}}, "limits": {"max_keys": 50}})");
  MemoryBudget b = ComputeMemoryBudget(c);
  ASSERT_EQ(b.per_pipeline.size(), 3u);
  EXPECT_EQ(b.per_pipeline[0].keys, 500);
  EXPECT_EQ(b.per_pipeline[1].keys, 1);   // key []: all devices together
  EXPECT_EQ(b.per_pipeline[2].keys, 50);  // beyond max_keys keys are spilled
}

TEST(MemoryBudget, WindowsPerKey) {
  // Tumbling 1m, no out-of-orderness or lateness: one window per key.
  // Hopping 1m every 15s: a reading is in 4 windows; 20s of out-of-orderness
  // keeps ceil(20/15) = 2 more open; 1m of lateness keeps 4 fired ones.
  // Session with lateness: open, just closed, kept.
  Config c = Parse(R"({"name": "t", "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"n": {"count": "*"}}},
                      {"name": "h", "window": {"type": "hopping", "size": "1m", "hop": "15s"},
                       "aggregates": {"n": {"count": "*"}},
                       "event_time": {"max_out_of_orderness": "20s", "allowed_lateness": "1m"}},
                      {"name": "s", "window": {"type": "session", "gap": "30s"},
                       "aggregates": {"n": {"count": "*"}},
                       "event_time": {"allowed_lateness": "1m"}})");
  MemoryBudget b = ComputeMemoryBudget(c);
  ASSERT_EQ(b.per_pipeline.size(), 3u);
  EXPECT_EQ(b.per_pipeline[0].windows_per_key, 1);
  EXPECT_EQ(b.per_pipeline[1].windows_per_key, 4 + 2 + 4);
  EXPECT_EQ(b.per_pipeline[2].windows_per_key, 3);
}

TEST(MemoryBudget, PartsAddUpAndGrowWithTheConfig) {
  const std::string p = R"({"name": "a", "window": {"type": "tumbling", "size": "1m"},
                            "aggregates": {"n": {"count": "*"}}})";
  MemoryBudget small = ComputeMemoryBudget(Parse(p));
  EXPECT_EQ(small.total, small.fixed + small.pipelines + small.devices + small.messages +
                             small.commit + small.sqlite);
  // A quantile carries a sketch in every window.
  MemoryBudget q = ComputeMemoryBudget(
      Parse(R"({"name": "a", "window": {"type": "tumbling", "size": "1m"},
                "aggregates": {"n": {"count": "*"}, "p": {"quantile": "temp", "q": 0.5}}})"));
  EXPECT_GT(q.per_pipeline[0].window_bytes, small.per_pipeline[0].window_bytes + 80);
  // Durability batch holds two group commits' messages besides the queue.
  MemoryBudget batch = ComputeMemoryBudget(Parse(p, R"(, "ingest": {"durability": "batch"})"));
  EXPECT_GT(batch.messages, small.messages);
  // A bigger queue holds more messages.
  MemoryBudget queue =
      ComputeMemoryBudget(Parse(p, R"(, "ingest": {"queue_capacity": 20000})"));
  EXPECT_GT(queue.messages, small.messages);
}

TEST(MemoryBudget, PendingMessagesFloor) {
  Config c = Parse(R"({"name": "a", "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"n": {"count": "*"}}})",
                   R"(, "ingest": {"queue_capacity": 8})");
  // A tiny queue must not throttle batch mode to a message per commit.
  EXPECT_EQ(MaxPendingMessages(c), 4096);
}

}  // namespace
}  // namespace weir
