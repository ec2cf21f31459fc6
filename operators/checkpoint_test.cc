// CollectChanges/Restore: a run interrupted by a checkpoint and a restore into
// a fresh Engine gives exactly the output of the uninterrupted run.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "operators/engine_internal.h"
#include "operators/fleet.h"
#include "operators/transcript.h"

namespace weir::testing {
namespace {

class MemoryState : public StateWriter, public StateReader {
 public:
  void Put(std::string_view pipeline, char kind, std::string_view id,
           std::string_view blob) override {
    rows[{std::string(pipeline), kind, std::string(id)}] = std::string(blob);
    ++puts;
  }
  void Erase(std::string_view pipeline, char kind, std::string_view id) override {
    rows.erase({std::string(pipeline), kind, std::string(id)});
    ++erases;
  }
  Status ForEach(
      std::string_view pipeline,
      const std::function<Status(char, std::string_view, std::string_view)>& fn) override {
    for (const auto& [k, blob] : rows) {
      if (std::get<0>(k) != pipeline) continue;
      RETURN_IF_ERROR(fn(std::get<1>(k), std::get<2>(k), blob));
    }
    return Status::Ok();
  }
  std::map<std::tuple<std::string, char, std::string>, std::string> rows;
  int puts = 0;
  int erases = 0;
};

class Lines : public EngineOutput {
 public:
  void OnResult(int pipeline, const ResultRecord& r) override {
    lines.push_back(std::to_string(pipeline) + " " + ResultJson(r));
  }
  void OnLateSide(int pipeline, const Reading& r, int64_t ts) override {
    lines.push_back(std::to_string(pipeline) + " side " + std::string(r.device) + " " +
                    std::to_string(ts));
  }
  std::vector<std::string> lines;
};

std::unique_ptr<Engine> NewEngine(const Config& c) {
  auto e = Engine::Create(c);
  EXPECT_TRUE(e.ok());
  return std::move(e).value();
}

TEST(Checkpoint, RestoreGivesTheUninterruptedOutput) {
  const int kDevices = 12;
  Config c = FleetConfig();
  std::vector<FleetEvent> events = MakeFleet(42, kDevices, 6000);
  FleetPlayer player(c, kDevices);

  Lines full;
  auto engine = NewEngine(c);
  player.Play(*engine, events, 0, events.size(), &full);
  engine->Drain(&full);
  ASSERT_GT(full.lines.size(), 200u);

  for (size_t split : {size_t{1}, events.size() / 3, events.size() / 2, events.size() - 5}) {
    SCOPED_TRACE("split at " + std::to_string(split));
    Lines out;
    MemoryState state;
    auto first = NewEngine(c);
    // Several checkpoints on the way, so later ones write only changes and
    // erase purged keys.
    size_t step = std::max<size_t>(1, split / 4);
    for (size_t at = 0; at < split; at += step) {
      size_t to = std::min(split, at + step);
      player.Play(*first, events, at, to, &out);
      first->CollectChanges(&state);
    }
    auto second = NewEngine(c);
    ASSERT_TRUE(second->Restore(&state).ok());
    player.Play(*second, events, split, events.size(), &out);
    second->Drain(&out);
    ASSERT_EQ(out.lines.size(), full.lines.size());
    for (size_t i = 0; i < full.lines.size(); ++i) ASSERT_EQ(out.lines[i], full.lines[i]) << i;
    for (int p = 0; p < 4; ++p) {
      EXPECT_EQ(second->counters(p).results, engine->counters(p).results);
      EXPECT_EQ(second->counters(p).late_dropped, engine->counters(p).late_dropped);
    }
  }
}

// A key whose windows were all drained or purged has nothing to restore, but
// a purge leaves a mark (the purged windows' greatest end) that must survive:
// its row stays. A key that never had a window purged is erased.
TEST(Checkpoint, PurgedKeysKeepTheirMark) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  c.pipelines[0].event_time.allowed_lateness_ms = 0;
  Transcript t(c);
  MemoryState state;
  t.Data(1000, "d1", 1000);
  t.Data(1000, "d2", 1000);
  t.engine().CollectChanges(&state);
  EXPECT_EQ(state.rows.count({"p", 'k', "d1"}), 1u);
  EXPECT_EQ(state.rows.count({"p", 'k', "d2"}), 1u);
  EXPECT_EQ(state.rows.count({"p", 'd', "d1"}), 1u);
  t.Data(2000, "d1", 61000);  // fires and purges [0,60000); [60000,120000) stays
  t.engine().CollectChanges(&state);
  EXPECT_EQ(state.rows.count({"p", 'k', "d1"}), 1u);
  t.Drain();
  t.engine().CollectChanges(&state);
  EXPECT_EQ(state.rows.count({"p", 'k', "d1"}), 1u);  // purged up to 60000
  EXPECT_EQ(state.rows.count({"p", 'k', "d2"}), 0u);  // drained, never purged
  EXPECT_EQ(state.erases, 1);
}

TEST(Checkpoint, GenerationNamesTheRows) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  Transcript t(c, {3});
  MemoryState state;
  t.Data(1000, "d1", 1000);
  t.engine().CollectChanges(&state);
  EXPECT_EQ(state.rows.count({"p~3", 'p', ""}), 1u);
  EXPECT_EQ(state.rows.count({"p~3", 'k', "d1"}), 1u);
}

