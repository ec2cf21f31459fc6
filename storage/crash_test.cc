// Real crashes: a forked child writes through the Store and is killed with
// SIGKILL at an arbitrary moment; the parent reopens the file and checks that
// every commit the child saw complete is there, whole, and nothing else is
// half there.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "storage/store.h"
#include "storage/test_util.h"

namespace weir {
namespace {

using storage_test::CommitAndWait;
using storage_test::QueryText;
using storage_test::TempDir;

constexpr int kRowsPerBatch = 5;
constexpr int kJournalPerBatch = 3;

StoreOptions Options(const TempDir& dir) {
  StoreOptions o;
  o.path = dir.file("weir.db");
  o.max_bytes = 0;
  o.gateway = "gw";
  return o;
}

// Reads int64 records from `fd` until `want` arrived or the deadline passed.
std::vector<int64_t> ReadReports(int fd, size_t want, std::chrono::seconds deadline) {
  std::vector<int64_t> out;
  auto end = std::chrono::steady_clock::now() + deadline;
  std::string buf;
  while (out.size() < want && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
    while (buf.size() >= sizeof(int64_t)) {
      int64_t v;
      memcpy(&v, buf.data(), sizeof v);
      out.push_back(v);
      buf.erase(0, sizeof v);
    }
  }
  return out;
}

// Child: commits batches 1, 2, ... forever, reporting each completed one.
[[noreturn]] void CommitForever(const StoreOptions& o, int fd) {
  auto store = Store::Open(o);
  if (!store.ok()) _exit(3);
  for (int64_t i = 1;; ++i) {
    CommitBatch b;
    for (int k = 0; k < kRowsPerBatch; ++k) {
      b.outbox.push_back(
          storage_test::MakeResult("gw/p/b" + std::to_string(i) + "/" + std::to_string(k), 0, i,
                                   i + 1, std::string(200 + 50 * k, 'x')));
    }
    BatchStateWriter w(&b);
    w.Put("p", 'p', "", std::to_string(i));
    w.Put("p", 'k', "b" + std::to_string(i), std::string(300, 's'));
    b.dedup.push_back({"d", std::to_string(i)});
    b.counters.push_back({"batches", i});
    for (int j = 0; j < kJournalPerBatch; ++j) b.journal.push_back({i, "t", std::to_string(i)});
    b.journal_processed = kJournalPerBatch;
    CommitResult r = CommitAndWait(store->get(), std::move(b));
    if (!r.status.ok()) _exit(4);
    if (write(fd, &i, sizeof i) != sizeof i) _exit(5);
  }
}

TEST(StoreCrash, KilledMidCommitLeavesWholeBatchesOnly) {
  TempDir dir;
  auto o = Options(dir);
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      CommitForever(o, fds[1]);
    }
    close(fds[1]);
    // Let it run a while (a different number of batches each round), then kill.
    auto reports = ReadReports(fds[0], 40 + 37 * round, std::chrono::seconds(30));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited on its own: " << WEXITSTATUS(status);
    ASSERT_FALSE(reports.empty());
    const int64_t acked = reports.back();

