#include "storage/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "storage/sqlite_util.h"
#include "storage/test_util.h"

namespace weir {
namespace {

using storage_test::CommitAndWait;
using storage_test::DeleteAndWait;
using storage_test::MakeResult;
using storage_test::QueryText;
using storage_test::TempDir;

StoreOptions Options(const TempDir& dir, int64_t max_bytes = 0) {
  StoreOptions o;
  o.path = dir.file("weir.db");
  o.max_bytes = max_bytes;
  o.gateway = "gw-01";
  o.now_ms = [] { return int64_t{1700000000000}; };
  return o;
}

std::unique_ptr<Store> OpenOrDie(const StoreOptions& o) {
  auto s = Store::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

std::unique_ptr<StoreReader> ReaderOrDie(const std::string& path, bool read_only = false) {
  auto r = StoreReader::Open(path, read_only);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::vector<OutboxRow> AllRows(StoreReader* r) {
  std::vector<OutboxRow> rows;
  Status st = r->ReadOutbox(0, INT64_MAX, 1 << 20, &rows);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return rows;
}

TEST(StoreSchema, CreatedOnOpenAndReopened) {
  TempDir dir;
  auto o = Options(dir);
  {
    auto store = OpenOrDie(o);
    ASSERT_TRUE(store);
    store->Close();
  }
  EXPECT_EQ(QueryText(o.path, "PRAGMA user_version"), "1");
  EXPECT_EQ(QueryText(o.path, "PRAGMA application_id"), std::to_string(0x77656972));
  EXPECT_EQ(QueryText(o.path, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryText(o.path,
                      "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema "
                      "WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)"),
            "config,dedup,journal,meta,outbox,pipelines,state");
  // Reopening an existing file keeps it (and its data).
  {
    auto store = OpenOrDie(o);
    ASSERT_TRUE(store);
    CommitBatch b;
    b.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 60000));
    ASSERT_TRUE(CommitAndWait(store.get(), std::move(b)).status.ok());
  }
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->stats().outbox_rows, 1);
}

TEST(StoreSchema, OneWriterPerFile) {
  TempDir dir;
  auto o = Options(dir);
  auto first = OpenOrDie(o);
  ASSERT_TRUE(first);
  auto second = Store::Open(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("another weir"), std::string::npos);
  // Readers are never locked out.
  EXPECT_TRUE(StoreReader::Open(o.path, true).ok());
  first->Close();
  EXPECT_TRUE(Store::Open(o).ok());
}

TEST(StoreSchema, RefusesNewerSchemaAndForeignFiles) {
  TempDir dir;
  auto o = Options(dir);
  { ASSERT_TRUE(OpenOrDie(o)); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(o.path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("newer weir"), std::string::npos);

  std::string other = dir.file("other.db");
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  o.path = other;
  s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("not a weir database"), std::string::npos);
}

TEST(StoreCommit, OneBatchWritesEverythingTogether) {
  TempDir dir;
  auto o = Options(dir);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);

