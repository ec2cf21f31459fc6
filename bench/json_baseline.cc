// Baseline for `weir replay` on JSON input: read the same replay file line by
// line and parse every line with simdjson (the parser weir's decoder uses),
// touching the fields a reading needs (t, topic, payload.ts, payload.temp).
// No windows, no output: the cost of getting the bytes in and decoded.
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: weir_json_baseline FILE\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", argv[1]);
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  simdjson::ondemand::parser parser;
  std::string line;
  long readings = 0;
  double checksum = 0;
  while (std::getline(in, line)) {
    simdjson::padded_string padded(line);
    simdjson::ondemand::document doc;
    if (parser.iterate(padded).get(doc)) continue;
    int64_t t = 0;
    std::string_view topic;
    if (doc["t"].get_int64().get(t)) continue;
    if (doc["topic"].get_string().get(topic)) continue;
    simdjson::ondemand::object payload;
    if (doc["payload"].get_object().get(payload)) continue;
    int64_t ts = 0;
    double temp = 0;
    if (payload["ts"].get_int64().get(ts)) continue;
    if (payload["temp"].get_double().get(temp)) continue;
    checksum += temp + static_cast<double>(topic.size());
    ++readings;
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"readings\": %ld, \"seconds\": %.6f, \"checksum\": %.1f}\n", readings, secs,
              checksum);
  return 0;
}