TEST(Checkpoint, CorruptBlobIsDataLoss) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  MemoryState state;
  state.rows[{"p", 'k', "d1"}] = std::string("\x01\x05", 2);
  auto e = NewEngine(c);
  Status st = e->Restore(&state);
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace weir::testing

namespace weir::testing {
namespace {

// The incremental bookkeeping (watermark minimum, key deadlines, idle
// deadlines, candidate keys) gives the same output as rescanning everything
// every step, over several random fleets.
TEST(Bookkeeping, IncrementalMatchesExhaustive) {
  Config c = FleetConfig();
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    int devices = 3 + static_cast<int>(seed * 5);
    std::vector<FleetEvent> events = MakeFleet(seed, devices, 15000);
    FleetPlayer player(c, devices);
    Lines fast, slow;
    auto a = std::move(CreateEngine(c, {}, false)).value();
    auto b = std::move(CreateEngine(c, {}, true)).value();
    player.Play(*a, events, 0, events.size(), &fast);
    player.Play(*b, events, 0, events.size(), &slow);
    a->Drain(&fast);
    b->Drain(&slow);
    ASSERT_GT(fast.lines.size(), 100u);
    for (size_t i = 0; i < std::min(fast.lines.size(), slow.lines.size()); ++i) {
      ASSERT_EQ(fast.lines[i], slow.lines[i]) << i;
    }
    ASSERT_EQ(fast.lines.size(), slow.lines.size());
  }
}

}  // namespace
}  // namespace weir::testing