  CommitBatch b;
  b.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 60000));
  b.outbox.push_back(MakeResult("gw-01/climate/d2/0", 0, 0, 60000));
  BatchStateWriter w(&b);
  w.Put("climate", 'p', "", "P");
  w.Put("climate", 'k', "d1", "K1");
  w.Put("climate", 'k', "d2", "K2");
  w.Erase("climate", 'k', "d2");
  w.Put("other~1", 'd', "d9", std::string("\0\1", 2));
  b.dedup.push_back({"d1", "D1"});
  b.pipelines.push_back({"climate", 0, "fp0", "{\"window\":1}", 5});
  b.config = ConfigRecord{"{\"gateway\":\"gw-01\"}", 7};
  b.counters.push_back({"readings", 42});
  CommitResult r = CommitAndWait(store.get(), std::move(b));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outbox_positions, (std::vector<int64_t>{1, 2}));

  auto reader = ReaderOrDie(o.path);
  ASSERT_TRUE(reader);
  auto rows = AllRows(reader.get());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].id, "gw-01/climate/d1/0");
  EXPECT_EQ(rows[0].pos, 1);
  EXPECT_EQ(rows[0].window_end, 60000);
  EXPECT_EQ(rows[0].enqueued_ms, 1700000000000);
  EXPECT_EQ(rows[0].payload, "{\"id\":\"gw-01/climate/d1/0\",\"rev\":0}");

  std::vector<std::string> seen;
  ASSERT_TRUE(reader
                  ->ForEach("climate",
                            [&](char kind, std::string_view id, std::string_view blob) {
                              seen.push_back(std::string(1, kind) + ":" + std::string(id) + "=" +
                                             std::string(blob));
                              return Status::Ok();
                            })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"k:d1=K1", "p:=P"}));
  seen.clear();
  ASSERT_TRUE(reader
                  ->ForEach("other~1",
                            [&](char kind, std::string_view id, std::string_view blob) {
                              seen.push_back(std::string(1, kind) + std::string(id) +
                                             std::to_string(blob.size()));
                              return Status::Ok();
                            })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"dd92"}));

  auto one = reader->GetState("climate", 'k', "d1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->value_or("<none>"), "K1");
  auto gone = reader->GetState("climate", 'k', "d2");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());

  std::string dedup;
  ASSERT_TRUE(reader
                  ->ForEachDedup([&](std::string_view d, std::string_view blob) {
                    dedup += std::string(d) + "=" + std::string(blob);
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(dedup, "d1=D1");
  auto pipelines = reader->Pipelines();
  ASSERT_TRUE(pipelines.ok());
  ASSERT_EQ(pipelines->size(), 1u);
  EXPECT_EQ((*pipelines)[0].fingerprint, "fp0");
  EXPECT_EQ((*pipelines)[0].definition_json, "{\"window\":1}");
  auto config = reader->LastConfig();
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(config->has_value());
  EXPECT_EQ((*config)->text, "{\"gateway\":\"gw-01\"}");
  EXPECT_EQ((*config)->applied_ms, 7);
  auto status = reader->ReadStatus(1700000005000);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->counters, (std::vector<std::pair<std::string, int64_t>>{{"readings", 42}}));
  EXPECT_EQ(status->oldest_age_ms, 5000);

  // A changed definition: generation 1, the old state cleared, the config history grows.
  CommitBatch c;
  c.state_cleared.push_back("climate");
  c.pipelines.push_back({"climate", 1, "fp1", "{\"window\":2}", 9});
  c.config = ConfigRecord{"{\"v\":2}", 8};
  ASSERT_TRUE(CommitAndWait(store.get(), std::move(c)).status.ok());
  int state_rows = 0;
  ASSERT_TRUE(reader
                  ->ForEach("climate",
                            [&](char, std::string_view, std::string_view) {
                              ++state_rows;
                              return Status::Ok();
                            })
                  .ok());
  EXPECT_EQ(state_rows, 0);
  EXPECT_EQ(reader->Pipelines().value()[0].generation, 1);
  EXPECT_EQ(reader->LastConfig().value()->text, "{\"v\":2}");
}

TEST(StoreOutbox, EnqueueIsIdempotentAndDeleteNeedsTheRev) {
  TempDir dir;
  auto o = Options(dir);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  CommitBatch a;
  a.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 60000));
  a.outbox.push_back(MakeResult("gw-01/climate/d1/0", 1, 0, 60000));
  ASSERT_EQ(CommitAndWait(store.get(), std::move(a)).outbox_positions,
            (std::vector<int64_t>{1, 2}));
  // The same (id, rev) again: no new row, the existing position comes back.
  CommitBatch b;
  b.outbox.push_back(MakeResult("gw-01/climate/d1/0", 1, 0, 60000));
  b.outbox.push_back(MakeResult("gw-01/climate/d1/0", 2, 0, 60000));
  ASSERT_EQ(CommitAndWait(store.get(), std::move(b)).outbox_positions,
            (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(store->stats().outbox_rows, 3);

  auto reader = ReaderOrDie(o.path);
  ASSERT_TRUE(reader);
  EXPECT_EQ(AllRows(reader.get()).size(), 3u);
  // Wrong rev for pos 2: not deleted. Pos 1 deleted; deleting it again is no error.
  DeleteResult d = DeleteAndWait(store.get(), {{1, 0}, {2, 0}});
  ASSERT_TRUE(d.status.ok());
  EXPECT_EQ(d.deleted, 1);
  d = DeleteAndWait(store.get(), {{1, 0}});
  ASSERT_TRUE(d.status.ok());
  EXPECT_EQ(d.deleted, 0);
  auto rows = AllRows(reader.get());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].pos, 2);
  EXPECT_EQ(store->stats().outbox_rows, 2);
  EXPECT_EQ(store->stats().oldest_pos, 2);
  // Positions are never reused, even after the table empties.
  ASSERT_TRUE(DeleteAndWait(store.get(), {{2, 1}, {3, 2}}).status.ok());
  CommitBatch c;
  c.outbox.push_back(MakeResult("gw-01/climate/d1/60000", 0, 60000, 120000));
  EXPECT_EQ(CommitAndWait(store.get(), std::move(c)).outbox_positions, (std::vector<int64_t>{4}));
  EXPECT_EQ(store->stats().outbox_bytes,
            static_cast<int64_t>(AllRows(reader.get())[0].payload.size()));
}

