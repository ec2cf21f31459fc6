// Steady-state decoding and dedup allocate nothing per reading (STYLE: memory
// on the hot path). This binary replaces the global operator new to count
// allocations, so it holds only these tests.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "ingest/decoder.h"
#include "ingest/dedup.h"
#include "schemas/reading_generated.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace weir {
namespace {

Config ExampleConfig() {
  Config c;
  c.gateway = "gw";
  c.source.topics = {{"s/{site}/{device}/data", PayloadFormat::kJson},
                     {"s/{site}/{device}/batch", PayloadFormat::kFlatbuffers}};
  c.source.status.enabled = true;
  c.source.status.topic = "s/{site}/{device}/status";
  c.source.seq = "/seq";
  c.source.fields = {{"temp", "/temp"}, {"amps", "/amps"}};
  c.source.tags = {{"room", "/room"}};
  c.attributes = {"site", "room"};
  return c;
}

std::string JsonPayload(int i) {
  return "[{\"ts\":" + std::to_string(1000 + i) + ",\"seq\":" + std::to_string(2 * i) +
         ",\"temp\":21.5,\"room\":" + std::to_string(i % 7) + ".5},{\"ts\":" +
         std::to_string(1001 + i) + ",\"seq\":" + std::to_string(2 * i + 1) +
         ",\"amps\":0.25,\"room\":\"r\"},\"bad\"]";
}

TEST(DecoderAllocations, NoneInSteadyStateJson) {
  auto decoder = MessageDecoder::Create(ExampleConfig());
  ASSERT_TRUE(decoder.ok());
  Dedup dedup(100);
  // Payloads built up front: only decode and dedup are measured.
  std::vector<std::string> payloads;
  for (int i = 0; i < 200; ++i) payloads.push_back(JsonPayload(i));
  std::string topic = "s/site-1/device-0001/data";
  auto run = [&](int from, int to) {
    size_t readings = 0;
    for (int i = from; i < to; ++i) {
      const DecodedMessage& m = (*decoder)->Decode(topic, payloads[i], i);
      for (size_t k = 0; k < m.reading_count; ++k) {
        const Reading& r = m.readings[k];
        dedup.Check(r.device, r.has_seq, r.seq);
      }
      readings += m.reading_count;
    }
    return readings;
  };
  run(0, 10);  // warm-up: buffers grow to their working size
  long before = g_allocations.load();
  size_t readings = run(10, 200);
  long allocations = g_allocations.load() - before;
  EXPECT_EQ(readings, 380u);
  EXPECT_EQ(allocations, 0);
}

TEST(DecoderAllocations, NoneInSteadyStateFlatbuffers) {
  auto decoder = MessageDecoder::Create(ExampleConfig());
  ASSERT_TRUE(decoder.ok());
  std::vector<std::string> payloads;
  for (int i = 0; i < 100; ++i) {
    flatbuffers::FlatBufferBuilder b;
    auto dev = b.CreateString("x");
    auto ch = b.CreateVectorOfStrings({"temp", "amps"});
    std::vector<fb::Sample> samples;
    for (int k = 0; k < 8; ++k) {
      samples.emplace_back(1000 * k, 8 * i + k, k % 2, 1.0 * k);
      samples.emplace_back(1000 * k, 8 * i + k, (k + 1) % 2, 2.0 * k);
    }
    auto sm = b.CreateVectorOfStructs(samples);
    fb::FinishBatchBuffer(b, fb::CreateBatch(b, dev, ch, sm, 0, true));
    payloads.emplace_back(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  }
  std::string topic = "s/a/d1/batch";
  for (int i = 0; i < 5; ++i) (*decoder)->Decode(topic, payloads[i], 0);
  long before = g_allocations.load();
  size_t readings = 0;
  for (int i = 5; i < 100; ++i) readings += (*decoder)->Decode(topic, payloads[i], 0).reading_count;
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_EQ(readings, 95u * 8);
}

}  // namespace
}  // namespace weir
