// The firmware library on the host: ring buffer, encoders, seq and replay
// order, and no heap use after init. Expected payloads are written by hand
// from DESIGN 4 and schemas/reading.fbs.
#include "weir_device.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "schemas/reading_generated.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// Counts every heap allocation of this binary (it holds only these tests).
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace weir_fw {
namespace {

const char* const kFields[] = {"t", "h"};
const Schema kSchema = {"d1", kFields, 2, 2};

Reading Make(int64_t ts, int64_t seq, double t, double h) {
  Reading r;
  r.ts = ts;
  r.seq = seq;
  r.values[0] = t;
  r.values[1] = h;
  return r;
}

TEST(RingTest, KeepsTheNewestWhenFull) {
  Ring<int, 3> ring;
  EXPECT_TRUE(ring.Push(1));
  EXPECT_TRUE(ring.Push(2));
  EXPECT_TRUE(ring.Push(3));
  EXPECT_FALSE(ring.Push(4));  // 1 dropped
  EXPECT_FALSE(ring.Push(5));  // 2 dropped
  ASSERT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.At(0), 3);
  EXPECT_EQ(ring.At(2), 5);
  ring.PopFront(2);
  EXPECT_EQ(ring.At(0), 5);
  EXPECT_TRUE(ring.Push(6));
  EXPECT_EQ(ring.At(1), 6);
}

TEST(EncodeJsonTest, OneReadingIsAnObjectSeveralAnArray) {
  char out[256];
  Reading rs[2] = {Make(1000, 1, 21.5, 40), Make(2000, 2, -3.125, 41.25)};
  size_t n = EncodeJson(kSchema, rs, 1, 1500, out, sizeof(out));
  EXPECT_EQ(std::string(out, n), R"({"ts":1000,"seq":1,"sent_at":1500,"t":21.50,"h":40.00})");
  n = EncodeJson(kSchema, rs, 2, 2500, out, sizeof(out));
  EXPECT_EQ(std::string(out, n), R"([{"ts":1000,"seq":1,"sent_at":2500,"t":21.50,"h":40.00},)"
                                 R"({"ts":2000,"seq":2,"sent_at":2500,"t":-3.12,"h":41.25}])");
}

TEST(EncodeJsonTest, TooSmallABufferGivesNothing) {
  char out[20];
  Reading r = Make(1000, 1, 21.5, 40);
  EXPECT_EQ(EncodeJson(kSchema, &r, 1, 1500, out, sizeof(out)), 0u);
}

TEST(EncodeFlatBuffersTest, ABatchWeirVerifiesAndGroupsBySeq) {
  alignas(8) uint8_t arena[1024];
  Reading rs[2] = {Make(1000, 7, 21.5, 40), Make(2000, 8, 22, 41)};
  size_t size = 0;
  const uint8_t* buf = EncodeFlatBuffers(kSchema, rs, 2, 2500, arena, sizeof(arena), &size);
  ASSERT_NE(buf, nullptr);
  flatbuffers::Verifier verifier(buf, size);
  ASSERT_TRUE(weir::fb::VerifyBatchBuffer(verifier));
  EXPECT_TRUE(weir::fb::BatchBufferHasIdentifier(buf));
  const weir::fb::Batch* b = weir::fb::GetBatch(buf);
  EXPECT_EQ(b->device()->str(), "d1");
  ASSERT_EQ(b->channels()->size(), 2u);
  EXPECT_EQ(b->channels()->Get(1)->str(), "h");
  EXPECT_EQ(b->sent_at(), 2500);
  EXPECT_TRUE(b->has_seq());
  ASSERT_EQ(b->samples()->size(), 4u);
  const weir::fb::Sample* s = b->samples()->Get(3);  // reading 2, channel h
  EXPECT_EQ(s->ts(), 2000);
  EXPECT_EQ(s->seq(), 8);
  EXPECT_EQ(s->channel(), 1);
  EXPECT_EQ(s->value(), 41);
  EXPECT_EQ(b->samples()->Get(0)->seq(), 7);
  EXPECT_EQ(b->samples()->Get(1)->seq(), 7);
}

TEST(EncodeFlatBuffersTest, TooSmallAnArenaGivesNothing) {
  alignas(8) uint8_t arena[64];
  Reading r = Make(1000, 1, 1, 2);
  size_t size = 0;
  EXPECT_EQ(EncodeFlatBuffers(kSchema, &r, 1, 0, arena, sizeof(arena), &size), nullptr);
}

TEST(DeviceTest, BuffersWhileAwayDropsOldestAndReplaysInSeqOrder) {
  Device<4> device(kSchema, Format::kJson, 2);
  double v[2] = {20, 50};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(device.Record(1000 * (i + 1), v), i + 1);
  // The broker is away: nothing goes out, nothing is lost from the ring.
  EXPECT_EQ(device.Flush(7000, [](const uint8_t*, size_t) { return false; }), 0u);
  EXPECT_EQ(device.buffered(), 4u);
  EXPECT_EQ(device.dropped(), 2u);  // seq 1 and 2
  std::vector<std::string> sent;
  EXPECT_EQ(device.Flush(8000,
                         [&](const uint8_t* p, size_t n) {
                           sent.emplace_back(reinterpret_cast<const char*>(p), n);
                           return true;
                         }),
            4u);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0], R"([{"ts":3000,"seq":3,"sent_at":8000,"t":20.00,"h":50.00},)"
                     R"({"ts":4000,"seq":4,"sent_at":8000,"t":20.00,"h":50.00}])");
  EXPECT_NE(sent[1].find(R"("seq":6)"), std::string::npos);
  EXPECT_EQ(device.buffered(), 0u);
  EXPECT_EQ(device.next_seq(), 7);
}

TEST(DeviceTest, AFailedPublishKeepsItsReadings) {
  Device<8> device(kSchema, Format::kJson, 1);
  double v[2] = {1, 2};
  for (int i = 0; i < 3; ++i) device.Record(i, v);
  int calls = 0;
  // The first publish is acknowledged, the second is not (the link dropped).
  EXPECT_EQ(device.Flush(10, [&](const uint8_t*, size_t) { return ++calls == 1; }), 1u);
  EXPECT_EQ(device.buffered(), 2u);
  std::string next;
  device.Flush(11, [&](const uint8_t* p, size_t n) {
    if (next.empty()) next.assign(reinterpret_cast<const char*>(p), n);
    return true;
  });
  EXPECT_NE(next.find(R"("seq":2)"), std::string::npos);
}

TEST(DeviceTest, NoHeapAfterInit) {
  static Device<64> json(kSchema, Format::kJson, 4);
  static Device<64> fbs(kSchema, Format::kFlatBuffers, 4);
  double v[2] = {21.5, 40};
  size_t bytes = 0;
  auto publish = [&](const uint8_t*, size_t n) {
    bytes += n;
    return true;
  };
  long before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    json.Record(i * 1000, v);
    fbs.Record(i * 1000, v);
    if (i % 10 == 9) {
      json.Flush(i * 1000, publish);
      fbs.Flush(i * 1000, publish);
    }
  }
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_GT(bytes, 0u);
  EXPECT_EQ(json.buffered() + fbs.buffered(), 0u);
}

}  // namespace
}  // namespace weir_fw