TEST(StoreOutbox, ReadsOldestFirstAndNewest) {
  TempDir dir;
  auto o = Options(dir);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  CommitBatch b;
  for (int i = 0; i < 10; ++i) {
    b.outbox.push_back(MakeResult("gw-01/climate/d1/" + std::to_string(i), 0, i, i + 1));
  }
  OutboxEntry late;
  late.kind = OutboxKind::kLateSide;
  late.pipeline = "climate";
  late.payload = "{\"device\":\"d1\"}";
  b.outbox.push_back(late);
  b.outbox.push_back(late);  // no id: never merged
  ASSERT_TRUE(CommitAndWait(store.get(), std::move(b)).status.ok());
  auto reader = ReaderOrDie(o.path);
  ASSERT_TRUE(reader);
  std::vector<OutboxRow> rows;
  ASSERT_TRUE(reader->ReadOutbox(3, 8, 3, &rows).ok());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].pos, 4);
  EXPECT_EQ(rows[2].pos, 6);
  rows.clear();
  ASSERT_TRUE(reader->ReadOutbox(6, 8, 100, &rows).ok());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].pos, 8);
  rows.clear();
  ASSERT_TRUE(reader->ReadNewest(3, &rows).ok());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].pos, 10);
  EXPECT_EQ(rows[2].pos, 12);
  EXPECT_EQ(rows[2].kind, OutboxKind::kLateSide);
  EXPECT_EQ(rows[2].id, "");
}

TEST(StoreJournal, BatchDurabilityRowsAndCheckpointTrim) {
  TempDir dir;
  auto o = Options(dir);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  CommitBatch b;
  for (int i = 0; i < 5; ++i) {
    b.journal.push_back({1000 + i, "sensors/d1/telemetry", "{\"ts\":" + std::to_string(i) + "}"});
  }
  b.journal_processed = 3;  // two are still queued in the loop
  CommitResult r = CommitAndWait(store.get(), std::move(b));
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.journal_seqs, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(r.checkpoint_seq, 3);
  store->Close();

  auto reader = ReaderOrDie(o.path);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->CheckpointSeq().value(), 3);
  std::vector<int64_t> tail;
  ASSERT_TRUE(reader
                  ->ForEachJournal(3,
                                   [&](const Message& m) {
                                     tail.push_back(m.journal_seq);
                                     EXPECT_EQ(m.arrival_ms, 1000 + m.journal_seq - 1);
                                     return Status::Ok();
                                   })
                  .ok());
  EXPECT_EQ(tail, (std::vector<int64_t>{4, 5}));
  // Rows covered by the checkpoint are trimmed.
  EXPECT_EQ(QueryText(o.path, "SELECT min(seq) FROM journal"), "4");

  // The checkpoint never moves back.
  store = OpenOrDie(o);
  CommitBatch back;
  back.checkpoint_seq = 1;
  r = CommitAndWait(store.get(), std::move(back));
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.checkpoint_seq, 3);
  CommitBatch fwd;
  fwd.checkpoint_seq = 5;
  EXPECT_EQ(CommitAndWait(store.get(), std::move(fwd)).checkpoint_seq, 5);
  // Everything is covered; only the newest row stays, so seqs keep growing.
  EXPECT_EQ(QueryText(o.path, "SELECT group_concat(seq) FROM journal"), "5");
  CommitBatch more;
  more.journal.push_back({2000, "t", "x"});
  EXPECT_EQ(CommitAndWait(store.get(), std::move(more)).journal_seqs, (std::vector<int64_t>{6}));
}

// --- on_full ----------------------------------------------------------------

struct LossRecord {
  std::string id;
  int64_t first = 0, last = 0, lost = 0, from = 0, to = 0;
};

// Parses a loss row written by the store (fixed shape; see DESIGN 6.3).
LossRecord ParseLoss(const OutboxRow& row) {
  LossRecord l;
  l.id = row.id;
  long long first = 0, last = 0, lost = 0, from = 0, to = 0;
  std::string fmt = "{\"id\":\"gw-01/loss/%lld-%lld\",\"lost\":%lld,\"from\":%lld,\"to\":%lld}";
  EXPECT_EQ(std::sscanf(row.payload.c_str(), fmt.c_str(), &first, &last, &lost, &from, &to), 5)
      << row.payload;
  l.first = first, l.last = last, l.lost = lost, l.from = from, l.to = to;
  EXPECT_EQ(row.id, "gw-01/loss/" + std::to_string(first) + "-" + std::to_string(last));
  return l;
}

