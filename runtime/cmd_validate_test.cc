// `weir validate --db`: what starting on a database does to each pipeline
// (DESIGN 6.5). Expected plans are worked out by hand from 6.5.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/commands.h"
#include "runtime/validate_db.h"
#include "storage/test_util.h"

namespace weir {
namespace {

using storage_test::TempDir;

// One pipeline per (name, window size, extra aggregate) triple.
std::string ConfigText(const std::vector<std::pair<std::string, std::string>>& pipelines) {
  std::string text = R"({"gateway": "gw",
    "source": {"broker": "tcp://127.0.0.1:1", "topics": [{"topic": "s/{device}/data"}],
               "fields": {"temp": "/temp"}},
    "pipelines": [)";
  for (size_t i = 0; i < pipelines.size(); ++i) {
    if (i > 0) text += ",";
    text += R"({"name": ")" + pipelines[i].first +
            R"(", "window": {"type": "tumbling", "size": ")" + pipelines[i].second +
            R"("}, "aggregates": {"n": {"count": "*"}}})";
  }
  return text + "]}";
}

Config Parse(const std::string& text) {
  std::vector<ConfigError> errors;
  auto c = ParseConfig(text, &errors);
  EXPECT_TRUE(c.has_value()) << (errors.empty() ? text : errors[0].message);
  return c.value_or(Config());
}

// The record the daemon writes for a running pipeline.
PipelineRecord Record(const PipelineConfig& p, int64_t generation) {
  return {p.name, generation, p.fingerprint, p.definition_json, 1700000000000};
}

TEST(PlanStart, KeepWhenTheDefinitionIsTheSame) {
  Config old = Parse(ConfigText({{"climate", "1m"}}));
  // Whitespace and key order do not matter: "60000" is the same 1m.
  Config now = Parse(R"({"pipelines": [{"aggregates": {"n": {"count": "*"}},
      "window": {"size": 60000, "type": "tumbling"}, "name": "climate"}],
      "gateway": "gw", "source": {"broker": "tcp://127.0.0.1:1",
      "topics": [{"topic": "s/{device}/data"}], "fields": {"temp": "/temp"}}})");
  auto plan = PlanStart(now, {Record(old.pipelines[0], 2)});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].name, "climate");
  EXPECT_EQ(plan[0].action, StartAction::kKeep);
  EXPECT_EQ(plan[0].generation, 2);
  EXPECT_TRUE(plan[0].changes.empty());
}

TEST(PlanStart, NewNameStartsAtGenerationZero) {
  Config old = Parse(ConfigText({{"climate", "1m"}}));
  Config now = Parse(ConfigText({{"climate", "1m"}, {"energy", "1h"}}));
  auto plan = PlanStart(now, {Record(old.pipelines[0], 0)});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].action, StartAction::kKeep);
  EXPECT_EQ(plan[1].name, "energy");
  EXPECT_EQ(plan[1].action, StartAction::kNew);
  EXPECT_EQ(plan[1].generation, 0);
  EXPECT_STREQ(StartActionName(plan[1].action), "new");
}

TEST(PlanStart, RemovedNameIsDrainedThenDeleted) {
  Config old = Parse(ConfigText({{"climate", "1m"}, {"energy", "1h"}}));
  Config now = Parse(ConfigText({{"climate", "1m"}}));
  auto plan = PlanStart(now, {Record(old.pipelines[0], 0), Record(old.pipelines[1], 1)});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[1].name, "energy");
  EXPECT_EQ(plan[1].action, StartAction::kRemove);
  EXPECT_EQ(plan[1].old_generation, 1);
  EXPECT_STREQ(StartActionName(plan[1].action), "remove");
}

TEST(PlanStart, ChangedDefinitionGetsTheNextGenerationAndSaysWhatChanged) {
  Config old = Parse(ConfigText({{"climate", "1m"}}));
  Config now = Parse(ConfigText({{"climate", "5m"}}));
  auto plan = PlanStart(now, {Record(old.pipelines[0], 0)});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].action, StartAction::kNewGeneration);
  EXPECT_EQ(plan[0].old_generation, 0);
  EXPECT_EQ(plan[0].generation, 1);
  EXPECT_EQ(plan[0].changes, std::vector<std::string>{"window.size: 1m -> 5m"});
  EXPECT_EQ(PipelineIdPart("climate", plan[0].generation), "climate~1");

  // From generation 1 on: g+1 again.
  plan = PlanStart(now, {Record(old.pipelines[0], 1)});
  EXPECT_EQ(plan[0].generation, 2);
}

