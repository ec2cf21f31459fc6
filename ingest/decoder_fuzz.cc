// libFuzzer target for payload decoding (outside input: whatever a device or
// anyone on the gateway broker publishes). The first input byte picks the
// topic, so JSON and FlatBuffers payloads (verified before any read) are both
// reached. Beyond not crashing, it checks the decoder's contract: a message is
// readings, a status or rejections, and every decoded reading has a device.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "config/config.h"
#include "ingest/decoder.h"

namespace {

weir::MessageDecoder* Decoder() {
  static std::unique_ptr<weir::MessageDecoder> decoder = [] {
    std::vector<weir::ConfigError> errors;
    auto config = weir::ParseConfig(R"({
      "gateway": "fz",
      "source": {
        "broker": "tcp://127.0.0.1:1883",
        "topics": [{"topic": "j/{site}/{device}"},
                   {"topic": "f/{device}", "format": "flatbuffers"}],
        "status": {"topic": "st/{device}"},
        "seq": "/seq", "sent_at": "/sent_at",
        "fields": {"temp": "/t", "hum": "/env/h"},
        "tags": {"room": "/room"},
        "max_payload": "4KB", "max_devices": 64
      },
      "pipelines": [{"name": "p", "window": {"type": "tumbling", "size": "1m"},
                     "aggregates": {"n": {"count": "*"}}}]
    })", &errors);
    if (!config) std::abort();
    auto d = weir::MessageDecoder::Create(*config);
    if (!d.ok()) std::abort();
    return std::move(d).value();
  }();
  return decoder.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kTopics[] = {"j/a/d1", "f/d2", "st/d3", "nomatch/x"};
  std::string_view topic = kTopics[data[0] % 4];
  std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const weir::DecodedMessage& m = Decoder()->Decode(topic, payload, 1700000000000);
  if (m.kind == weir::DecodedMessage::Kind::kData) {
    for (size_t i = 0; i < m.reading_count; ++i)
      if (m.readings[i].device.empty()) std::abort();
  } else if (m.reading_count != 0 && m.kind != weir::DecodedMessage::Kind::kData) {
    std::abort();
  }
  return 0;
}
