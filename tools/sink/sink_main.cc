// weir-sink: the upstream receiver (DESIGN 12). Subscribes QoS 1 with a
// persistent session and commits each MQTT message's results inside Paho's
// message callback, which (Paho C >= 1.3.10) runs before the PUBACK: a
// message is acknowledged only after its transaction committed, so a sink
// killed at any moment loses nothing; redelivered messages are duplicates
// that the rev guard ignores.
#include <mqtt/async_client.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tools/sink/result_store.h"
#include "tools/sink/sink_apply.h"

namespace {

using weir::sink::Change;
using weir::sink::SinkCounters;

struct SinkOptions {
  std::string broker;
  std::vector<std::string> topics;
  std::string db;
  std::string client_id;
  std::string share;
  std::string username;
  int db_retry_s = 60;  // how long one message waits for the database
  bool summary = false;
  bool quiet = false;
};

std::string DefaultClientId() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) return "weir-sink";
  return std::string("weir-sink-") + host;
}

class Sink {
 public:
  Sink(SinkOptions options, std::unique_ptr<weir::sink::ResultStore> store)
      : options_(std::move(options)), store_(std::move(store)) {}

  // Paho's callback thread, one message at a time.
  void OnMessage(const mqtt::const_message_ptr& msg) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Change> changes;
    weir::Status st;
    // A busy database (another sink holds the write lock) or one that went
    // away is worth waiting for, with backoff; the broker keeps the message
    // unacknowledged meanwhile. After --db-retry seconds we give up (below).
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(options_.db_retry_s);
    int delay_ms = 100;
    bool said = false;
    while (true) {
      changes.clear();
      auto began = std::chrono::steady_clock::now();
      st = weir::sink::ApplyMessage(store_.get(), msg->get_payload_str(), &counters_, &changes);
      if (st.ok()) latency_.Add(std::chrono::steady_clock::now() - began);
      if (st.ok() || st.code() != weir::StatusCode::kUnavailable ||
          std::chrono::steady_clock::now() >= give_up) {
        break;
      }
      if (!said) {
        std::fprintf(stderr, "weir-sink: database unavailable (%s); retrying for up to %ds\n",
                     st.ToString().c_str(), options_.db_retry_s);
        std::fflush(stderr);
        said = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      delay_ms = std::min(delay_ms * 2, 5000);
    }
    if (said && st.ok()) std::fprintf(stderr, "weir-sink: database back; committed\n");
    if (!st.ok()) {
      // Returning would acknowledge a message we did not store. Exiting
      // without the PUBACK leaves it with the broker for the next run.
      std::fprintf(stderr, "weir-sink: cannot store a message from %s: %s; exiting\n",
                   msg->get_topic().c_str(), st.ToString().c_str());
      std::fflush(stderr);
      _exit(1);
    }
    if (options_.quiet) return;
    for (const Change& c : changes) {
      switch (c.kind) {
        case Change::kUpsert:
          std::printf("upsert %s rev %lld %s\n", c.id.c_str(), static_cast<long long>(c.rev),
                      c.json.c_str());
          break;
        case Change::kRetraction:
          std::printf("retract %s rev %lld\n", c.id.c_str(), static_cast<long long>(c.rev));
          break;
        case Change::kLoss:
          std::printf("loss %s %s\n", c.id.c_str(), c.json.c_str());
          break;
      }
    }
    std::fflush(stdout);
  }

  // The counters and commit latency: one line for people, or the --summary JSON.
  std::string Line() {
    std::lock_guard<std::mutex> lock(mu_);
    char buf[96];
    std::snprintf(buf, sizeof buf, " commit_ms_avg=%.3f commit_ms_max=%.3f", latency_.AvgMs(),
                  latency_.max_ms);
    return counters_.Line() + buf;
  }
  std::string Json() {
    std::lock_guard<std::mutex> lock(mu_);
    auto j = nlohmann::ordered_json::parse(counters_.Json());
    j["commit_ms_avg"] = latency_.AvgMs();
    j["commit_ms_max"] = latency_.max_ms;
    return j.dump();
  }

  // After the client is gone: no callback runs any more.
  void CloseStore() {
    std::lock_guard<std::mutex> lock(mu_);
    store_.reset();
  }

 private:
  SinkOptions options_;
  std::mutex mu_;  // one message at a time; also fences CloseStore
  std::unique_ptr<weir::sink::ResultStore> store_;
  SinkCounters counters_;
  // Commit latency: from the start of a message's transaction to its commit
  // (the attempt that committed; waits for an unavailable database excluded).
  struct Latency {
    uint64_t commits = 0;
    double total_ms = 0;
    double max_ms = 0;
    void Add(std::chrono::steady_clock::duration d) {
      double ms = std::chrono::duration<double, std::milli>(d).count();
      ++commits;
      total_ms += ms;
      max_ms = std::max(max_ms, ms);
    }
    double AvgMs() const { return commits ? total_ms / commits : 0; }
  } latency_;
};