TEST(PlanStart, RemovedRecordReservesTheNextGeneration) {
  Config now = Parse(ConfigText({{"climate", "1m"}}));
  // The daemon keeps a removed pipeline's record with an empty fingerprint
  // and generation g+1, so the name never reuses an id of the old run.
  PipelineRecord removed{"climate", 3, "", "", 1700000000000};
  auto plan = PlanStart(now, {removed});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].action, StartAction::kNew);
  EXPECT_EQ(plan[0].generation, 3);
  EXPECT_EQ(PipelineIdPart("climate", 3), "climate~3");
  // And a removed record whose name is absent is not removed twice.
  Config other = Parse(ConfigText({{"energy", "1m"}}));
  plan = PlanStart(other, {removed});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].name, "energy");
}

TEST(DefinitionChanges, EveryDefinitionKeyWithUnits) {
  std::string a =
      R"({"aggregates":{"n":{"count":"*"},"t":{"avg":"temp"}},"event_time":{"clock":"device"},)"
      R"("key":["device"],"where":{},"window":{"offset":0,"size":60000,"type":"tumbling"}})";
  std::string b =
      R"({"aggregates":{"n":{"count":"*"},"p":{"q":0.95,"quantile":"temp"}},)"
      R"("event_time":{"clock":"corrected"},"key":["room"],"where":{"temp":{">=":-50}},)"
      R"("window":{"hop":60000,"offset":0,"size":300000,"type":"hopping"}})";
  EXPECT_EQ(DefinitionChanges(a, b), (std::vector<std::string>{
                                         "aggregates.p.q: (none) -> 0.95",
                                         "aggregates.p.quantile: (none) -> temp",
                                         "aggregates.t.avg: temp -> (none)",
                                         "event_time.clock: device -> corrected",
                                         "key: [\"device\"] -> [\"room\"]",
                                         "where.temp.>=: (none) -> -50",
                                         "window.hop: (none) -> 1m",
                                         "window.size: 1m -> 5m",
                                         "window.type: tumbling -> hopping",
                                     }));
  EXPECT_TRUE(DefinitionChanges(a, a).empty());
}

// The whole command on a real database: read-only, and exit 1 when the
// database cannot be read.
TEST(ValidateDb, ReadsARealDatabaseWithoutWritingIt) {
  TempDir dir;
  Config old = Parse(ConfigText({{"climate", "1m"}, {"energy", "1h"}}));
  StoreOptions so;
  so.path = dir.file("weir.db");
  so.gateway = "gw";
  {
    auto store = Store::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    CommitBatch b;
    b.pipelines = {Record(old.pipelines[0], 0), Record(old.pipelines[1], 0)};
    b.config = ConfigRecord{old.text, 1700000000000};
    ASSERT_TRUE(storage_test::CommitAndWait(store.value().get(), std::move(b)).status.ok());
    store.value()->Close();
  }
  auto reader = StoreReader::Open(so.path, /*read_only=*/true);
  ASSERT_TRUE(reader.ok());
  auto stored = reader.value()->Pipelines();
  ASSERT_TRUE(stored.ok());
  Config now = Parse(ConfigText({{"climate", "5m"}, {"rooms", "1m"}}));
  auto plan = PlanStart(now, stored.value());
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].action, StartAction::kNewGeneration);
  EXPECT_EQ(plan[0].changes, std::vector<std::string>{"window.size: 1m -> 5m"});
  EXPECT_EQ(plan[1].action, StartAction::kNew);
  EXPECT_EQ(plan[2].name, "energy");
  EXPECT_EQ(plan[2].action, StartAction::kRemove);

  std::string config_path = dir.file("new.json");
  std::ofstream(config_path) << now.text;
  auto size_before = std::filesystem::file_size(so.path);
  auto mtime_before = std::filesystem::last_write_time(so.path);
  EXPECT_EQ(RunValidate({config_path, so.path, 0}), 0);
  EXPECT_EQ(std::filesystem::file_size(so.path), size_before);
  EXPECT_EQ(std::filesystem::last_write_time(so.path), mtime_before);
  // A database that does not exist yet is a fresh start (exit 0), and stays absent.
  EXPECT_EQ(RunValidate({config_path, dir.file("missing.db"), 0}), 0);
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing.db")));
  // One that cannot be read is an error.
  std::ofstream(dir.file("garbage.db")) << "not a database";
  EXPECT_EQ(RunValidate({config_path, dir.file("garbage.db"), 0}), 1);
}

}  // namespace
}  // namespace weir