// Commits `n` batches of 10 results of ~1KB each; result i has window [i*1000, i*1000+1000).
void Fill(Store* store, int64_t* next, int batches) {
  for (int b = 0; b < batches; ++b) {
    CommitBatch batch;
    for (int i = 0; i < 10; ++i, ++*next) {
      batch.outbox.push_back(MakeResult("gw-01/climate/d1/" + std::to_string(*next), 0,
                                        *next * 1000, *next * 1000 + 1000, std::string(1000, 'x')));
    }
    CommitResult r = CommitAndWait(store, std::move(batch));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  }
}

TEST(StoreOnFull, DropOldestWritesOneLossRecordPerContiguousRange) {
  TempDir dir;
  auto o = Options(dir, 512 * 1024);
  o.on_full = OnFull::kDropOldest;
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  auto reader = ReaderOrDie(o.path);
  ASSERT_TRUE(reader);

  // Result k (from 0) gets outbox position k + 1 while no loss record is written.
  int64_t next = 0;
  Fill(store.get(), &next, 100);  // ~1MB of results into 512KB
  EXPECT_LE(store->stats().file_bytes, 512 * 1024);

  auto split = [&](std::vector<LossRecord>* losses, std::vector<OutboxRow>* results) {
    losses->clear();
    results->clear();
    for (const OutboxRow& row : AllRows(reader.get())) {
      if (row.kind == OutboxKind::kLoss) {
        losses->push_back(ParseLoss(row));
      } else {
        results->push_back(row);
      }
    }
  };
  std::vector<LossRecord> losses;
  std::vector<OutboxRow> results;
  split(&losses, &results);
  // Several drop rounds happened, all contiguous: exactly one record.
  ASSERT_EQ(losses.size(), 1u);
  ASSERT_FALSE(results.empty());
  LossRecord l = losses[0];
  int64_t loss_pos = 0;
  for (const auto& row : AllRows(reader.get())) {
    if (row.kind == OutboxKind::kLoss) loss_pos = row.pos;
  }
  EXPECT_EQ(l.first, 1);
  // Positions 1..last are the dropped results and, when it was written in
  // the middle of the range (the first drop), the record itself.
  EXPECT_EQ(l.lost, l.last - (loss_pos < l.last ? 1 : 0));
  EXPECT_EQ(results.front().pos, l.last + 1);  // nothing between dropped and pending
  EXPECT_EQ(l.from, 0);                        // window of result 0
  EXPECT_EQ(l.to, l.lost * 1000);              // end of result lost-1's window
  EXPECT_EQ(l.lost + static_cast<int64_t>(results.size()), next);
  EXPECT_EQ(store->stats().lost_total, l.lost);
  EXPECT_GT(l.lost, 200);

  // Deliver the oldest pending result: the next drop cannot be contiguous with
  // the first range, so it gets a record of its own.
  int64_t gap_pos = results.front().pos;
  ASSERT_EQ(DeleteAndWait(store.get(), {{gap_pos, 0}}).deleted, 1);
  Fill(store.get(), &next, 30);
  split(&losses, &results);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_EQ(losses[0].last, l.last);  // the first record was not touched
  EXPECT_EQ(losses[0].lost, l.lost);
  EXPECT_EQ(losses[1].first, gap_pos + 1);
  // Every result is pending, delivered (1) or in exactly one record.
  EXPECT_EQ(losses[0].lost + losses[1].lost + 1 + static_cast<int64_t>(results.size()), next);
  EXPECT_GT(results.front().pos, losses[1].last);

  // Deliver the second loss record (as the uplink would): later drops start a new one.
  const OutboxRow* second = nullptr;
  auto rows = AllRows(reader.get());
  for (const auto& row : rows) {
    if (row.kind == OutboxKind::kLoss && row.id == losses[1].id) second = &row;
  }
  ASSERT_NE(second, nullptr);
  const int64_t second_lost = losses[1].lost;
  ASSERT_EQ(DeleteAndWait(store.get(), {{second->pos, second->rev}}).deleted, 1);
  Fill(store.get(), &next, 30);
  split(&losses, &results);
  ASSERT_EQ(losses.size(), 2u);  // the first and a new third one
  EXPECT_GT(losses[1].first, l.last);
  EXPECT_EQ(store->stats().lost_total, losses[0].lost + second_lost + losses[1].lost);
  // Every result is pending, delivered (1) or counted in exactly one record.
  EXPECT_EQ(store->stats().lost_total + 1 + static_cast<int64_t>(results.size()), next);
  store->Close();
  EXPECT_EQ(QueryText(o.path, "PRAGMA integrity_check"), "ok");
}

