// MqttSource: the subscriber to the gateway's local broker (DESIGN 6.1, 6.2).
//
// It keeps a persistent session under a stable client id (clean session off;
// with MQTT 5, session expiry `session_expiry_ms`), so the broker queues
// readings while weir is down, and it reconnects and resubscribes on its own.
// Each message is handed to the handler *inside* Paho's message callback:
// with Paho C >= 1.3.10 the PUBACK for a QoS 1 message is sent only after
// that callback returns, so whatever the handler made durable (the journal)
// is durable before the broker forgets the message. A handler that blocks
// (a full BoundedQueue) stalls this client's network thread, and TCP flow
// control pushes back to the broker; nothing is dropped.
//
// Paho headers stay in mqtt_source.cc: the runtime sees only this interface.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/message.h"
#include "core/status.h"

namespace weir {

struct MqttSourceOptions {
  std::string broker;     // tcp://host:port (ssl:// works with the system trust store)
  std::string client_id;  // stable across restarts: it names the persistent session
  int qos = 1;
  std::vector<std::string> filters;  // MQTT topic filters (from the topic templates)
  int64_t session_expiry_ms = 7LL * 24 * 3600 * 1000;  // MQTT 5 only
  std::string username;
  std::string password;  // never logged
  // 0: try MQTT 5 and fall back to 3.1.1 when the broker refuses it;
  // 5 or 4 (3.1.1): that version only.
  int mqtt_version = 0;
  int keep_alive_s = 30;
  int64_t reconnect_min_ms = 500;  // the local broker: come back quickly
  int64_t reconnect_max_ms = 30000;
  // Gateway clock for Message::arrival_ms; injected so tests can control it.
  std::function<int64_t()> clock_ms;
};

enum class SourceState { kStopped, kConnecting, kConnected, kDisconnected };
const char* SourceStateName(SourceState state);

struct MqttSourceStats {
  SourceState state = SourceState::kStopped;
  int mqtt_version = 0;   // of the current or last connection; 0 before any
  uint64_t messages = 0;  // handed to the handler
  uint64_t payload_bytes = 0;
  uint64_t connects = 0;  // successful connections, first one included
  uint64_t connection_losses = 0;
  uint64_t connect_failures = 0;
  bool session_present = false;  // the broker still had our session at the last connect
  uint64_t filter_changes = 0;   // Subscribe/Unsubscribe changes the broker acknowledged
};

class MqttSource {
 public:
  // Runs on Paho's callback thread, one message at a time. The broker gets
  // its PUBACK after it returns: return only once the message is safe
  // (journaled, or queued under durability "batch"). A handler that cannot
  // make a message safe must not return normally (the runtime stops the
  // process instead: a crash before the PUBACK loses nothing).
  using Handler = std::function<void(Message&& message)>;

  MqttSource(MqttSourceOptions options, Handler handler);
  ~MqttSource();  // Stop()s
  MqttSource(const MqttSource&) = delete;
  MqttSource& operator=(const MqttSource&) = delete;

  // Checks the options and starts connecting in the background; a broker
  // that is not up yet is retried with backoff, not an error.
  Status Start();
  // Disconnects (waiting at most about a second) and joins the reconnect
  // thread. After Stop() the handler is not called again.
  // REQUIRES: not called from inside the handler.
  void Stop();

  // Topic filters change in the broker's persistent session, without a new
  // connection or session (a config reload that adds or removes topics).
  // Both return at once: the client's own thread sends the SUBSCRIBE or
  // UNSUBSCRIBE now when connected, otherwise right after the next connect.
  // Later (re)connects subscribe the changed set. Unsubscribe goes after any
  // pending Subscribe, so a filter replaced by a wider one loses nothing in
  // between. Messages the broker had queued for a removed filter may still
  // arrive.
  void Subscribe(const std::vector<std::string>& filters);
  void Unsubscribe(const std::vector<std::string>& filters);

  // Waits until connected and subscribed, or the deadline passes.
  bool WaitConnected(int64_t timeout_ms);
  MqttSourceStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weir
