#include "runtime/processor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir {
namespace {

// Records the engine calls a processor makes, as text.
class RecordingEngine : public Engine {
 public:
  explicit RecordingEngine(std::vector<std::string>* log) : log_(log) {}
  bool AdvanceTo(int64_t now_ms, EngineOutput*) override {
    log_->push_back("advance " + std::to_string(now_ms));
    return false;
  }
  void OnStatus(std::string_view device, bool online, int64_t now_ms, EngineOutput*) override {
    log_->push_back("status " + std::string(device) + (online ? " online " : " offline ") +
                    std::to_string(now_ms));
  }
  void OnReading(const Reading& r, int64_t now_ms, EngineOutput*) override {
    log_->push_back("reading " + std::string(r.device) + " ts=" + std::to_string(r.ts_ms) +
                    " at " + std::to_string(now_ms));
  }
  void Drain(EngineOutput*) override { log_->push_back("drain"); }
  void CollectChanges(StateWriter*) override {}
  Status Restore(StateReader*) override { return Status::Ok(); }
  const PipelineCounters& counters(int) const override { return counters_; }

 private:
  std::vector<std::string>* log_;
  PipelineCounters counters_;
};

class NullOutput : public EngineOutput {
 public:
  void OnResult(int, const ResultRecord&) override {}
};

Config ExampleConfig() {
  Config c;
  c.gateway = "gw";
  c.source.topics = {{"s/{site}/{device}/data", PayloadFormat::kJson}};
  c.source.status.enabled = true;
  c.source.status.topic = "s/{site}/{device}/status";
  c.source.seq = "/seq";
  c.source.fields = {{"temp", "/temp"}};
  c.attributes = {"site"};
  return c;
}

class ProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(ExampleConfig()); }
  void Make(const Config& c) {
    log_.clear();
    auto p = MessageProcessor::Create(c, std::make_unique<RecordingEngine>(&log_));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    p_ = std::move(p.value());
  }
  const MessageOutcome& Send(int64_t t, std::string topic, std::string payload) {
    Message m;
    m.arrival_ms = t;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    return p_->Process(m, &out_);
  }

  std::vector<std::string> log_;
  std::unique_ptr<MessageProcessor> p_;
  NullOutput out_;
};

TEST_F(ProcessorTest, AdvanceThenEachReadingInOrder) {
  Send(1000, "s/a/d1/data", R"([{"ts":5},{"ts":3}])");
  EXPECT_EQ(log_, (std::vector<std::string>{"advance 1000", "reading d1 ts=5 at 1000",
                                            "reading d1 ts=3 at 1000"}));
}

TEST_F(ProcessorTest, DuplicatesAndMalformedNeverReachTheEngine) {
  Send(1000, "s/a/d1/data", R"({"ts":1,"seq":1})");
  log_.clear();
  const MessageOutcome& dup = Send(2000, "s/a/d1/data", R"({"ts":1,"seq":1})");
  EXPECT_EQ(dup.duplicates, 1);
  EXPECT_EQ(dup.readings, 0);
  const MessageOutcome& bad = Send(3000, "s/a/d1/data", "garbage");
  EXPECT_EQ(bad.rejected, 1);
  EXPECT_EQ(bad.first_reject, RejectReason::kBadJson);
  // Time still advances for every message; nothing else happens.
  EXPECT_EQ(log_, (std::vector<std::string>{"advance 2000", "advance 3000"}));
  IngestCounters c = p_->counters();
  EXPECT_EQ(c.messages, 3);
  EXPECT_EQ(c.readings, 1);
  EXPECT_EQ(c.duplicates, 1);
  EXPECT_EQ(c.rejected[static_cast<int>(RejectReason::kBadJson)], 1);
}

TEST_F(ProcessorTest, DedupWithinAnArray) {
  Send(1000, "s/a/d1/data", R"([{"ts":1,"seq":1},{"ts":1,"seq":1},{"ts":2,"seq":2}])");
  EXPECT_EQ(log_, (std::vector<std::string>{"advance 1000", "reading d1 ts=1 at 1000",
                                            "reading d1 ts=2 at 1000"}));
}

TEST_F(ProcessorTest, DedupUncheckedIsCountedAndAccepted) {
  Send(1000, "s/a/d1/data", R"({"ts":1,"seq":2000})");
  const MessageOutcome& o = Send(1000, "s/a/d1/data", R"({"ts":2,"seq":1})");
  EXPECT_EQ(o.readings, 1);
  EXPECT_EQ(p_->counters().dedup_unchecked, 1);
}

TEST_F(ProcessorTest, StatusMessages) {
  Send(1000, "s/a/d1/status", "offline");
  const MessageOutcome& o = Send(2000, "s/a/d1/status", R"({"ts":1})");
  EXPECT_TRUE(o.status_ignored);
  EXPECT_EQ(log_, (std::vector<std::string>{"advance 1000", "status d1 offline 1000",
                                            "advance 2000"}));
}

TEST_F(ProcessorTest, TimeNeverGoesBack) {
  Send(5000, "s/a/d1/data", R"({"ts":1})");
  Send(4000, "s/a/d1/data", R"({"ts":2})");
  EXPECT_EQ(log_[2], "advance 5000");
  EXPECT_EQ(log_[3], "reading d1 ts=2 at 5000");
}

TEST_F(ProcessorTest, TooManyDevices) {
  Config c = ExampleConfig();
  c.source.max_devices = 1;
  Make(c);
  Send(1000, "s/a/d1/data", R"({"ts":1})");
  const MessageOutcome& o = Send(1000, "s/a/d2/data", R"({"ts":1})");
  EXPECT_EQ(o.rejected, 1);
  EXPECT_EQ(o.first_reject, RejectReason::kTooManyDevices);
  Send(1000, "s/a/d3/status", "offline");
  EXPECT_EQ(p_->counters().rejected[static_cast<int>(RejectReason::kTooManyDevices)], 2);
  EXPECT_EQ(log_, (std::vector<std::string>{"advance 1000", "reading d1 ts=1 at 1000",
                                            "advance 1000", "advance 1000"}));
}

}  // namespace
}  // namespace weir