TEST(StoreOnFull, DropOldestMakesRoomForABatchBeyondTheHardCap) {
  TempDir dir;
  auto o = Options(dir, 512 * 1024);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  auto reader = ReaderOrDie(o.path);
  int64_t next = 0;
  Fill(store.get(), &next, 15);  // ~150KB: below the soft limit, nothing dropped
  ASSERT_EQ(store->stats().lost_total, 0);
  // One batch of ~200KB cannot fit next to them under max_page_count: the
  // store drops the oldest in a transaction of its own, then commits it.
  CommitBatch big;
  for (int i = 0; i < 200; ++i, ++next) {
    big.outbox.push_back(MakeResult("gw-01/climate/d1/" + std::to_string(next), 0, next * 1000,
                                    next * 1000 + 1000, std::string(1000, 'y')));
  }
  CommitResult r = CommitAndWait(store.get(), std::move(big));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_GT(r.dropped, 0);
  EXPECT_EQ(r.outbox_positions.size(), 200u);
  int losses = 0, results = 0;
  for (const auto& row : AllRows(reader.get())) {
    if (row.kind == OutboxKind::kLoss) {
      ++losses;
      EXPECT_EQ(ParseLoss(row).first, 1);
    } else {
      ++results;
    }
  }
  EXPECT_EQ(losses, 1);
  EXPECT_EQ(results + store->stats().lost_total, next);
  EXPECT_LE(store->stats().file_bytes, 512 * 1024);
}

TEST(StoreOnFull, ExtendedLossRecordIsNotDeletedByAStaleAck) {
  TempDir dir;
  auto o = Options(dir, 512 * 1024);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  auto reader = ReaderOrDie(o.path);
  int64_t next = 0;
  Fill(store.get(), &next, 60);
  std::vector<OutboxRow> rows = AllRows(reader.get());
  OutboxRow loss;
  for (const auto& r : rows) {
    if (r.kind == OutboxKind::kLoss) loss = r;
  }
  ASSERT_EQ(loss.kind, OutboxKind::kLoss);
  Fill(store.get(), &next, 40);  // drops more, extends the same record (rev + 1)
  // The ack for the old version of the record does not delete the new one.
  EXPECT_EQ(DeleteAndWait(store.get(), {{loss.pos, loss.rev}}).deleted, 0);
  rows = AllRows(reader.get());
  int losses = 0;
  for (const auto& r : rows) {
    if (r.kind != OutboxKind::kLoss) continue;
    ++losses;
    EXPECT_EQ(r.pos, loss.pos);
    EXPECT_GT(r.rev, loss.rev);
    EXPECT_GT(ParseLoss(r).last, ParseLoss(loss).last);
  }
  EXPECT_EQ(losses, 1);
}

// The uplink seals a loss record before reading it, so the version it sends
// is final: later drops go into a record of their own, and every dropped
// result is counted in exactly one record.
TEST(StoreOnFull, SealedLossRecordIsNeverExtended) {
  TempDir dir;
  auto o = Options(dir, 512 * 1024);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  auto reader = ReaderOrDie(o.path);
  int64_t next = 0;
  Fill(store.get(), &next, 60);
  OutboxRow sealed;
  for (const auto& r : AllRows(reader.get())) {
    if (r.kind == OutboxKind::kLoss) sealed = r;
  }
  ASSERT_EQ(sealed.kind, OutboxKind::kLoss);
  CommitBatch seal;
  seal.seal_loss_upto = sealed.pos;
  ASSERT_TRUE(CommitAndWait(store.get(), std::move(seal)).status.ok());
  Fill(store.get(), &next, 40);  // drops more
  std::vector<LossRecord> losses;
  int64_t results = 0;
  for (const auto& r : AllRows(reader.get())) {
    if (r.kind == OutboxKind::kLoss) {
      if (r.pos == sealed.pos) {
        EXPECT_EQ(r.rev, sealed.rev);  // untouched
        EXPECT_EQ(r.payload, sealed.payload);
      }
      losses.push_back(ParseLoss(r));
    } else {
      ++results;
    }
  }
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_EQ(losses[1].first, losses[0].last + 1 + (sealed.pos == losses[0].last + 1 ? 1 : 0));
  EXPECT_EQ(losses[0].lost + losses[1].lost + results, next);
}

