// weir-sink as a user runs it: a real Mosquitto, the weir-sink binary, a real
// SQLite file. Expected rows and counters are worked out from DESIGN 12.
#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <sqlite3.h>

#include <optional>

#include "tests/mqtt/test_process.h"

namespace weir {
namespace {

using testing::ChildProcess;
using testing::ReadFile;
using testing::TestBroker;
using testing::WaitFor;

class Publisher {
 public:
  explicit Publisher(const std::string& uri)
      : create_(MQTTVERSION_3_1_1, 100000), client_(uri, "sink-test-publisher", create_, nullptr) {
    mqtt::connect_options opts;
    opts.set_clean_session(true);
    opts.set_max_inflight(1000);
    client_.connect(opts)->wait();
  }
  ~Publisher() { client_.disconnect()->wait(); }
  void Publish(const std::string& topic, const std::string& payload) {
    client_.publish(topic, payload, 1, false)->wait();
  }

 private:
  mqtt::create_options create_;
  mqtt::async_client client_;
};

struct Row {
  int64_t rev;
  bool retracted;
  std::optional<std::string> result;
};

std::optional<Row> ReadRow(const std::string& db_path, const std::string& id) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return std::nullopt;
  }
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* st = nullptr;
  std::optional<Row> row;
  if (sqlite3_prepare_v2(db, "SELECT rev, retracted, result FROM weir_results WHERE id = ?1", -1,
                         &st, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
      row = Row{sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1) != 0, std::nullopt};
      if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
        row->result = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
      }
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return row;
}

int64_t CountRows(const std::string& db_path, const std::string& table) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, ("SELECT count(*) FROM " + table).c_str(), -1, &st, nullptr) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

class WeirSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.Start());
    dir_ = testing::MakeTempDir("weir-sink-it-");
    db_ = dir_ + "/results.db";
  }
  void StartSink(ChildProcess* sink, const std::string& client_id, const std::string& share = "",
                 const std::string& tag = "") {
    std::vector<std::string> args = {std::string(WEIR_BIN_DIR) + "/weir-sink",
                                     "--broker",
                                     broker_.uri(),
                                     "--topic",
                                     "weir/#",
                                     "--db",
                                     db_,
                                     "--client-id",
                                     client_id,
                                     "--summary"};
    if (!share.empty()) {
      args.push_back("--share");
      args.push_back(share);
    }
    ASSERT_TRUE(sink->Start(args, dir_ + "/out" + tag + ".txt", dir_ + "/err" + tag + ".txt"));
    ASSERT_TRUE(sink->WaitForOutput("subscribed to", 10000, /*in_stderr=*/true));
  }

  TestBroker broker_;
  std::string dir_;
  std::string db_;
};