    EXPECT_EQ(QueryText(o.path, "PRAGMA integrity_check"), "ok");
    auto store = Store::Open(o);  // recovery open
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto reader = StoreReader::Open(o.path, true);
    ASSERT_TRUE(reader.ok());
    std::vector<OutboxRow> rows;
    ASSERT_TRUE((*reader)->ReadOutbox(0, INT64_MAX, 1 << 20, &rows).ok());
    std::map<int64_t, int> per_batch;
    for (const auto& r : rows) per_batch[r.window_start] += 1;
    ASSERT_FALSE(per_batch.empty());
    const int64_t last = per_batch.rbegin()->first;
    // Batches 1..last are all there (this round's child restarted at 1 and
    // re-enqueued the same ids: idempotent), each whole.
    EXPECT_GE(last, acked);
    EXPECT_EQ(static_cast<int64_t>(per_batch.size()), last);
    for (const auto& [batch, n] : per_batch) EXPECT_EQ(n, kRowsPerBatch) << "batch " << batch;
    // The rest of each batch is in step with its outbox rows.
    auto st = (*reader)->ReadStatus(0);
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(st->counters.size(), 1u);
    // This round's child counted from 1 again; it got at least as far as acked.
    int64_t counter = st->counters[0].second;
    EXPECT_GE(counter, acked);
    std::string p_state;
    int keys = 0;
    ASSERT_TRUE((*reader)
                    ->ForEach("p",
                              [&](char kind, std::string_view, std::string_view blob) {
                                if (kind == 'p') p_state = std::string(blob);
                                if (kind == 'k') ++keys;
                                return Status::Ok();
                              })
                    .ok());
    EXPECT_EQ(p_state, std::to_string(counter));
    std::string dedup;
    ASSERT_TRUE((*reader)
                    ->ForEachDedup([&](std::string_view, std::string_view blob) {
                      dedup = std::string(blob);
                      return Status::Ok();
                    })
                    .ok());
    EXPECT_EQ(dedup, std::to_string(counter));
    // Journal: every row is processed in its own batch, so nothing is left
    // after the checkpoint (the newest row stays as the seq high mark), and
    // the checkpoint counts every journal row.
    EXPECT_EQ(st->journal_rows, 0);
    EXPECT_EQ(QueryText(o.path, "SELECT count(*) FROM journal"), "1");
    if (round == 0) {
      EXPECT_EQ(counter, last);
      EXPECT_EQ(keys, last);
      EXPECT_EQ(st->checkpoint_seq, last * kJournalPerBatch);
    }
  }
}

// Child: appends to the journal from two threads, reporting (seq, tag) pairs.
[[noreturn]] void AppendForever(const StoreOptions& o, int fd) {
  auto store = Store::Open(o);
  if (!store.ok()) _exit(3);
  auto journal = (*store)->NewJournalWriter();
  if (!journal.ok()) _exit(3);
  std::mutex mu;
  auto run = [&](int64_t t) {
    for (int64_t i = 0;; ++i) {
      int64_t tag = t * 1000000 + i;
      Message m{tag, "sensors/x", "payload-" + std::to_string(tag)};
      if (!(*journal)->Append(&m).ok()) _exit(4);
      int64_t rec[2] = {m.journal_seq, tag};
      std::lock_guard<std::mutex> l(mu);
      if (write(fd, rec, sizeof rec) != sizeof rec) _exit(5);
    }
  };
  std::thread a(run, 1);
  run(2);
  a.join();
  _exit(0);
}

TEST(StoreCrash, EveryReturnedJournalAppendSurvivesSigkill) {
  TempDir dir;
  auto o = Options(dir);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    AppendForever(o, fds[1]);
  }
  close(fds[1]);
  auto reports = ReadReports(fds[0], 2 * 500, std::chrono::seconds(30));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(fds[0]);
  ASSERT_GE(reports.size(), 2u);

  auto reader = StoreReader::Open(o.path, true);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::map<int64_t, std::string> journal;
  ASSERT_TRUE((*reader)
                  ->ForEachJournal(0,
                                   [&](const Message& m) {
                                     journal[m.journal_seq] = m.payload;
                                     EXPECT_EQ(m.payload,
                                               "payload-" + std::to_string(m.arrival_ms));
                                     return Status::Ok();
                                   })
                  .ok());
  for (size_t i = 0; i + 1 < reports.size(); i += 2) {
    auto it = journal.find(reports[i]);
    ASSERT_NE(it, journal.end()) << "seq " << reports[i] << " lost";
    EXPECT_EQ(it->second, "payload-" + std::to_string(reports[i + 1]));
  }
  EXPECT_EQ(QueryText(o.path, "PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace weir
