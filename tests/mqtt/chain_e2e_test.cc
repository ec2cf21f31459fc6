// The demo chain end to end: weir-sim -> Mosquitto -> weir run -> Mosquitto
// -> weir-sink -> SQLite. The expected windows are computed here from the
// simulator's --truth file (DESIGN 4 and 5: tumbling 10 s windows aligned to
// the epoch, per device, max_out_of_orderness 0, so a device's window
// [s, e) has fired once that device sent a reading with ts >= e).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/mqtt/test_process.h"

namespace weir {
namespace {

using testing::ChildProcess;
using testing::ReadFile;
using testing::TestBroker;
using testing::WaitFor;

struct Window {
  int64_t count = 0;
  double sum = 0;
  double max = -INFINITY;
};

int64_t CountRows(const std::string& db_path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM weir_results", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

std::map<std::string, std::string> ReadResults(const std::string& db_path) {
  std::map<std::string, std::string> out;
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT id, result FROM weir_results", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] =
        reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// Runs the chain; with `kill_weir`, weir is killed with SIGKILL while the
// simulator is publishing and started again on the same database.
void RunChain(bool kill_weir) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::string dir = testing::MakeTempDir("weir-chain-");
  std::string bin = WEIR_BIN_DIR;
  std::ofstream(dir + "/scenario.json") << R"({"groups": [{"count": 4, "id": "d{n}",
      "topic": "sensors/{device}/telemetry", "period": "1s",
      "fields": {"t": {"model": "sine", "mean": 21, "amplitude": 3, "period": "2m", "noise": 0.2},
                 "h": {"model": "random_walk", "start": 45, "step": 0.5}}}]})";
  std::ofstream(dir + "/config.json") << R"({"gateway": "e2e",
      "source": {"broker": ")" << broker.uri()
                                      << R"(",
                 "topics": [{"topic": "sensors/{device}/telemetry"}],
                 "seq": "/seq", "sent_at": "/sent_at", "fields": {"temp": "/t", "hum": "/h"}},
      "pipelines": [{"name": "climate", "window": {"type": "tumbling", "size": "10s"},
                     "aggregates": {"n": {"count": "*"}, "temp_avg": {"avg": "temp"},
                                    "temp_max": {"max": "temp"}}}],
      "storage": {"path": ")" << dir << R"(/weir.db"},
      "uplink": {"broker": ")" << broker.uri()
                                      << R"(", "batch_max": 10}})";

  ChildProcess sink, weir, sim;
  ASSERT_TRUE(sink.Start({bin + "/weir-sink", "--broker", broker.uri(), "--topic", "weir/#", "--db",
                          dir + "/results.db", "--client-id", "chain-sink"},
                         dir + "/sink.out", dir + "/sink.err"));
  ASSERT_TRUE(sink.WaitForOutput("subscribed to", 10000, true));
  ASSERT_TRUE(weir.Start({bin + "/weir", "run", dir + "/config.json"}, dir + "/weir.out",
                         dir + "/weir.err"));
  ASSERT_TRUE(weir.WaitForOutput("source: connected", 15000, true)) << ReadFile(dir + "/weir.err");
  // 95 s of simulated time from an aligned start, 20x faster than real time.
  ASSERT_TRUE(
      sim.Start({bin + "/weir-sim", "--broker", broker.uri(), "--scenario", dir + "/scenario.json",
                 "--seed", "11", "--start", "1700000000000", "--time-scale", "20", "--duration",
                 "95s", "--truth", dir + "/truth.jsonl"},
                dir + "/sim.out", dir + "/sim.err"));
  if (kill_weir) {
    // Mid-stream: once the sink stored some results, at no chosen message.
    ASSERT_TRUE(WaitFor([&] { return CountRows(dir + "/results.db") >= 8; }, 30000));
    weir.Signal(SIGKILL);
    ASSERT_EQ(weir.Wait(10000), 128 + SIGKILL);
    ASSERT_TRUE(weir.Start({bin + "/weir", "run", dir + "/config.json"}, dir + "/weir.out",
                           dir + "/weir.err"));
  }
  ASSERT_EQ(sim.Wait(60000), 0) << ReadFile(dir + "/sim.err");

  // Expected windows from the truth.
  std::map<std::string, int64_t> last_ts;
  std::map<std::pair<std::string, int64_t>, Window> windows;
  std::ifstream truth(dir + "/truth.jsonl");
  std::string line;
  while (std::getline(truth, line)) {
    auto j = nlohmann::json::parse(line);
    std::string device = j["device"];
    int64_t ts = j["ts"];
    double t = j["values"]["t"];
    last_ts[device] = std::max(last_ts[device], ts);
    Window& w = windows[{device, ts - ts % 10000}];
    ++w.count;
    w.sum += t;
    w.max = std::max(w.max, t);
  }
  ASSERT_EQ(last_ts.size(), 4u);
  std::map<std::string, Window> expected;
  for (const auto& [key, w] : windows) {
    if (key.second + 10000 <= last_ts[key.first]) {
      expected["e2e/climate/" + key.first + "/" + std::to_string(key.second)] = w;
    }
  }
  ASSERT_GE(expected.size(), 4u * 8);

  ASSERT_TRUE(WaitFor(
      [&] { return CountRows(dir + "/results.db") >= static_cast<int64_t>(expected.size()); },
      30000))
      << CountRows(dir + "/results.db") << " of " << expected.size() << "\n"
      << ReadFile(dir + "/weir.err");
  weir.Signal(SIGTERM);
  EXPECT_EQ(weir.Wait(20000), 0);
  sink.Signal(SIGTERM);
  EXPECT_EQ(sink.Wait(20000), 0);

  auto got = ReadResults(dir + "/results.db");
  EXPECT_EQ(got.size(), expected.size());
  for (const auto& [id, w] : expected) {
    auto it = got.find(id);
    ASSERT_NE(it, got.end()) << id;
    auto r = nlohmann::json::parse(it->second);
    EXPECT_EQ(r["rev"], 0) << id;
    EXPECT_EQ(r["count"], w.count) << id;
    EXPECT_EQ(r["values"]["n"].get<double>(), w.count) << id;
    double avg = w.sum / w.count;
    EXPECT_NEAR(r["values"]["temp_avg"].get<double>(), avg, 1e-9 * std::max(1.0, std::abs(avg)))
        << id;
    EXPECT_EQ(r["values"]["temp_max"].get<double>(), w.max) << id;
  }
}

TEST(ChainE2eTest, SimWeirSinkResultsMatchTheTruth) { RunChain(false); }

// DESIGN 6.2/6.3: readings are journaled before the broker's PUBACK and the
// outbox survives, so a weir killed at any moment loses no window and
// changes no id: the final table is the same as without the kill.
TEST(ChainE2eTest, KilledWeirLosesNothingAfterRestart) { RunChain(true); }

}  // namespace
}  // namespace weir
