// weir-sim: simulated devices publishing readings to a broker (DESIGN 9).
// Simulated time starts at --start (default: now) and runs --time-scale
// times faster than the wall clock; the readings depend only on the scenario,
// the seed and the start, so --truth and --record are repeatable.
#include <mqtt/async_client.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tools/sim/fleet.h"
#include "tools/sim/scenario.h"
#include "tools/sim/simulation.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

std::string Base64(const std::string& in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sleeps until the wall clock reaches `until_ms`, waking for signals.
void SleepUntil(int64_t until_ms) {
  for (int64_t now = WallMs(); now < until_ms && !g_stop; now = WallMs()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(until_ms - now, 100)));
  }
}

struct SimOptions {
  std::string broker;
  std::string scenario;
  uint64_t seed = 1;
  std::string time_scale = "1";
  std::string duration;
  std::string truth;
  std::string record;
  int64_t start_ms = 0;
  std::string client_id;
  std::string status_topic;
  int max_inflight = 1000;
};

int Run(const SimOptions& o) {
  auto scenario = weir::sim::LoadScenario(o.scenario);
  if (!scenario.ok()) {
    std::fprintf(stderr, "weir-sim: %s\n", scenario.status().message().c_str());
    return 1;
  }
  std::string scale_text = o.time_scale;
  if (!scale_text.empty() && (scale_text.back() == 'x' || scale_text.back() == 'X'))
    scale_text.pop_back();
  char* end = nullptr;
  double scale = std::strtod(scale_text.c_str(), &end);
  if (scale_text.empty() || *end != '\0' || !(scale > 0)) {
    std::fprintf(stderr, "weir-sim: --time-scale %s: a positive number such as 3600 or 3600x\n",
                 o.time_scale.c_str());
    return 1;
  }
  int64_t duration_ms = scenario->duration_ms;
  if (!o.duration.empty()) {
    auto parsed = weir::sim::ParseDuration(o.duration);
    if (!parsed) {
      std::fprintf(stderr, "weir-sim: --duration %s: a duration such as 90s or 2h\n",
                   o.duration.c_str());
      return 1;
    }
    duration_ms = *parsed;
  }

  std::ofstream truth, record;
  if (!o.truth.empty()) {
    truth.open(o.truth, std::ios::trunc);
    if (!truth) return std::fprintf(stderr, "weir-sim: cannot write %s\n", o.truth.c_str()), 1;
  }
  if (!o.record.empty()) {
    record.open(o.record, std::ios::trunc);
    if (!record) return std::fprintf(stderr, "weir-sim: cannot write %s\n", o.record.c_str()), 1;
  }

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // Paho queues at most maxBufferedMessages publishes; keep room for the
  // window and for a short broker outage (automatic reconnect resends).
  mqtt::create_options create(MQTTVERSION_3_1_1, 100000);
  create.set_send_while_disconnected(true);
  mqtt::async_client client(o.broker, o.client_id, create, nullptr);
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  opts.set_keep_alive_interval(30);
  opts.set_max_inflight(o.max_inflight);
  opts.set_automatic_reconnect(1, 10);
  // The simulator's own connection has a real LWT; the devices' status
  // messages go over this one connection (DESIGN 9, tools/sim/README.md).
  std::string own_status =
      o.status_topic.empty() ? "weir-sim/" + o.client_id + "/status" : o.status_topic;
  opts.set_will(mqtt::will_options(own_status, std::string("offline"), 1, true));
  while (!g_stop) {
    try {
      client.connect(opts)->wait();
      client.publish(own_status, std::string("online"), 1, true)->wait();
      break;
    } catch (const mqtt::exception& e) {
      std::fprintf(stderr, "weir-sim: cannot connect to %s: %s; retrying\n", o.broker.c_str(),
                   e.what());
      SleepUntil(WallMs() + 1000);
    }
  }

  int64_t sim_start = o.start_ms > 0 ? o.start_ms : WallMs();
  int64_t wall_start = WallMs();
  int64_t sim_end = duration_ms > 0 ? sim_start + duration_ms : INT64_MAX;
  weir::sim::Simulation sim(*scenario, o.seed, sim_start, sim_end);
  const weir::sim::Fleet& fleet = sim.fleet();
  std::fprintf(stderr, "weir-sim: %zu devices, seed %llu, time scale %g, %s\n",
               fleet.devices().size(), static_cast<unsigned long long>(o.seed), scale,
               duration_ms > 0
                   ? ("for " + std::to_string(duration_ms) + " ms of simulated time").c_str()
                   : "until SIGINT/SIGTERM");

  std::deque<mqtt::delivery_token_ptr> inflight;
  uint64_t published = 0, readings = 0, statuses = 0, failed = 0;
  std::vector<std::pair<weir::sim::SimReading, weir::sim::Fate>> fates;
  auto write_truth = [&] {
    if (truth.is_open()) {
      for (const auto& [r, fate] : fates) {
        std::string line = fleet.TruthLine(r);
        if (fate != weir::sim::Fate::kPublished) {
          line.pop_back();  // the closing brace: the fate goes last
          line += fate == weir::sim::Fate::kDropped ? R"(,"dropped":true})" : R"(,"unsent":true})";
        }
        truth << line << '\n';
      }
    }
    fates.clear();
  };
  // Simulated time now; a run stopped early made no reading after it.
  auto sim_now = [&] {
    return sim_start + static_cast<int64_t>(static_cast<double>(WallMs() - wall_start) * scale);
  };
  weir::sim::SimMessage m;
  while (!g_stop && sim.Next(&m, &fates)) {
    write_truth();
    int64_t t = m.time;
    SleepUntil(wall_start + static_cast<int64_t>(static_cast<double>(t - sim_start) / scale));
    int sent_copies = 0;
    for (int copy = 0; copy < m.copies && !g_stop; ++copy) {
      // Many messages in flight, never waiting on each: wait only when the
      // window is full, on the oldest.
      while (inflight.size() >= static_cast<size_t>(o.max_inflight)) {
        try {
          inflight.front()->wait();
        } catch (const mqtt::exception&) {
          ++failed;
        }
        inflight.pop_front();
      }
      bool sent = false;
      while (!sent && !g_stop) {
        try {
          inflight.push_back(client.publish(m.topic, m.payload.data(), m.payload.size(), 1, false));
          sent = true;
        } catch (const mqtt::exception& e) {
          // Paho's buffer is full while the broker is away: wait and retry.
          SleepUntil(WallMs() + 100);
        }
      }
      if (!sent) break;
      ++published;
      ++sent_copies;
      if (m.status) {
        ++statuses;
      } else if (copy == 0) {
        readings += m.readings.size();
      }
      if (record.is_open()) {
        record << R"({"t":)" << t << R"(,"topic":)" << nlohmann::json(m.topic).dump();
        if (m.binary) {
          record << R"(,"payload_b64":")" << Base64(m.payload) << "\"}\n";
        } else if (m.status) {
          record << R"(,"payload":)" << nlohmann::json(m.payload).dump() << "}\n";
        } else {
          record << R"(,"payload":)" << m.payload << "}\n";
        }
      }
    }
    // The truth follows what went out: a message the stop caught unsent
    // is reported so.
    for (auto& r : m.readings) {
      if (sent_copies > 0) {
        fates.emplace_back(std::move(r), weir::sim::Fate::kPublished);
      } else if (r.time <= sim_now()) {
        fates.emplace_back(std::move(r), weir::sim::Fate::kUnsent);
      }  // else: not yet made when the run stopped
    }
    write_truth();
  }
  write_truth();
  sim.Finish(g_stop ? std::min(sim_now(), sim_end) : sim_end, &fates);
  write_truth();

  // Drain the window so what --record lists reached the broker.
  for (auto& tok : inflight) {
    try {
      if (!tok->wait_for(std::chrono::seconds(10))) ++failed;
    } catch (const mqtt::exception&) {
      ++failed;
    }
  }
  try {
    client.publish(own_status, std::string("offline"), 1, true)->wait_for(std::chrono::seconds(5));
    client.disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
  }
  record.close();
  truth.close();
  std::fprintf(stderr,
               "weir-sim: published %llu messages (%llu readings, %llu status), %llu readings "
               "dropped from full device buffers%s\n",
               static_cast<unsigned long long>(published),
               static_cast<unsigned long long>(readings), static_cast<unsigned long long>(statuses),
               static_cast<unsigned long long>(sim.dropped()),
               failed ? (", " + std::to_string(failed) + " not acknowledged").c_str() : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"weir-sim: simulated devices publishing readings over MQTT"};
  SimOptions o;
  app.add_option("--broker", o.broker, "MQTT broker URI, e.g. tcp://127.0.0.1:1883")->required();
  app.add_option("--scenario", o.scenario, "scenario JSON file (configs/scenarios/)")->required();
  app.add_option("--seed", o.seed, "random seed: equal seeds give equal readings");
  app.add_option("--time-scale", o.time_scale,
                 "simulated seconds per wall second, e.g. 3600 or 3600x");
  app.add_option("--duration", o.duration,
                 "simulated time to run (overrides the scenario), e.g. 2h");
  app.add_option("--truth", o.truth, "write every generated reading here (JSON lines)");
  app.add_option("--record", o.record, "write what was published as weir replay input");
  app.add_option("--start", o.start_ms, "simulated start time, ms since the epoch (default: now)");
  app.add_option("--client-id", o.client_id, "MQTT client id (default weir-sim-<pid>)");
  app.add_option("--status-topic", o.status_topic,
                 "retained online/offline of weir-sim itself, with its LWT "
                 "(default weir-sim/<client-id>/status)");
  app.add_option("--max-inflight", o.max_inflight, "QoS 1 messages awaiting PUBACK")
      ->check(CLI::Range(1, 65535));
  CLI11_PARSE(app, argc, argv);
  if (o.client_id.empty()) o.client_id = "weir-sim-" + std::to_string(getpid());
  return Run(o);
}