TEST(StoreOnFull, BlockTakesABatchWhenNothingPendingCouldFreeRoom) {
  // Holding a batch back is only worth it while delivering pending results can free
  // room. With nothing pending it would wait for ever (in the field: the journal rows
  // the batch itself trims had filled the file), so it goes in up to the hard cap.
  TempDir dir;
  auto o = Options(dir, 4 * 1024 * 1024);
  o.on_full = OnFull::kBlock;
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  int64_t next = 0;
  auto batch_of = [&](int n) {
    CommitBatch b;
    for (int i = 0; i < n; ++i, ++next)
      b.outbox.push_back(MakeResult("gw-01/climate/d1/" + std::to_string(next), 0, next * 1000,
                                    next * 1000 + 1000, std::string(1000, 'x')));
    return b;
  };
  // Measure what a row costs, then deliver those rows: nothing pending.
  int64_t used0 = store->stats().used_bytes;
  ASSERT_TRUE(CommitAndWait(store.get(), batch_of(200)).status.ok());
  double per_row = static_cast<double>(store->stats().used_bytes - used0) / 200;
  std::vector<OutboxKey> keys;
  for (int64_t p = 1; p <= 200; ++p) keys.push_back({p, 0});
  ASSERT_EQ(DeleteAndWait(store.get(), keys).deleted, 200);
  ASSERT_EQ(store->stats().outbox_rows, 0);
  // One batch that ends between the soft limit and the hard cap (soft = hard less 1/16).
  int64_t soft = store->stats().limit_bytes;
  int64_t hard = soft * 16 / 15;
  int rows = static_cast<int>((soft + (hard - soft) / 3 - store->stats().used_bytes) / per_row);
  CommitResult big = CommitAndWait(store.get(), batch_of(rows));
  ASSERT_TRUE(big.status.ok()) << big.status.ToString() << " (" << rows << " rows)";
  ASSERT_GT(store->stats().used_bytes, soft) << "the test batch did not pass the soft limit";
  // Now results are pending: growth is held back again.
  CommitResult more = CommitAndWait(store.get(), batch_of(10));
  EXPECT_EQ(more.status.code(), StatusCode::kResourceExhausted) << more.status.ToString();
  EXPECT_EQ(store->stats().lost_total, 0);
}

TEST(StoreOnFull, BlockRefusesGrowthUntilRowsAreDeleted) {
  TempDir dir;
  auto o = Options(dir, 512 * 1024);
  o.on_full = OnFull::kBlock;
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  int64_t next = 0, committed = 0;
  CommitResult refused;
  for (int b = 0; b < 200; ++b) {
    CommitBatch batch;
    for (int i = 0; i < 10; ++i, ++next) {
      batch.outbox.push_back(MakeResult("gw-01/climate/d1/" + std::to_string(next), 0, next * 1000,
                                        next * 1000 + 1000, std::string(1000, 'x')));
    }
    CommitResult r = CommitAndWait(store.get(), std::move(batch));
    if (!r.status.ok()) {
      refused = std::move(r);
      break;
    }
    committed += 10;
  }
  ASSERT_EQ(refused.status.code(), StatusCode::kResourceExhausted) << refused.status.ToString();
  EXPECT_NE(refused.status.message().find("on_full block"), std::string::npos);
  EXPECT_TRUE(refused.outbox_positions.empty());
  ASSERT_EQ(refused.batch.outbox.size(), 10u);  // handed back for a retry
  EXPECT_TRUE(store->stats().full);
  EXPECT_EQ(store->stats().outbox_rows, committed);  // nothing dropped
  EXPECT_EQ(store->stats().lost_total, 0);
  EXPECT_LE(store->stats().file_bytes, 512 * 1024);

  // Still refused while nothing is delivered.
  CommitResult again = CommitAndWait(store.get(), std::move(refused.batch));
  ASSERT_EQ(again.status.code(), StatusCode::kResourceExhausted);
  // A batch that only moves the checkpoint (frees journal rows) still goes through.
  CommitBatch cp;
  cp.checkpoint_seq = 0;
  EXPECT_TRUE(CommitAndWait(store.get(), std::move(cp)).status.ok());

  // The uplink delivers the oldest 100 results: the retry now fits.
  std::vector<OutboxKey> keys;
  for (int64_t p = 1; p <= 100; ++p) keys.push_back({p, 0});
  ASSERT_EQ(DeleteAndWait(store.get(), keys).deleted, 100);
  CommitResult retry = CommitAndWait(store.get(), std::move(again.batch));
  ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
  EXPECT_EQ(retry.outbox_positions.front(), committed + 1);
  EXPECT_FALSE(store->stats().full);
}

// --- errors -----------------------------------------------------------------