namespace weir::testing {
namespace {

class MemorySpill : public SpillStore {
 public:
  void Put(std::string_view pipeline, std::string_view key, std::string_view blob) override {
    rows[std::string(pipeline) + "/" + std::string(key)] = std::string(blob);
    ++puts;
  }
  bool Get(std::string_view pipeline, std::string_view key, std::string* blob) override {
    auto it = rows.find(std::string(pipeline) + "/" + std::string(key));
    if (it == rows.end()) return false;
    *blob = it->second;
    return true;
  }
  void Erase(std::string_view pipeline, std::string_view key) override {
    rows.erase(std::string(pipeline) + "/" + std::string(key));
  }
  std::map<std::string, std::string> rows;
  int puts = 0;
};

class MaxSpilled : public Lines {
 public:
  Engine* engine = nullptr;
  int64_t max_spilled = 0;
  int64_t max_keys_seen = 0;
  void OnResult(int pipeline, const ResultRecord& r) override {
    Lines::OnResult(pipeline, r);
    for (int p = 0; p < 4; ++p) {
      max_spilled = std::max(max_spilled, engine->counters(p).spilled_keys);
      max_keys_seen = std::max(max_keys_seen, engine->counters(p).keys);
    }
  }
};

// limits.max_keys: a tiny limit spills and reloads keys all the time, and the
// results are those of a run with every key in memory.
TEST(Spill, TinyMaxKeysGivesTheSameResults) {
  for (uint64_t seed : {11, 12, 13}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    int devices = 10 + static_cast<int>(seed % 3) * 7;
    std::vector<FleetEvent> events = MakeFleet(seed, devices, 15000);
    Config unlimited = FleetConfig();
    Config tiny = FleetConfig();
    for (auto& p : tiny.pipelines) p.max_keys = 1 + static_cast<int64_t>(seed % 2);
    FleetPlayer player(unlimited, devices);

    Lines want;
    auto a = std::move(Engine::Create(unlimited)).value();
    player.Play(*a, events, 0, events.size(), &want);
    a->Drain(&want);

    MemorySpill spill;
    MaxSpilled got;
    auto b = std::move(Engine::Create(tiny)).value();
    got.engine = b.get();
    b->SetSpillStore(&spill);
    player.Play(*b, events, 0, events.size(), &got);
    EXPECT_GT(got.max_spilled, 3);
    EXPECT_GT(spill.puts, 100);
    // Keys with pending revisions stay, so the limit can be exceeded briefly.
    b->Drain(&got);
    ASSERT_EQ(got.lines.size(), want.lines.size());
    for (size_t i = 0; i < want.lines.size(); ++i) ASSERT_EQ(got.lines[i], want.lines[i]) << i;
    EXPECT_TRUE(spill.rows.empty());
  }
}

// Checkpoints of a spilling engine include the spilled keys.
TEST(Spill, CheckpointIncludesSpilledKeys) {
  const int kDevices = 15;
  std::vector<FleetEvent> events = MakeFleet(21, kDevices, 8000);
  Config c = FleetConfig();
  for (auto& p : c.pipelines) p.max_keys = 2;
  FleetPlayer player(c, kDevices);

  Lines want;
  auto a = std::move(Engine::Create(c)).value();
  player.Play(*a, events, 0, events.size(), &want);
  a->Drain(&want);

  Lines got;
  MemorySpill spill1, spill2;
  MemoryState state;
  auto b = std::move(Engine::Create(c)).value();
  b->SetSpillStore(&spill1);
  size_t split = events.size() / 2;
  player.Play(*b, events, 0, split / 2, &got);
  b->CollectChanges(&state);
  player.Play(*b, events, split / 2, split, &got);
  b->CollectChanges(&state);
  EXPECT_FALSE(spill1.rows.empty());
  auto r = std::move(Engine::Create(c)).value();
  r->SetSpillStore(&spill2);
  ASSERT_TRUE(r->Restore(&state).ok());
  player.Play(*r, events, split, events.size(), &got);
  r->Drain(&got);
  ASSERT_EQ(got.lines.size(), want.lines.size());
  for (size_t i = 0; i < want.lines.size(); ++i) ASSERT_EQ(got.lines[i], want.lines[i]) << i;
}

}  // namespace
}  // namespace weir::testing

