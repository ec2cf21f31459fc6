// A Linux device publishing a synthetic sensor the way weir expects field
// devices to (DESIGN 4, 6.1): QoS 1, a monotonic seq, sent_at, an LWT on the
// status topic, and a ring buffer that keeps readings across broker
// outages and replays them, oldest first, once the broker is back.
//
//   weir-fw-linux --broker tcp://127.0.0.1:1883 --id dev1 [--period-ms 100]
//                 [--count N] [--batch 1] [--format json|flatbuffers]
//                 [--topic sensors/{device}/telemetry]
//                 [--status-topic sensors/{device}/status]
//
// With --count it stops after N readings, once all of them are delivered
// (or 60 s pass), and prints "sent S dropped D" on stdout.
#include <MQTTClient.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <string>

#include "weir_device.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

int64_t MonoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::string WithDevice(std::string s, const std::string& id) {
  size_t pos = s.find("{device}");
  if (pos != std::string::npos) s.replace(pos, 8, id);
  return s;
}

const char* const kFields[] = {"t", "h"};

}  // namespace

int main(int argc, char** argv) {
  std::string broker = "tcp://127.0.0.1:1883", id = "dev1";
  std::string topic = "sensors/{device}/telemetry", status_topic = "sensors/{device}/status";
  std::string format = "json";
  long period_ms = 100, count = 0, batch = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--broker")
      broker = v;
    else if (k == "--id")
      id = v;
    else if (k == "--topic")
      topic = v;
    else if (k == "--status-topic")
      status_topic = v;
    else if (k == "--format")
      format = v;
    else if (k == "--period-ms")
      period_ms = atol(v.c_str());
    else if (k == "--count")
      count = atol(v.c_str());
    else if (k == "--batch")
      batch = atol(v.c_str());
    else {
      fprintf(stderr, "weir-fw-linux: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if ((argc - 1) % 2 != 0 || period_ms < 1 || (format != "json" && format != "flatbuffers")) {
    fprintf(stderr,
            "usage: weir-fw-linux --broker URI --id ID [--period-ms MS] [--count N] "
            "[--batch N] [--format json|flatbuffers] [--topic T] [--status-topic T]\n");
    return 2;
  }
  topic = WithDevice(topic, id);
  status_topic = WithDevice(status_topic, id);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);

  // All memory is set up here; the loop below allocates nothing of its own.
  static weir_fw::Device<4096> device(
      weir_fw::Schema{id.c_str(), kFields, 2, 2},
      format == "json" ? weir_fw::Format::kJson : weir_fw::Format::kFlatBuffers,
      static_cast<size_t>(batch));
  MQTTClient client;
  if (MQTTClient_create(&client, broker.c_str(), id.c_str(), MQTTCLIENT_PERSISTENCE_NONE,
                        nullptr) != MQTTCLIENT_SUCCESS) {
    fprintf(stderr, "weir-fw-linux: bad broker URI %s\n", broker.c_str());
    return 1;
  }
  MQTTClient_willOptions will = MQTTClient_willOptions_initializer;
  will.topicName = status_topic.c_str();
  will.message = "offline";
  will.qos = 1;
  will.retained = 1;
  MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
  opts.keepAliveInterval = 5;
  opts.cleansession = 1;
  opts.will = &will;
  opts.connectTimeout = 2;

  bool connected = false;
  int64_t next_connect = 0;
  auto publish = [&](const char* t, const void* payload, size_t size) {
    MQTTClient_deliveryToken token;
    if (MQTTClient_publish(client, t, static_cast<int>(size), const_cast<void*>(payload), 1, 0,
                           &token) != MQTTCLIENT_SUCCESS) {
      return false;
    }
    // The reading leaves the buffer only once the broker has it (PUBACK).
    return MQTTClient_waitForCompletion(client, token, 3000) == MQTTCLIENT_SUCCESS;
  };

  long recorded = 0;
  uint64_t sent = 0;
  int64_t next_reading = MonoMs();
  int64_t give_up = 0;  // after --count: when to stop waiting for the broker
  while (!g_stop) {
    int64_t now = MonoMs();
    if ((count == 0 || recorded < count) && now >= next_reading) {
      double seq = static_cast<double>(device.next_seq());
      double values[2] = {21.0 + 3.0 * sin(seq / 50.0), 45.0 + fmod(seq, 10.0)};
      device.Record(NowMs(), values);
      ++recorded;
      next_reading += period_ms;
      if (count > 0 && recorded == count) give_up = now + 60000;
    }
    if (connected && !MQTTClient_isConnected(client)) {
      connected = false;
      fprintf(stderr, "weir-fw-linux: connection lost, buffering (%zu buffered)\n",
              device.buffered());
    }
    if (!connected && now >= next_connect) {
      if (MQTTClient_connect(client, &opts) == MQTTCLIENT_SUCCESS &&
          publish(status_topic.c_str(), "online", 6)) {
        connected = true;
        fprintf(stderr, "weir-fw-linux: connected to %s, %zu buffered readings to replay\n",
                broker.c_str(), device.buffered());
      } else {
        MQTTClient_disconnect(client, 0);
        next_connect = now + 500;
      }
    }
    if (connected) {
      sent += device.Flush(NowMs(), [&](const uint8_t* p, size_t n) {
        if (publish(topic.c_str(), p, n)) return true;
        connected = false;
        MQTTClient_disconnect(client, 0);
        next_connect = MonoMs() + 500;
        fprintf(stderr, "weir-fw-linux: publish failed, buffering\n");
        return false;
      });
    }
    if (count > 0 && recorded == count && (device.buffered() == 0 || now > give_up)) break;
    int64_t wait = next_reading - MonoMs();
    if (wait > 0) {
      timespec ts = {static_cast<time_t>(wait / 1000), static_cast<long>(wait % 1000) * 1000000};
      nanosleep(&ts, nullptr);
    }
  }
  if (connected) {
    publish(status_topic.c_str(), "offline", 7);
    MQTTClient_disconnect(client, 1000);
  }
  MQTTClient_destroy(&client);
  printf("sent %llu dropped %llu buffered %zu\n", static_cast<unsigned long long>(sent),
         static_cast<unsigned long long>(device.dropped()), device.buffered());
  return 0;
}
