// Baseline publisher for the uplink benchmark: a bare Paho C++ client that publishes
// the lines of a file, one message each, at QoS 1 with the same window of messages in
// flight as weir's uplink (max_inflight 64, MQTT 5 with clean start, capped by the
// broker's Receive Maximum as weir caps it), and does nothing else: no database, no
// batching. What weir's outbox flush costs above this is weir's own.
//   weir_paho_pub URI CLIENT_ID TOPIC FILE
// Prints {"messages": N, "seconds": S} (first publish to last PUBACK) on success.
#include <mqtt/async_client.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr int kMaxInflight = 64;  // uplink/mqtt_uplink.h MqttUplinkOptions::max_inflight

class Window : public mqtt::callback {
 public:
  void delivery_complete(mqtt::delivery_token_ptr) override {
    std::lock_guard<std::mutex> lock(mu_);
    --inflight_;
    ++acked_;
    cv_.notify_all();
  }
  // Blocks until fewer than `window` messages are in flight, then counts one more.
  void Acquire(int window) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return inflight_ < window; });
    ++inflight_;
  }
  bool WaitAcked(long n, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return acked_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int inflight_ = 0;
  long acked_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: weir_paho_pub URI CLIENT_ID TOPIC FILE\n");
    return 2;
  }
  const std::string uri = argv[1], id = argv[2], topic = argv[3];
  std::vector<std::string> lines;
  {
    std::ifstream in(argv[4]);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines.push_back(std::move(line));
    }
  }
  mqtt::async_client client(uri, id, mqtt::create_options(MQTTVERSION_5, kMaxInflight * 2 + 16));
  Window window;
  client.set_callback(window);
  mqtt::connect_options opts;
  opts.set_mqtt_version(MQTTVERSION_5);
  opts.set_clean_start(true);
  opts.set_max_inflight(kMaxInflight);
  opts.set_keep_alive_interval(30);
  try {
    mqtt::token_ptr tok = client.connect(opts);
    tok->wait();
    int w = kMaxInflight;
    const mqtt::properties& props = tok->get_connect_response().get_properties();
    if (props.contains(mqtt::property::RECEIVE_MAXIMUM)) {
      w = std::min<int>(w, mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM));
    }
    auto t0 = std::chrono::steady_clock::now();
    for (const std::string& l : lines) {
      window.Acquire(w);
      client.publish(topic, l.data(), l.size(), 1, false);
    }
    if (!window.WaitAcked(static_cast<long>(lines.size()), std::chrono::seconds(600))) {
      std::fprintf(stderr, "timed out waiting for PUBACKs\n");
      return 1;
    }
    auto t1 = std::chrono::steady_clock::now();
    client.disconnect()->wait();
    std::printf("{\"messages\": %zu, \"seconds\": %.6f, \"window\": %d}\n", lines.size(),
                std::chrono::duration<double>(t1 - t0).count(), w);
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "mqtt: %s\n", e.what());
    return 1;
  }
  return 0;
}