namespace weir::testing {
namespace {

// Random pipeline settings: the incremental engine, the exhaustive one, one
// restored from a checkpoint halfway and one spilling all but one key all
// give the same output.
TEST(Bookkeeping, RandomConfigsAgreeFourWays) {
  for (uint64_t seed = 100; seed < 112; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Config c = RandomConfig(seed);
    Config tiny = c;
    for (auto& p : tiny.pipelines) p.max_keys = 1;
    int devices = 4 + static_cast<int>(seed % 9);
    std::vector<FleetEvent> events = MakeFleet(seed, devices, 6000);
    FleetPlayer player(c, devices);

    Lines fast, slow, restored, spilled;
    auto a = std::move(CreateEngine(c, {}, false)).value();
    player.Play(*a, events, 0, events.size(), &fast);
    a->Drain(&fast);
    ASSERT_GT(fast.lines.size(), 50u);

    auto b = std::move(CreateEngine(c, {}, true)).value();
    player.Play(*b, events, 0, events.size(), &slow);
    b->Drain(&slow);

    MemoryState state;
    auto c1 = std::move(Engine::Create(c)).value();
    player.Play(*c1, events, 0, events.size() / 2, &restored);
    c1->CollectChanges(&state);
    auto c2 = std::move(Engine::Create(c)).value();
    ASSERT_TRUE(c2->Restore(&state).ok());
    player.Play(*c2, events, events.size() / 2, events.size(), &restored);
    c2->Drain(&restored);

    MemorySpill spill;
    auto d = std::move(Engine::Create(tiny)).value();
    d->SetSpillStore(&spill);
    player.Play(*d, events, 0, events.size(), &spilled);
    d->Drain(&spilled);

    for (const Lines* other : {&slow, &restored, &spilled}) {
      for (size_t i = 0; i < std::min(fast.lines.size(), other->lines.size()); ++i) {
        ASSERT_EQ(other->lines[i], fast.lines[i]) << i;
      }
      ASSERT_EQ(other->lines.size(), fast.lines.size());
    }
  }
}

}  // namespace
}  // namespace weir::testing

