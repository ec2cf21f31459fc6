// Writes `weir replay` input whose payloads are FlatBuffers batches (schemas/reading.fbs),
// carrying the same readings, in the same order and at the same keys, as bench.py's
// JSON input (write_replay_input): N readings, devices dev-0..dev-(KEYS-1) round-robin,
// one reading per device per second of event time, a silent minute after every minute.
// One reading per message, as the JSON input has, so the two differ only in the payload
// format (FlatBuffers arrive base64-encoded in replay input, DESIGN 8).
//   weir_fb_input N KEYS OUT
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "schemas/reading_generated.h"

namespace {

void AppendBase64(const uint8_t* p, size_t n, std::string* out) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out->push_back(kAlphabet[(v >> 18) & 63]);
    out->push_back(kAlphabet[(v >> 12) & 63]);
    out->push_back(kAlphabet[(v >> 6) & 63]);
    out->push_back(kAlphabet[v & 63]);
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out->push_back(kAlphabet[(v >> 18) & 63]);
    out->push_back(kAlphabet[(v >> 12) & 63]);
    out->append("==");
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out->push_back(kAlphabet[(v >> 18) & 63]);
    out->push_back(kAlphabet[(v >> 12) & 63]);
    out->push_back(kAlphabet[(v >> 6) & 63]);
    out->push_back('=');
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: weir_fb_input N KEYS OUT\n");
    return 2;
  }
  const long n = std::atol(argv[1]), keys = std::atol(argv[2]);
  std::FILE* out = std::fopen(argv[3], "wb");
  if (out == nullptr || n <= 0 || keys <= 0) {
    std::fprintf(stderr, "weir_fb_input: bad arguments or cannot open %s\n", argv[3]);
    return 1;
  }
  const int64_t base = 1700000000000;
  flatbuffers::FlatBufferBuilder b(256);
  std::string line;
  for (long i = 0; i < n; ++i) {
    const long second = i / keys;
    const int64_t ts = base + (second + (second / 60) * 60) * 1000;
    const std::string device = "dev-" + std::to_string(i % keys);
    const double temp = 20 + static_cast<double>(i % 97) * 0.1;
    b.Clear();
    auto dev = b.CreateString(device);
    auto channels = b.CreateVectorOfStrings({"temp"});
    weir::fb::Sample sample(ts, 0, 0, temp);
    auto samples = b.CreateVectorOfStructs(&sample, 1);
    b.Finish(weir::fb::CreateBatch(b, dev, channels, samples, 0, /*has_seq=*/false),
             weir::fb::BatchIdentifier());
    line = "{\"t\":" + std::to_string(ts) + ",\"topic\":\"bench/" + device +
           "/batch\",\"payload_b64\":\"";
    AppendBase64(b.GetBufferPointer(), b.GetSize(), &line);
    line += "\"}\n";
    std::fwrite(line.data(), 1, line.size(), out);
  }
  return std::fclose(out) == 0 ? 0 : 1;
}