TEST(StoreErrors, CodesMapToStatusWithMessageAndHint) {
  using storage_internal::SqliteError;
  struct Case {
    int rc;
    StatusCode code;
    const char* hint_word;
  } cases[] = {
      {SQLITE_FULL, StatusCode::kResourceExhausted, "free space"},
      {SQLITE_IOERR_WRITE, StatusCode::kUnavailable, "card"},
      {SQLITE_IOERR_FSYNC, StatusCode::kUnavailable, "card"},
      {SQLITE_CORRUPT, StatusCode::kDataLoss, "move the file"},
      {SQLITE_NOTADB, StatusCode::kDataLoss, "restore a backup"},
      {SQLITE_BUSY, StatusCode::kUnavailable, "second weir"},
      {SQLITE_BUSY_SNAPSHOT, StatusCode::kUnavailable, "second weir"},
      {SQLITE_LOCKED, StatusCode::kUnavailable, "second weir"},
      {SQLITE_CANTOPEN, StatusCode::kFailedPrecondition, "directory"},
      {SQLITE_READONLY, StatusCode::kFailedPrecondition, "writable"},
      {SQLITE_MISUSE, StatusCode::kInternal, "bug"},
  };
  for (const Case& c : cases) {
    Status st = SqliteError(c.rc, "commit", "the sqlite message", "/data/weir.db");
    EXPECT_EQ(st.code(), c.code) << c.rc;
    EXPECT_NE(st.message().find("the sqlite message"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("/data/weir.db"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(c.hint_word), std::string::npos) << st.message();
  }
}

TEST(StoreErrors, RealDiskFullFromMaxPageCount) {
  // One batch larger than max_bytes can never fit: SQLite's own SQLITE_FULL.
  TempDir dir;
  auto o = Options(dir, 256 * 1024);
  o.on_full = OnFull::kBlock;
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  CommitBatch big;
  big.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 1));
  big.journal.push_back({1, "t", std::string(400 * 1024, 'j')});
  CommitResult r = CommitAndWait(store.get(), std::move(big));
  ASSERT_EQ(r.status.code(), StatusCode::kResourceExhausted) << r.status.ToString();
  EXPECT_NE(r.status.message().find("full"), std::string::npos) << r.status.ToString();
  EXPECT_EQ(r.batch.journal.size(), 1u);
  EXPECT_EQ(store->stats().outbox_rows, 0);
  // The store is still usable afterwards.
  CommitBatch small;
  small.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 1));
  EXPECT_TRUE(CommitAndWait(store.get(), std::move(small)).status.ok());
}

TEST(StoreErrors, BusyIsUnavailableAndTheBatchCanBeRetried) {
  TempDir dir;
  auto o = Options(dir);
  o.busy_timeout_ms = 50;
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(o.path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  CommitBatch b;
  b.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 1));
  CommitResult r = CommitAndWait(store.get(), std::move(b));
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.ToString();
  EXPECT_NE(r.status.message().find("locked"), std::string::npos) << r.status.ToString();
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  CommitResult retry = CommitAndWait(store.get(), std::move(r.batch));
  ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
  EXPECT_EQ(retry.outbox_positions, (std::vector<int64_t>{1}));
}

