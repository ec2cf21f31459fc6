// ApplyMessage on a real SQLite file: the rev guard, duplicates, stale
// revisions, retractions and loss records, as DESIGN 12 states them.
#include "tools/sink/sink_apply.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <optional>

namespace weir::sink {
namespace {

struct Row {
  int64_t rev;
  bool retracted;
  std::optional<std::string> result;
};

class SinkApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/weir-sink-testXXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    path_ = std::string(templ) + "/sink.db";
    auto store = OpenResultStore(path_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  void Apply(const std::string& payload) {
    ASSERT_TRUE(ApplyMessage(store_.get(), payload, &counters_, &changes_).ok());
  }

  std::optional<Row> Read(const std::string& id) {
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT rev, retracted, result FROM weir_results WHERE id = ?1", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    std::optional<Row> row;
    if (sqlite3_step(st) == SQLITE_ROW) {
      row = Row{sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1) != 0, std::nullopt};
      if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
        row->result = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return row;
  }

  int64_t CountLosses() {
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM weir_losses", -1, &st, nullptr);
    sqlite3_step(st);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }

  std::string path_;
  std::unique_ptr<ResultStore> store_;
  SinkCounters counters_;
  std::vector<Change> changes_;
};

TEST_F(SinkApplyTest, HigherRevWinsAndLowerRevIsStale) {
  Apply(R"({"id":"gw/p/d1/0","rev":1,"count":2})");
  Apply(R"({"id":"gw/p/d1/0","rev":0,"count":1})");
  auto row = Read("gw/p/d1/0");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->rev, 1);
  EXPECT_FALSE(row->retracted);
  EXPECT_EQ(row->result, R"({"id":"gw/p/d1/0","rev":1,"count":2})");
  EXPECT_EQ(counters_.upserts, 1u);
  EXPECT_EQ(counters_.stale, 1u);
  EXPECT_EQ(counters_.duplicates, 0u);
  EXPECT_EQ(counters_.messages, 2u);
}

TEST_F(SinkApplyTest, EqualRevIsADuplicateAndChangesNothing) {
  Apply(R"({"id":"a","rev":0,"count":1})");
  Apply(R"({"id":"a","rev":0,"count":99})");
  EXPECT_EQ(Read("a")->result, R"({"id":"a","rev":0,"count":1})");
  EXPECT_EQ(counters_.upserts, 1u);
  EXPECT_EQ(counters_.duplicates, 1u);
  ASSERT_EQ(changes_.size(), 1u);
}

TEST_F(SinkApplyTest, RetractionSetsRevAndFlagAndKeepsTheResult) {
  Apply(R"({"id":"s","rev":0,"count":3})");
  Apply(R"({"id":"s","rev":1,"retracted":true})");
  auto row = Read("s");
  EXPECT_EQ(row->rev, 1);
  EXPECT_TRUE(row->retracted);
  EXPECT_EQ(row->result, R"({"id":"s","rev":0,"count":3})");
  EXPECT_EQ(counters_.retractions, 1u);
  // A retraction that comes first leaves the result null.
  Apply(R"({"id":"t","rev":2,"retracted":true})");
  row = Read("t");
  EXPECT_EQ(row->rev, 2);
  EXPECT_TRUE(row->retracted);
  EXPECT_FALSE(row->result.has_value());
  // A repeated retraction is a duplicate.
  Apply(R"({"id":"t","rev":2,"retracted":true})");
  EXPECT_EQ(counters_.duplicates, 1u);
  EXPECT_EQ(counters_.retractions, 2u);
}

TEST_F(SinkApplyTest, ArrayIsOneTransactionAndMalformedElementsAreCountedAndSkipped) {
  Apply(R"([{"id":"x","rev":0},{"rev":1},7,{"id":"y","rev":"1"},{"id":"y","rev":3}])");
  EXPECT_EQ(counters_.messages, 1u);
  EXPECT_EQ(counters_.upserts, 2u);
  EXPECT_EQ(counters_.malformed, 3u);
  EXPECT_EQ(Read("y")->rev, 3);
  Apply("not json");
  EXPECT_EQ(counters_.malformed, 4u);
}

TEST_F(SinkApplyTest, LossRecordsAreKeptOncePerId) {
  const std::string loss = R"({"id":"gw/loss/10-19","lost":10,"from":1000,"to":2000})";
  Apply(loss);
  Apply(loss);
  EXPECT_EQ(CountLosses(), 1);
  EXPECT_EQ(counters_.losses, 1u);
  EXPECT_EQ(counters_.duplicates, 1u);
  EXPECT_FALSE(Read("gw/loss/10-19").has_value());
}

}  // namespace
}  // namespace weir::sink
