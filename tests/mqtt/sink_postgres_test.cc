// weir-sink's PostgreSQL store against a private cluster (tests/postgres.py):
// the same rev guard as SQLite, and concurrent writers ending at the highest
// rev of every id whatever the interleaving.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <optional>
#include <thread>

#include "tests/mqtt/test_broker.h"
#include "tools/sink/sink_apply.h"

namespace weir::sink {
namespace {

class SinkPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = weir::testing::MakeTempDir("weir-pg-");
    uri_ = weir::testing::RunCapture(std::string("python3 ") + WEIR_SOURCE_DIR +
                                     "/tests/postgres.py start --dir " + dir_);
    while (!uri_.empty() && uri_.back() == '\n') uri_.pop_back();
    ASSERT_FALSE(uri_.empty()) << "could not start a private PostgreSQL (see " << dir_ << ")";
  }
  void TearDown() override {
    weir::testing::RunCapture(std::string("python3 ") + WEIR_SOURCE_DIR +
                              "/tests/postgres.py stop --dir " + dir_);
  }

  std::unique_ptr<ResultStore> Open() {
    auto store = OpenResultStore(uri_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // "rev|retracted|result" of one id, or nullopt.
  std::optional<std::string> Row(const std::string& id) {
    PGconn* c = PQconnectdb(uri_.c_str());
    const char* p[1] = {id.c_str()};
    PGresult* r = PQexecParams(
        c, "SELECT rev, retracted, coalesce(result::text, 'null') FROM weir_results WHERE id = $1",
        1, nullptr, p, nullptr, nullptr, 0);
    std::optional<std::string> out;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      out =
          std::string(PQgetvalue(r, 0, 0)) + "|" + PQgetvalue(r, 0, 1) + "|" + PQgetvalue(r, 0, 2);
    }
    PQclear(r);
    PQfinish(c);
    return out;
  }

  std::string dir_;
  std::string uri_;
};

TEST_F(SinkPostgresTest, RevGuardDuplicatesRetractionsAndLosses) {
  auto store = Open();
  ASSERT_TRUE(store);
  SinkCounters c;
  std::vector<Change> changes;
  for (const char* msg : {R"({"id":"a","rev":1,"count":2})", R"({"id":"a","rev":0,"count":1})",
                          R"({"id":"a","rev":1,"count":2})",
                          R"([{"id":"b","rev":0,"count":5},{"id":"b","rev":1,"retracted":true}])",
                          R"({"id":"t","rev":2,"retracted":true})",
                          R"({"id":"gw/loss/1-2","lost":2,"from":0,"to":1})",
                          R"({"id":"gw/loss/1-2","lost":2,"from":0,"to":1})"}) {
    ASSERT_TRUE(ApplyMessage(store.get(), msg, &c, &changes).ok()) << msg;
  }
  // jsonb prints objects with its own key order and spacing.
  EXPECT_EQ(Row("a"), R"(1|f|{"id": "a", "rev": 1, "count": 2})");
  EXPECT_EQ(Row("b"), R"(1|t|{"id": "b", "rev": 0, "count": 5})");
  EXPECT_EQ(Row("t"), "2|t|null");
  EXPECT_EQ(
      c.Json(),
      R"({"messages":7,"upserts":2,"duplicates":2,"stale":1,"retractions":2,"losses":1,"malformed":0})");
}

// Two sinks write revisions 0..9 of the same 50 ids in opposite orders: the
// guard in the statement leaves rev 9 everywhere.
TEST_F(SinkPostgresTest, ConcurrentWritersKeepTheHighestRev) {
  auto first = Open();
  ASSERT_TRUE(first);  // creates the tables before the race
  auto writer = [&](bool ascending) {
    auto store = Open();
    SinkCounters c;
    std::vector<Change> changes;
    for (int k = 0; k < 10; ++k) {
      int rev = ascending ? k : 9 - k;
      std::string batch = "[";
      for (int id = 0; id < 50; ++id) {
        batch += (id ? "," : "") + std::string(R"({"id":"r)") + std::to_string(id) + R"(","rev":)" +
                 std::to_string(rev) + R"(,"count":)" + std::to_string(rev) + "}";
      }
      Status st;
      do {
        st = ApplyMessage(store.get(), batch + "]", &c, &changes);
      } while (st.code() == StatusCode::kUnavailable);  // a deadlock victim tries again
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
  };
  std::thread a(writer, true), b(writer, false);
  a.join();
  b.join();
  for (int id = 0; id < 50; ++id) {
    std::string name = "r" + std::to_string(id);
    EXPECT_EQ(Row(name), "9|f|{\"id\": \"" + name + "\", \"rev\": 9, \"count\": 9}");
  }
}

}  // namespace
}  // namespace weir::sink
