#include "runtime/memory_budget.h"

#include <algorithm>

#include "storage/store.h"

namespace weir {
namespace {

// Sizes on a 64-bit build (glibc malloc: 16-byte chunk header, 32-byte
// minimum chunk). A 32-bit ARM build is smaller; the budget stays an upper
// bound there.

// Measured: VmHWM of `weir run` on amd64 with one key and one device after
// 30000 readings was 14.3 MB, of which about 2.3 MB were messages and SQLite
// pages (counted apart below).
// Most of it is the resident pages of shared libraries (libstdc++, libc,
// SQLite, Paho, libuv, cpp-httplib, and 3.3 MB of libcrypto, which
// cpp-httplib's static initialiser sets up at load), which other processes
// share; the rest is
// the loop, store worker, Paho and metrics threads with their first arena
// pages, and the JSON parser's buffers.
constexpr int64_t kFixedBytes = 12 * 1024 * 1024;
// operators/engine.cc. A window: the Window record and its free-list entry
// (160), its small vectors of dirty devices and retractions with their malloc
// chunks (96), and one 80-byte AggSlot per aggregate in a chunk of its own.
constexpr int64_t kWindowBytes = 160 + 96 + 16;
constexpr int64_t kAggSlotBytes = 80;
// A quantile aggregate's sketch (operators/quantile_sketch.h): the record and
// two bucket stores that reserve 64 counts each, enough for values within a
// factor ~1.9 of each other (a temperature, a current). Wider spreads grow a
// store, up to 8192 counts (32 KB) each.
constexpr int64_t kSketchBytes = 768;
// A key: KeyState (136), its hash-index entry and name (56), its values and
// id text when longer than the small-string buffer (64), LRU and scratch (24).
constexpr int64_t kKeyBytes = 280;
// A device in one pipeline: DeviceState (128), its key list (32), its index
// entry and name (56), two min-tree leaves (2 x 32 with the tree's inner
// nodes) and scratch lists (16).
constexpr int64_t kDeviceBytes = 300;
// The window pool starts at 16 windows and doubles, constructing every
// window it adds, so the pool holds the next power-of-two step at or above the
// windows in use; while it grows, the old array of records (160 bytes each) is
// still there as the new one fills. Other tables grow by doubling too but
// touch only what they hold; their copy when they grow counts once.
constexpr int64_t kWindowPoolMin = 16;
constexpr int64_t kWindowRecordBytes = 160;
constexpr int64_t kTableGrowthPercent = 150;

// ingest/dedup.cc: a device's hash-map node, bucket and name (150); its seq
// window (137, in a vector that doubles) only when `seq` is configured.
constexpr int64_t kDedupDeviceBytes = 150;
constexpr int64_t kDedupSeqBytes = 2 * 144;

// runtime/daemon.cc: a Message (80) with its topic and payload text in malloc
// chunks, for a typical ~100-byte payload. Payloads near source.max_payload
// take that much more each.
constexpr int64_t kMessageBytes = 256;
constexpr int64_t kIngestSlice = 512;  // taken off the queue per loop turn

// One group commit can carry a checkpoint row for every key and device and a
// result for every key at once (a window boundary that all keys cross). A
// state row: its StateChange with id and blob texts, and the vector's
// doubling (heaptrack: ~200 bytes a row at 10k keys); the blob grows with the
// aggregates. A result: its outbox entry with id and JSON (~330), and the
// doubling of the vector holding the entries.
constexpr int64_t kStateRowBytes = 200;
constexpr int64_t kStateRowPerAggregate = 16;
constexpr int64_t kResultBytes = 450;
constexpr int64_t kResultPerAggregate = 24;

// storage/: per connection, besides its page cache: schema, prepared
// statements and lookaside slots.
constexpr int64_t kSqliteConnectionBytes = 192 * 1024;

int64_t WindowPoolBytes(int64_t windows, int64_t window_bytes) {
  int64_t pool = kWindowPoolMin;
  while (pool < windows) pool *= 2;
  return pool * window_bytes + (pool / 2) * kWindowRecordBytes;
}

int64_t WindowsPerKey(const PipelineConfig& p) {
  const EventTimeConfig& et = p.event_time;
  if (p.window.type == WindowType::kSession) {
    // The open session, one that a gap just closed while late readings can
    // still merge into it, and one kept for allowed_lateness.
    return 2 + (et.allowed_lateness_ms > 0 ? 1 : 0);
  }
  int64_t hop = p.window.hop_ms > 0 ? p.window.hop_ms : p.window.size_ms;
  if (hop <= 0) hop = 1;
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  // Windows a reading can fall in, plus those still open while the
  // watermark trails by max_out_of_orderness, plus fired ones kept for
  // allowed_lateness. (With no out-of-orderness a window fires in the step
  // that opens the next, so the pool then needs one window per key.)
  return ceil_div(p.window.size_ms, hop) + ceil_div(et.max_out_of_orderness_ms, hop) +
         ceil_div(et.allowed_lateness_ms, hop);
}

}  // namespace

MemoryBudget ComputeMemoryBudget(const Config& c) {
  MemoryBudget b;
  b.fixed = kFixedBytes;

  const int64_t devices = std::max<int64_t>(c.source.max_devices, 1);
  int64_t key_row_bytes = 0;  // checkpoint rows and results of every key
  for (const PipelineConfig& p : c.pipelines) {
    PipelineMemory m;
    bool only_device = p.key.size() == 1 && p.key[0] == "device";
    m.keys = p.key.empty() ? 1 : only_device ? std::min(p.max_keys, devices) : p.max_keys;
    m.keys = std::max<int64_t>(m.keys, 1);
    m.windows_per_key = WindowsPerKey(p);
    m.window_bytes = kWindowBytes;
    int64_t aggs = static_cast<int64_t>(p.aggregates.size());
    for (const AggregateConfig& a : p.aggregates)
      m.window_bytes += kAggSlotBytes + (a.kind == AggregateKind::kQuantile ? kSketchBytes : 0);
    m.bytes = m.keys * kKeyBytes * kTableGrowthPercent / 100 +
              WindowPoolBytes(m.keys * m.windows_per_key, m.window_bytes) +
              devices * kDeviceBytes * kTableGrowthPercent / 100;
    b.pipelines += m.bytes;
    key_row_bytes += m.keys * (kStateRowBytes + kStateRowPerAggregate * aggs + kResultBytes +
                               kResultPerAggregate * aggs);
    b.per_pipeline.push_back(m);
  }

  bool seq = !c.source.seq.empty();
  b.devices = devices * (kDedupDeviceBytes + (seq ? kDedupSeqBytes : 0));

  // The queue at capacity and the slice the loop took off it; with durability
  // batch also the messages of the pending and the in-flight group commit.
  int64_t messages = c.ingest.queue_capacity + kIngestSlice;
  if (c.ingest.durability == Durability::kBatch) messages += 2 * MaxPendingMessages(c);
  b.messages = messages * kMessageBytes;

  // Device checkpoint rows ('d', one per device per pipeline, and dedup rows).
  b.commit = key_row_bytes +
             devices * static_cast<int64_t>(c.pipelines.size() + (seq ? 1 : 0)) * kStateRowBytes;

  int connections = 2 + (c.ingest.durability == Durability::kJournal ? 1 : 0);
  b.sqlite = kWriterCacheBytes + (connections - 1) * kReaderCacheBytes +
             connections * kSqliteConnectionBytes;

  b.total = b.fixed + b.pipelines + b.devices + b.messages + b.commit + b.sqlite;
  return b;
}

}  // namespace weir
