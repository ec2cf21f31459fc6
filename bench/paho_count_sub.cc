// Baseline subscriber for the ingest benchmark: a bare Paho C++ client that only
// counts messages, the practical ceiling for anything built on Paho (weir's
// source is). Drain mode: `--prime` connects with a persistent session,
// subscribes and leaves; a second run reconnects and times the queued
// messages from the first to the N-th.
//   weir_paho_count_sub URI CLIENT_ID TOPIC QOS (--prime | N)
// Prints {"messages": N, "seconds": S} on success.
#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace {

class Counter : public mqtt::callback {
 public:
  explicit Counter(long target) : target_(target) {}
  void message_arrived(mqtt::const_message_ptr) override {
    long n = ++count_;
    if (n == 1) first_ = std::chrono::steady_clock::now();
    if (n == target_) {
      last_ = std::chrono::steady_clock::now();
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    }
  }
  bool Wait(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return done_; });
  }
  double Seconds() const { return std::chrono::duration<double>(last_ - first_).count(); }
  long count() const { return count_.load(); }

 private:
  long target_;
  std::atomic<long> count_{0};
  std::chrono::steady_clock::time_point first_, last_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: weir_paho_count_sub URI CLIENT_ID TOPIC QOS (--prime | N)\n");
    return 2;
  }
  const std::string uri = argv[1], id = argv[2], topic = argv[3], last = argv[5];
  const int qos = std::atoi(argv[4]);
  const bool prime = last == "--prime";
  const long target = prime ? 0 : std::atol(last.c_str());
  mqtt::async_client client(uri, id, mqtt::create_options(MQTTVERSION_3_1_1));
  Counter counter(target);
  client.set_callback(counter);
  auto opts = mqtt::connect_options_builder().clean_session(false).keep_alive_interval(
      std::chrono::seconds(30)).finalize();
  try {
    client.connect(opts)->wait();
    if (prime) {
      client.subscribe(topic, qos)->wait();
      client.disconnect()->wait();
      return 0;
    }
    if (!counter.Wait(std::chrono::seconds(600))) {
      std::fprintf(stderr, "timed out with %ld of %ld messages\n", counter.count(), target);
      return 1;
    }
    client.disconnect()->wait();
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "mqtt: %s\n", e.what());
    return 1;
  }
  std::printf("{\"messages\": %ld, \"seconds\": %.6f}\n", target, counter.Seconds());
  return 0;
}