// Says when the broker granted the subscriptions (tests and people wait for it).
class SubscribeListener : public mqtt::iaction_listener {
 public:
  explicit SubscribeListener(const std::string& filters) : filters_(filters) {}
  void on_success(const mqtt::token&) override {
    std::fprintf(stderr, "weir-sink: subscribed to %s\n", filters_.c_str());
  }
  void on_failure(const mqtt::token& tok) override {
    std::fprintf(stderr, "weir-sink: subscribe to %s failed (code %d)\n", filters_.c_str(),
                 tok.get_return_code());
  }

 private:
  const std::string& filters_;
};

int Run(const SinkOptions& o) {
  auto store = weir::sink::OpenResultStore(o.db);
  if (!store.ok()) {
    std::fprintf(stderr, "weir-sink: %s\n", store.status().ToString().c_str());
    return 1;
  }
  Sink sink(o, std::move(store).value());
  // Several --topic filters let sinks split a fleet by topic (say, by
  // gateway) with ordinary subscriptions, which a broker's persistence keeps
  // across its restart; Mosquitto forgets shared ones (README, "The cloud side").
  auto filters = std::make_shared<mqtt::string_collection>();
  std::string filter_list;
  for (const std::string& topic : o.topics) {
    filters->push_back(o.share.empty() ? topic : "$share/" + o.share + "/" + topic);
    filter_list += (filter_list.empty() ? "" : " ") + (*filters)[filters->size() - 1];
  }
  std::vector<int> qos(o.topics.size(), 1);

  // Signals are taken synchronously by this thread (sigtimedwait); every
  // thread Paho starts inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  mqtt::async_client client(o.broker, o.client_id, nullptr);
  client.set_message_callback([&sink](mqtt::const_message_ptr msg) { sink.OnMessage(msg); });
  SubscribeListener subscribed(filter_list);
  client.set_connected_handler([&](const std::string&) {
    // Resubscribe on every (re)connect: a broker that restarted without
    // persistence has forgotten the session (and Mosquitto, even with
    // persistence, its shared subscriptions).
    try {
      client.subscribe(filters, qos, nullptr, subscribed);
    } catch (const mqtt::exception& e) {
      std::fprintf(stderr, "weir-sink: subscribe %s: %s\n", filter_list.c_str(), e.what());
    }
  });
  client.set_connection_lost_handler([](const std::string&) {
    std::fprintf(stderr, "weir-sink: connection lost; reconnecting\n");
  });

  mqtt::connect_options opts;
  opts.set_clean_session(false);  // persistent session: the broker queues while we are away
  opts.set_keep_alive_interval(30);
  opts.set_automatic_reconnect(1, 30);
  if (!o.username.empty()) opts.set_user_name(o.username);
  if (const char* pw = std::getenv("WEIR_SINK_PASSWORD")) opts.set_password(pw);
  if (o.broker.rfind("ssl://", 0) == 0) opts.set_ssl(mqtt::ssl_options());

  bool stop = false;
  bool connected = false;
  timespec tick{1, 0};
  int delay_s = 1;
  while (!stop) {
    if (!connected) {
      try {
        client.connect(opts)->wait();
        connected = true;
      } catch (const mqtt::exception& e) {
        std::fprintf(stderr, "weir-sink: cannot connect to %s: %s (retry in %ds)\n",
                     o.broker.c_str(), e.what(), delay_s);
        tick.tv_sec = delay_s;
        delay_s = std::min(delay_s * 2, 30);
      }
    }
    int sig = sigtimedwait(&signals, nullptr, &tick);
    tick.tv_sec = 1;
    if (sig == SIGUSR1) {
      std::fprintf(stderr, "weir-sink: %s\n", sink.Line().c_str());
    } else if (sig == SIGINT || sig == SIGTERM) {
      stop = true;
    }
  }

  try {
    if (client.is_connected()) client.disconnect(2000)->wait_for(std::chrono::seconds(3));
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "weir-sink: disconnect: %s\n", e.what());
  }
  sink.CloseStore();
  std::fprintf(stderr, "weir-sink: %s\n", sink.Line().c_str());
  if (o.summary) std::printf("%s\n", sink.Json().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"weir-sink: upserts weir results from MQTT into a database, highest rev wins"};
  SinkOptions o;
  app.add_option("--broker", o.broker, "MQTT broker URI, e.g. tcp://127.0.0.1:1883")->required();
  app.add_option("--topic", o.topics, "topic filter, e.g. weir/+/+ (repeat for several)")
      ->required();
  app.add_option("--db", o.db, "SQLite file path, or a postgresql:// URI")->required();
  app.add_option("--client-id", o.client_id,
                 "names the persistent session (default weir-sink-<hostname>)");
  app.add_option("--share", o.share, "share the load: subscribe to $share/GROUP/FILTER");
  app.add_option("--username", o.username, "broker user name (password: WEIR_SINK_PASSWORD)");
  app.add_option("--db-retry", o.db_retry_s,
                 "seconds to keep retrying a message while the database is unavailable, then "
                 "exit 1 without acknowledging it (default 60)");
  app.add_flag("--summary", o.summary, "print a JSON summary of the counters at exit");
  app.add_flag("--quiet", o.quiet, "do not print a line per change");
  CLI11_PARSE(app, argc, argv);
  if (o.client_id.empty()) o.client_id = DefaultClientId();
  return Run(o);
}