TEST_F(WeirSinkTest, UpsertsWithTheRevGuardAndCountsEveryCase) {
  ChildProcess sink;
  StartSink(&sink, "sink-guard");
  Publisher pub(broker_.uri());
  // rev 1 first, then rev 0 of the same id: rev 1 stays, rev 0 is stale.
  pub.Publish("weir/gw/p", R"({"id":"gw/p/d1/0","rev":1,"count":2})");
  pub.Publish("weir/gw/p", R"({"id":"gw/p/d1/0","rev":0,"count":1})");
  // An identical repeat: a duplicate.
  pub.Publish("weir/gw/p", R"({"id":"gw/p/d1/0","rev":1,"count":2})");
  // A batch (JSON array): a result and its retraction at a higher rev.
  pub.Publish(
      "weir/gw/p",
      R"([{"id":"gw/p/d2/0","rev":0,"count":5},{"id":"gw/p/d2/0","rev":1,"retracted":true}])");
  // A loss record.
  pub.Publish("weir/gw/p", R"({"id":"gw/loss/3-7","lost":5,"from":0,"to":60000})");
  ASSERT_TRUE(sink.WaitForOutput("loss gw/loss/3-7", 10000));
  sink.Signal(SIGUSR1);  // counters on demand, without stopping
  EXPECT_TRUE(sink.WaitForOutput("messages=5 upserts=2 duplicates=1 stale=1 retractions=1 losses=1",
                                 10000, /*in_stderr=*/true));
  sink.Signal(SIGTERM);
  ASSERT_EQ(sink.Wait(10000), 0);

  auto d1 = ReadRow(db_, "gw/p/d1/0");
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->rev, 1);
  EXPECT_FALSE(d1->retracted);
  EXPECT_EQ(d1->result, R"({"id":"gw/p/d1/0","rev":1,"count":2})");
  auto d2 = ReadRow(db_, "gw/p/d2/0");
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->rev, 1);
  EXPECT_TRUE(d2->retracted);
  EXPECT_EQ(d2->result, R"({"id":"gw/p/d2/0","rev":0,"count":5})");  // kept from rev 0
  EXPECT_EQ(CountRows(db_, "weir_losses"), 1);

  std::string out = ReadFile(dir_ + "/out.txt");
  // The counters, then the commit latency (its values depend on the machine).
  EXPECT_NE(
      out.find(
          R"({"messages":5,"upserts":2,"duplicates":1,"stale":1,"retractions":1,"losses":1,"malformed":0,"commit_ms_avg":)"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find(R"("commit_ms_max":)"), std::string::npos) << out;
}

// kill -9 while messages stream in, restart under the same client id: the
// persistent session and commit-before-PUBACK leave every result stored.
TEST_F(WeirSinkTest, KilledSinkLosesNothingAfterRestart) {
  constexpr int kCount = 300;
  {
    ChildProcess sink;
    StartSink(&sink, "sink-kill");
    Publisher pub(broker_.uri());
    for (int i = 0; i < kCount; ++i) {
      pub.Publish("weir/gw/p", R"({"id":"r)" + std::to_string(i) + R"(","rev":0})");
      if (i == kCount / 3) sink.Signal(SIGKILL);  // mid-stream, at no chosen point
    }
    EXPECT_EQ(sink.Wait(10000), 128 + SIGKILL);
  }
  EXPECT_LT(CountRows(db_, "weir_results"), kCount);
  ChildProcess sink;
  StartSink(&sink, "sink-kill");
  ASSERT_TRUE(WaitFor([&] { return CountRows(db_, "weir_results") == kCount; }, 20000))
      << CountRows(db_, "weir_results");
  sink.Signal(SIGTERM);
  EXPECT_EQ(sink.Wait(10000), 0);
}

// Two sinks in one shared-subscription group, writing one SQLite file: the
// broker splits the messages between them and every result is stored once.
TEST_F(WeirSinkTest, SharedSubscriptionSplitsTheLoadIntoOneDatabase) {
  ChildProcess a, b;
  StartSink(&a, "sink-share-a", "g1", "a");
  StartSink(&b, "sink-share-b", "g1", "b");
  constexpr int kCount = 200;
  {
    Publisher pub(broker_.uri());
    for (int i = 0; i < kCount; ++i) {
      pub.Publish("weir/gw/p", R"({"id":"s)" + std::to_string(i) + R"(","rev":0})");
    }
  }
  ASSERT_TRUE(WaitFor([&] { return CountRows(db_, "weir_results") == kCount; }, 20000))
      << CountRows(db_, "weir_results");
  a.Signal(SIGTERM);
  b.Signal(SIGTERM);
  ASSERT_EQ(a.Wait(10000), 0);
  ASSERT_EQ(b.Wait(10000), 0);
  auto messages = [&](const std::string& tag) {
    std::string out = ReadFile(dir_ + "/out" + tag + ".txt");
    size_t at = out.find(R"({"messages":)");
    return at == std::string::npos ? -1 : std::stoi(out.substr(at + 12));
  };
  int ma = messages("a"), mb = messages("b");
  EXPECT_EQ(ma + mb, kCount);
  EXPECT_GT(ma, 0);  // both took part
  EXPECT_GT(mb, 0);
}

}  // namespace
}  // namespace weir