TEST(StoreErrors, CorruptFileIsDataLoss) {
  TempDir dir;
  auto o = Options(dir);
  { ASSERT_TRUE(OpenOrDie(o)); }
  {
    std::fstream f(o.path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "this is not sqlite!";
  }
  auto s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << s.status().ToString();
  EXPECT_NE(s.status().message().find("move the file"), std::string::npos);
  auto r = StoreReader::Open(o.path, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
}

TEST(StoreErrors, MissingDirectoryIsFailedPrecondition) {
  TempDir dir;
  auto o = Options(dir);
  o.path = dir.file("no/such/dir/weir.db");
  auto s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status().ToString();
}

TEST(StoreErrors, TooSmallMaxBytesIsInvalid) {
  TempDir dir;
  auto s = Store::Open(Options(dir, 100 * 1024));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

// A real full file system: a 1MB tmpfs (needs CAP_SYS_ADMIN; skipped elsewhere).
class TinyTmpfs {
 public:
  explicit TinyTmpfs(const TempDir& dir) : path_(dir.file("mnt")) {
    std::filesystem::create_directory(path_);
    mounted_ = ::mount("tmpfs", path_.c_str(), "tmpfs", 0, "size=1m") == 0;
  }
  ~TinyTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// Fills the store until a commit fails; returns the failure.
CommitResult FillUntilFailure(Store* store) {
  int64_t next = 0;
  for (int b = 0; b < 400; ++b) {
    CommitBatch batch;
    for (int i = 0; i < 10; ++i, ++next) {
      batch.outbox.push_back(
          MakeResult("gw/p/d/" + std::to_string(next), 0, 0, 1, std::string(1000, 'x')));
    }
    CommitResult r = CommitAndWait(store, std::move(batch));
    if (!r.status.ok()) return r;
  }
  return CommitResult();
}

void ExpectEnospcHandled(OnFull on_full, int64_t max_bytes) {
  TempDir dir;
  TinyTmpfs fs(dir);
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  StoreOptions o;
  o.path = fs.path() + "/weir.db";
  o.max_bytes = max_bytes;
  o.on_full = on_full;
  o.gateway = "gw";
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  CommitResult failed = FillUntilFailure(store.get());
  ASSERT_EQ(failed.status.code(), StatusCode::kResourceExhausted) << failed.status.ToString();
  EXPECT_NE(failed.status.message().find("free space"), std::string::npos);
  EXPECT_EQ(failed.batch.outbox.size(), 10u);
  // The disk filled before max_bytes: nothing was dropped for it.
  EXPECT_EQ(store->stats().lost_total, 0);
  int64_t rows = store->stats().outbox_rows;
  store->Close();
  store.reset();
  // Everything committed before the failure is intact.
  EXPECT_EQ(QueryText(o.path, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(QueryText(o.path, "SELECT count(*) FROM outbox"), std::to_string(rows));
}

TEST(StoreErrors, RealEnospcOnTinyTmpfsUnbounded) { ExpectEnospcHandled(OnFull::kBlock, 0); }

TEST(StoreErrors, RealEnospcWithDropOldestIsReported) {
  ExpectEnospcHandled(OnFull::kDropOldest, 64 * 1024 * 1024);
}

// --- read-only open ---------------------------------------------------------

TEST(StoreReadOnly, StatusWhileAWriterIsActive) {
  TempDir dir;
  auto o = Options(dir);
  auto store = OpenOrDie(o);
  ASSERT_TRUE(store);
  CommitBatch first;
  first.pipelines.push_back({"climate", 2, "fp", "{}", 1});
  first.outbox.push_back(MakeResult("gw-01/climate~2/d1/0", 0, 0, 1));
  ASSERT_TRUE(CommitAndWait(store.get(), std::move(first)).status.ok());

  std::atomic<bool> stop{false};
  std::atomic<int64_t> written{1};
  std::thread writer([&] {
    for (int i = 1; !stop && i < 100000; ++i) {
      CommitBatch b;
      b.outbox.push_back(MakeResult("gw-01/climate~2/d1/" + std::to_string(i), 0, i, i + 1));
      if (CommitAndWait(store.get(), std::move(b)).status.ok()) written = i + 1;
    }
  });
  auto reader = ReaderOrDie(o.path, /*read_only=*/true);
  ASSERT_TRUE(reader);
  int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    int64_t before = written.load();
    auto st = reader->ReadStatus(1700000001000);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    EXPECT_GE(st->outbox_rows, before);  // sees at least what was committed before
    EXPECT_GE(st->outbox_rows, last);
    last = st->outbox_rows;
    ASSERT_EQ(st->pipelines.size(), 1u);
    EXPECT_EQ(st->pipelines[0].pipeline.generation, 2);
    EXPECT_EQ(st->pipelines[0].pending_rows, st->outbox_rows);
    EXPECT_EQ(st->oldest_age_ms, 1000);
  }
  stop = true;
  writer.join();
  store->Close();
  EXPECT_EQ(QueryText(o.path, "PRAGMA integrity_check"), "ok");
}

TEST(StoreReadOnly, NeverCreatesAFileAndReadsAClosedDatabase) {
  TempDir dir;
  auto missing = StoreReader::Open(dir.file("missing.db"), true);
  ASSERT_FALSE(missing.ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing.db")));
  auto o = Options(dir);
  {
    auto store = OpenOrDie(o);
    CommitBatch b;
    b.outbox.push_back(MakeResult("gw-01/climate/d1/0", 0, 0, 1, "12345"));
    ASSERT_TRUE(CommitAndWait(store.get(), std::move(b)).status.ok());
  }
  // weir stopped cleanly: the WAL was checkpointed and removed.
  EXPECT_FALSE(std::filesystem::exists(o.path + "-wal"));
  auto reader = ReaderOrDie(o.path, true);
  ASSERT_TRUE(reader);
  auto st = reader->ReadStatus(1700000000000);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->outbox_rows, 1);
  EXPECT_EQ(st->outbox_bytes, 5);
  EXPECT_EQ(st->schema_version, kStoreSchemaVersion);
}

}  // namespace
}  // namespace weir
