// weir-sim as a user runs it: against a real Mosquitto, repeatable for a
// seed, with complete --record/--truth files whether it ends by duration or
// by SIGTERM.
#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "tests/mqtt/test_process.h"

namespace weir {
namespace {

using testing::ChildProcess;
using testing::ReadFile;
using testing::TestBroker;
using testing::WaitFor;

// `complete`: the file is closed, so its last line must end in a newline.
std::vector<std::string> Lines(const std::string& text, bool complete = true) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (complete) {
    EXPECT_EQ(start, text.size()) << "last line is not complete";
  }
  return out;
}

class WeirSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.Start());
    dir_ = testing::MakeTempDir("weir-sim-it-");
    scenario_ = dir_ + "/scenario.json";
    std::ofstream(scenario_) << R"({"duration": "1h", "groups": [{"count": 2, "id": "s{n}",
        "topic": "sensors/{device}/telemetry", "period": "1s",
        "fields": {"t": {"model": "sine", "mean": 20, "amplitude": 2, "period": "1m", "noise": 0.1},
                   "h": {"model": "random_walk", "start": 50, "step": 1}}}]})";
  }
  std::vector<std::string> SimArgs(const std::string& tag, const std::vector<std::string>& extra) {
    std::vector<std::string> a = {std::string(WEIR_BIN_DIR) + "/weir-sim",
                                  "--broker",
                                  broker_.uri(),
                                  "--scenario",
                                  scenario_,
                                  "--seed",
                                  "5",
                                  "--start",
                                  "1700000000000",
                                  "--record",
                                  dir_ + "/" + tag + ".record",
                                  "--truth",
                                  dir_ + "/" + tag + ".truth"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  TestBroker broker_;
  std::string dir_;
  std::string scenario_;
};

TEST_F(WeirSimTest, RunsForTheDurationPublishesEveryReadingAndRepeatsForASeed) {
  std::atomic<int> received{0};
  mqtt::async_client sub(broker_.uri(), "sim-test-sub", nullptr);
  sub.set_message_callback([&](mqtt::const_message_ptr) { ++received; });
  sub.connect()->wait();
  sub.subscribe("sensors/+/telemetry", 1)->wait();

  for (const std::string tag : {"a", "b"}) {
    ChildProcess sim;
    // 30 s of simulated time at 1000x: 2 devices x 30 readings.
    ASSERT_TRUE(sim.Start(SimArgs(tag, {"--time-scale", "1000x", "--duration", "30s"}),
                          dir_ + "/" + tag + ".out", dir_ + "/" + tag + ".err"));
    ASSERT_EQ(sim.Wait(30000), 0) << ReadFile(dir_ + "/" + tag + ".err");
  }
  ASSERT_TRUE(WaitFor([&] { return received == 120; }, 10000)) << received;
  sub.disconnect()->wait();

  std::string record = ReadFile(dir_ + "/a.record");
  EXPECT_EQ(record, ReadFile(dir_ + "/b.record"));
  EXPECT_EQ(ReadFile(dir_ + "/a.truth"), ReadFile(dir_ + "/b.truth"));
  auto lines = Lines(record);
  ASSERT_EQ(lines.size(), 60u);
  int64_t prev_t = 0;
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line);
    int64_t t = j.at("t").get<int64_t>();
    EXPECT_GE(t, prev_t);
    EXPECT_GE(t, 1700000000000);
    EXPECT_LT(t, 1700000030000);
    prev_t = t;
    const auto& p = j.at("payload");
    EXPECT_EQ(p.at("ts").get<int64_t>(), t);
    EXPECT_EQ(p.at("sent_at").get<int64_t>(), t);
    EXPECT_TRUE(p.at("t").is_number());
    EXPECT_TRUE(p.at("h").is_number());
    std::string topic = j.at("topic").get<std::string>();
    EXPECT_TRUE(topic == "sensors/s1/telemetry" || topic == "sensors/s2/telemetry") << topic;
  }
  EXPECT_EQ(Lines(ReadFile(dir_ + "/a.truth")).size(), 60u);
}

TEST_F(WeirSimTest, SigtermLeavesCompleteFilesAndExitsZero) {
  ChildProcess sim;
  ASSERT_TRUE(sim.Start(SimArgs("t", {"--time-scale", "20"}), dir_ + "/t.out", dir_ + "/t.err"));
  ASSERT_TRUE(
      WaitFor([&] { return Lines(ReadFile(dir_ + "/t.record"), false).size() >= 10; }, 20000));
  sim.Signal(SIGTERM);
  ASSERT_EQ(sim.Wait(20000), 0);
  auto record = Lines(ReadFile(dir_ + "/t.record"));
  // The truth lists every reading made; one made but not yet sent when the
  // signal came is marked "unsent" (tools/sim/README.md) and is not recorded.
  size_t sent = 0;
  for (const auto& line : Lines(ReadFile(dir_ + "/t.truth"))) {
    auto j = nlohmann::json::parse(line);
    if (!j.value("unsent", false) && !j.value("dropped", false)) ++sent;
  }
  EXPECT_EQ(record.size(), sent);
  for (const auto& line : record) EXPECT_NO_THROW(nlohmann::json::parse(line)) << line;
}

}  // namespace
}  // namespace weir
