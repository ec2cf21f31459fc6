// The payload decoder alone (ingest/decoder.h): readings/s for the same readings as
// JSON and as FlatBuffers payloads, as they arrive from MQTT (no replay line, no base64),
// with no broker, operators or SQLite in the way. `weir replay` on FlatBuffers input
// pays for a JSON line and a base64 decode around each payload; this does not.
//   BM_Decode/format:F/batch:B   F 0 = JSON, 1 = FlatBuffers; B readings per message
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "ingest/decoder.h"
#include "schemas/reading_generated.h"

namespace weir {
namespace {

constexpr int kDevices = 10000;
constexpr int64_t kBase = 1700000000000;

const char kConfig[] = R"({"gateway": "gw",
  "source": {"broker": "tcp://127.0.0.1:1883",
             "topics": [{"topic": "bench/{device}/data", "format": "json"},
                        {"topic": "bench/{device}/batch", "format": "flatbuffers"}],
             "fields": {"temp": "/temp"}},
  "pipelines": [{"name": "p", "key": ["device"], "window": {"type": "tumbling", "size": "1m"},
    "aggregates": {"n": {"count": "*"}}}]})";

struct Msg {
  std::string topic, payload;
};

// Device d's message m: `batch` readings one second apart, values as the replay input's.
Msg JsonMessage(int d, int m, int batch) {
  Msg out{"bench/dev-" + std::to_string(d) + "/data", ""};
  if (batch > 1) out.payload = "[";
  for (int k = 0; k < batch; ++k) {
    const int64_t ts = kBase + (static_cast<int64_t>(m) * batch + k) * 1000;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s{\"ts\":%lld,\"temp\":%.1f}", k ? "," : "",
                  static_cast<long long>(ts), 20 + ((d + k) % 97) * 0.1);
    out.payload += buf;
  }
  if (batch > 1) out.payload += "]";
  return out;
}

Msg FlatbufferMessage(int d, int m, int batch) {
  Msg out{"bench/dev-" + std::to_string(d) + "/batch", ""};
  flatbuffers::FlatBufferBuilder b(256);
  std::vector<fb::Sample> samples;
  for (int k = 0; k < batch; ++k) {
    const int64_t ts = kBase + (static_cast<int64_t>(m) * batch + k) * 1000;
    samples.emplace_back(ts, 0, 0, 20 + ((d + k) % 97) * 0.1);
  }
  auto dev = b.CreateString("dev-" + std::to_string(d));
  auto channels = b.CreateVectorOfStrings({"temp"});
  auto s = b.CreateVectorOfStructs(samples.data(), samples.size());
  b.Finish(fb::CreateBatch(b, dev, channels, s, 0, /*has_seq=*/false), fb::BatchIdentifier());
  out.payload.assign(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  return out;
}

void BM_Decode(benchmark::State& state) {
  const bool flatbuffers = state.range(0) == 1;
  const int batch = static_cast<int>(state.range(1));
  std::vector<ConfigError> errors;
  std::optional<Config> config = ParseConfig(kConfig, &errors);
  if (!config) {
    state.SkipWithError("config");
    return;
  }
  auto decoder = MessageDecoder::Create(*config);
  if (!decoder.ok()) {
    state.SkipWithError("decoder");
    return;
  }
  // Messages built once per case (two per device; Google Benchmark calls this function
  // several times while it sizes the iteration count): only decoding is timed.
  static std::map<std::pair<bool, int>, std::vector<Msg>> built;
  std::vector<Msg>& msgs = built[{flatbuffers, batch}];
  if (msgs.empty()) {
    for (int m = 0; m < 2; ++m) {
      for (int d = 0; d < kDevices; ++d) {
        msgs.push_back(flatbuffers ? FlatbufferMessage(d, m, batch) : JsonMessage(d, m, batch));
      }
    }
  }
  size_t i = 0;
  int64_t readings = 0;
  double checksum = 0;
  for (auto _ : state) {
    const Msg& m = msgs[i];
    if (++i == msgs.size()) i = 0;
    const DecodedMessage& out = (*decoder)->Decode(m.topic, m.payload, 0);
    readings += static_cast<int64_t>(out.reading_count);
    if (out.reading_count > 0) checksum += static_cast<double>(out.readings[0].ts_ms);
  }
  benchmark::DoNotOptimize(checksum);
  if (readings != static_cast<int64_t>(state.iterations()) * batch) {
    state.SkipWithError("a message did not decode to its readings");
  }
  state.SetItemsProcessed(readings);
}
BENCHMARK(BM_Decode)
    ->ArgNames({"format", "batch"})
    ->ArgsProduct({{0, 1}, {1, 10}});

}  // namespace
}  // namespace weir

BENCHMARK_MAIN();