namespace weir::testing {
namespace {

// ------------------------------------------------- purge marks (DESIGN 6.5)

// "id rev count" of a result line, enough to tell results apart here.
std::string Brief(const std::string& line) {
  auto j = nlohmann::json::parse(line);
  return j["id"].get<std::string>() + " " + std::to_string(j["rev"].get<int64_t>()) + " " +
         std::to_string(j["count"].get<int64_t>());
}
std::vector<std::string> Briefs(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back(Brief(l));
  return out;
}

// Tumbling 1m by device, as a reload would switch it: lateness 0 and drop,
// then 1h and update with no emit delay.
Config LatenessConfig(bool raised) {
  Config c = ExampleConfig();
  c.pipelines = {ExamplePipeline()};
  EventTimeConfig& et = c.pipelines[0].event_time;
  et.late = raised ? LatePolicy::kUpdate : LatePolicy::kDrop;
  et.allowed_lateness_ms = raised ? 3600000 : 0;
  et.late_emit_delay_ms = 0;
  return c;
}

// The reload case: [0,60000) fired and was purged under lateness 0. After the
// restore under lateness 1h, a late reading for it is dropped (re-creating it
// would send a second revision 0 under gw/p/d1/0), while a late reading for
// [60000,120000), which never existed, is within the new lateness and counts.
TEST(PurgeMark, RaisedLatenessDoesNotReopenPurgedWindows) {
  MemoryState state;
  {
    Transcript a(LatenessConfig(false));
    a.Data(1000, "d1", 1000);
    a.Data(2000, "d1", 130000);  // wm 130000: fires [0,60000) and purges it (130000 >= 60000 + 0)
    EXPECT_EQ(Briefs(a.lines), (std::vector<std::string>{"gw/p/d1/0 0 1"}));
    a.engine().CollectChanges(&state);
  }
  Transcript b(LatenessConfig(true));
  ASSERT_TRUE(b.engine().Restore(&state).ok());
  b.Data(3000, "d1", 2000);   // [0,60000): late, within 1h, but purged (end 60000 <= mark 60000)
  b.Data(4000, "d1", 70000);  // [60000,120000): late (130000 >= 120000), 130000 < 120000 + 1h:
                              // dirty; delay 0 and dwm 130000 >= 120000: revision 0 at once
  EXPECT_EQ(Briefs(b.lines), (std::vector<std::string>{"gw/p/d1/60000 0 1"}));
  b.Drain();  // [120000,180000) holds the reading at 130000
  EXPECT_EQ(Briefs(b.lines), (std::vector<std::string>{"gw/p/d1/60000 0 1", "gw/p/d1/120000 0 1"}));
  EXPECT_EQ(b.engine().counters(0).late_dropped, 1);
  EXPECT_EQ(b.engine().counters(0).late_updates, 1);
}

// A key whose only window was purged keeps its mark across a checkpoint: an
// idle release (5.2) fires and purges [0,60000) and leaves d1 without windows.
TEST(PurgeMark, KeyWithoutWindowsKeepsItsMark) {
  MemoryState state;
  {
    Transcript a(LatenessConfig(false));
    a.Data(1000, "d1", 1000);  // lag 0
    a.Tick(301000);  // silent 300000 = idle_timeout: wm = 301000 - 0 - 0; fires, purges [0,60000)
    EXPECT_EQ(Briefs(a.lines), (std::vector<std::string>{"gw/p/d1/0 0 1"}));
    a.engine().CollectChanges(&state);
  }
  EXPECT_EQ(state.rows.count({"p", 'k', "d1"}), 1u);
  Transcript b(LatenessConfig(true));
  ASSERT_TRUE(b.engine().Restore(&state).ok());
  b.Data(302000, "d1", 2000);    // [0,60000): purged: dropped
  b.Data(303000, "d1", 100000);  // [60000,120000): late, within 1h: dirty
  b.Drain();
  EXPECT_EQ(Briefs(b.lines), (std::vector<std::string>{"gw/p/d1/60000 0 1"}));
  EXPECT_EQ(b.engine().counters(0).late_dropped, 1);
}

// Sessions: the mark is the purged session's last timestamp. A late reading
// at or before it would have joined the purged session: dropped. One after it
// starts a new session under a new id.
TEST(PurgeMark, SessionsAfterRaisedLateness) {
  auto sessions = [](bool raised) {
    Config c = ExampleConfig();
    PipelineConfig p = ExamplePipeline();
    p.window.type = WindowType::kSession;
    p.window.gap_ms = 10000;
    p.event_time.late = raised ? LatePolicy::kUpdate : LatePolicy::kDrop;
    p.event_time.allowed_lateness_ms = raised ? 3600000 : 0;
    p.event_time.late_emit_delay_ms = 0;
    c.pipelines = {p};
    return c;
  };
  MemoryState state;
  {
    Transcript a(sessions(false));
    a.Data(1000, "d1", 0);
    a.Data(2000, "d1", 100000);  // S[0,0] fires (100000 >= 0 + 10000) and is purged (+ 0)
    EXPECT_EQ(Briefs(a.lines), (std::vector<std::string>{"gw/p/d1/0 0 1"}));
    a.engine().CollectChanges(&state);
  }
  Transcript b(sessions(true));
  ASSERT_TRUE(b.engine().Restore(&state).ok());
  b.Data(3000, "d1", 0);       // late (100000 >= 10000), within 1h, 0 <= mark 0: dropped
  b.Data(4000, "d1", -20000);  // the same
  b.Data(5000, "d1", 50000);   // late, 50000 > mark: new dirty session, dwm past: revision 0
  b.Drain();                   // S[100000]
  EXPECT_EQ(Briefs(b.lines), (std::vector<std::string>{"gw/p/d1/50000 0 1", "gw/p/d1/100000 0 1"}));
  EXPECT_EQ(b.engine().counters(0).late_dropped, 2);
}

// Rewrites checkpoint rows as a build without purge marks wrote them: version
// 1 blobs without the mark fields, and no row for a key without windows.
void DowngradeToVersion1(MemoryState* state) {
  for (auto it = state->rows.begin(); it != state->rows.end();) {
    std::string& blob = it->second;
    ASSERT_EQ(blob[0], 2);
    blob[0] = 1;
    char kind = std::get<1>(it->first);
    if (kind == 'p' || kind == 'd') {
      blob.resize(blob.size() - 8);  // the floor, last
    } else if (kind == 'k') {
      // version, nvalues, values, device, then the mark: find it by decoding.
      size_t pos = 1;
      auto i64 = [&](size_t at) {
        int64_t v;
        std::memcpy(&v, blob.data() + at, 8);  // little-endian host, as in state_codec.h
        return v;
      };
      int64_t nvalues = i64(pos);
      pos += 8;
      for (int64_t i = 0; i <= nvalues; ++i) pos += 8 + static_cast<size_t>(i64(pos));
      int64_t nwindows = i64(pos + 8);
      blob.erase(pos, 8);
      if (nwindows == 0) {
        it = state->rows.erase(it);
        continue;
      }
    }
    ++it;
  }
}

// A database written before purge marks: nothing says what was purged, and
// d1's purged key has no row. weir restores it under the config it was
// written with (DESIGN 6.5: the stored config first, then the new one as a
// reload), which derives the mark from the restored watermark: wm_d1 301000
// - lateness 0, so every window ending at or before 301000 counts as purged.
// That floor is checkpointed (version 2) and holds under the raised lateness.
TEST(PurgeMark, CheckpointWithoutMarksDerivesAFloor) {
  MemoryState state;
  {
    Transcript a(LatenessConfig(false));
    a.Data(1000, "d1", 1000);
    a.Tick(301000);  // idle: wm 301000, [0,60000) fires and is purged
    a.engine().CollectChanges(&state);
  }
  DowngradeToVersion1(&state);
  ASSERT_EQ(state.rows.count({"p", 'k', "d1"}), 0u);
  ASSERT_EQ(state.rows.count({"p", 'd', "d1"}), 1u);
  MemoryState upgraded = state;  // the database: the new rows go on top
  {
    Transcript b(LatenessConfig(false));  // recovery under the stored config
    ASSERT_TRUE(b.engine().Restore(&state).ok());
    b.engine().CollectChanges(&upgraded);
  }
  EXPECT_EQ(upgraded.rows.at({"p", 'd', "d1"})[0], 2);
  Transcript c(LatenessConfig(true));  // the reload
  ASSERT_TRUE(c.engine().Restore(&upgraded).ok());
  c.Data(302000, "d1", 2000);    // [0,60000): late, within 1h, 60000 <= 301000: dropped
  c.Data(303000, "d1", 100000);  // [60000,120000): 120000 <= 301000: dropped (conservative)
  c.Data(304000, "d1", 250000);  // [240000,300000): 300000 <= 301000: dropped
  c.Data(305000, "d1", 305000);  // [300000,360000): not late (301000 < 360000): added
  c.Drain();
  EXPECT_EQ(Briefs(c.lines), (std::vector<std::string>{"gw/p/d1/300000 0 1"}));
  EXPECT_EQ(c.engine().counters(0).late_dropped, 3);
}

// The same for a group key: the floor is the pipeline watermark's, and it
// covers a key (here the only one, "*") that had no row.
TEST(PurgeMark, CheckpointWithoutMarksGroupKey) {
  auto group = [](bool raised) {
    Config c = LatenessConfig(raised);
    c.pipelines[0].key = {};
    return c;
  };
  MemoryState state;
  {
    Transcript a(group(false));
    a.Data(1000, "d1", 1000);
    a.Data(2000, "d1", 130000);  // wm_p 130000: [0,60000) fires and is purged
    a.engine().CollectChanges(&state);
  }
  DowngradeToVersion1(&state);
  MemoryState upgraded = state;  // the database: the new rows go on top
  {
    Transcript b(group(false));
    ASSERT_TRUE(b.engine().Restore(&state).ok());
    b.engine().CollectChanges(&upgraded);
  }
  Transcript c(group(true));
  ASSERT_TRUE(c.engine().Restore(&upgraded).ok());
  c.Data(3000, "d2", 100000);  // [60000,120000): 120000 <= floor 130000 - 0: dropped
  c.Data(4000, "d2", 2000);    // [0,60000): dropped
  c.Drain();                   // [120000,180000)
  EXPECT_EQ(Briefs(c.lines), (std::vector<std::string>{"gw/p/*/120000 0 1"}));
  EXPECT_EQ(c.engine().counters(0).late_dropped, 2);
}

}  // namespace
}  // namespace weir::testing
