// MqttUplink: publishes committed outbox rows to the cloud broker (DESIGN 6.4).
//
// The runtime hands over rows in outbox order; the uplink packs up to
// `batch_max` rows of one topic into each MQTT message (a JSON array; the bare
// object when batch_max is 1), keeps up to `max_inflight` messages awaiting
// their PUBACK (never waiting on each one), and reports the outbox positions
// of a message once its PUBACK arrived, so the runtime deletes exactly the
// delivered rows. Nothing lives in Paho's own persistence (clean session,
// in-memory): after a lost connection every unacknowledged row is sent again
// from our memory, in order, once the connection is back. A receiver may thus
// see a row twice, always byte-identical (though possibly packed into a
// different array); result ids and revs make that harmless (DESIGN 12).
//
// Reconnects use our own exponential backoff with jitter (1 s to 60 s by
// default), not Paho's fixed retry. With MQTT 5 each message carries the user
// property `weir-ids`: a JSON array of the result ids it holds.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace weir {

// One committed outbox row, as the runtime reads it from storage.
struct UplinkRow {
  int64_t position = 0;  // outbox position: what Delivered reports back
  std::string topic;     // resolved uplink.topic (or its "/late" side topic)
  std::string id;        // the result id, listed in `weir-ids` (may be empty)
  std::string payload;   // one JSON object: result, retraction or loss record
};

struct UplinkTlsOptions {
  std::string ca;    // PEM file of trusted CAs (empty: the system store)
  std::string cert;  // client certificate (PEM)
  std::string key;   // client private key (PEM): must not be group/world readable
};

struct MqttUplinkOptions {
  std::string broker;  // tcp://host:port or ssl://host:port
  std::string client_id;
  std::string username;
  std::string password;  // empty: WEIR_UPLINK_PASSWORD if set; never logged
  UplinkTlsOptions tls;
  int64_t batch_max = 100;  // rows per MQTT message (an upper bound, not a target)
  // MQTT messages awaiting PUBACK. Enough to keep a long link busy; clamped
  // to the broker's MQTT 5 receive maximum.
  int max_inflight = 64;
  double max_rate_per_s = 0;  // backlog rows per second; 0 = unlimited
  int mqtt_version = 0;       // 0: MQTT 5, falling back to 3.1.1; or 5, or 4 (3.1.1)
  int keep_alive_s = 30;
  int64_t reconnect_min_ms = 1000;
  int64_t reconnect_max_ms = 60000;
};

enum class UplinkState { kStopped, kConnecting, kConnected, kDisconnected };
const char* UplinkStateName(UplinkState state);

struct MqttUplinkStats {
  UplinkState state = UplinkState::kStopped;
  int mqtt_version = 0;
  uint64_t rows_queued = 0;    // handed over, not yet published
  uint64_t rows_inflight = 0;  // published, awaiting PUBACK
  uint64_t messages_inflight = 0;
  uint64_t rows_delivered = 0;
  uint64_t messages_published = 0;  // resends included
  uint64_t messages_acked = 0;
  uint64_t rows_resent = 0;  // rows put back after a lost connection or a refusal
  uint64_t connects = 0;
  uint64_t connection_losses = 0;
  uint64_t connect_failures = 0;
};

class MqttUplink {
 public:
  // Runs on a Paho thread, outside the uplink's lock, with the positions of
  // one acknowledged MQTT message. A position can be reported again if a
  // PUBACK races a lost connection: deleting a row twice must be harmless.
  using DeliveredFn = std::function<void(const std::vector<int64_t>& positions)>;

  MqttUplink(MqttUplinkOptions options, DeliveredFn delivered);
  ~MqttUplink();  // Stop()s
  MqttUplink(const MqttUplink&) = delete;
  MqttUplink& operator=(const MqttUplink&) = delete;

  // Checks the options (and the TLS files: a key readable by group or others
  // is refused) and starts connecting in the background.
  Status Start();
  // Disconnects and joins the sender thread. Rows not yet acknowledged stay
  // in the outbox (the runtime's): nothing is lost.
  void Stop();

  // Hands over committed rows, oldest first, none handed over before unless
  // the uplink was restarted. `backlog` rows go after every live row and at
  // most max_rate_per_s rows per second (`order` live_first); the runtime
  // marks everything backlog for `in_order`. Thread-safe.
  void Enqueue(std::vector<UplinkRow> rows, bool backlog = false);
  // Rows handed over and not yet acknowledged: the runtime hands over more
  // while this is below its window.
  size_t pending_rows() const;
  // The rate-limiting hook (0 = unlimited); takes effect at once.
  void SetMaxRate(double rows_per_s);
  // Waits until every row handed over has been acknowledged.
  bool WaitIdle(int64_t timeout_ms);
  bool WaitConnected(int64_t timeout_ms);
  MqttUplinkStats stats() const;

  // The key-file rule of DESIGN 6.4, exposed for `weir validate`.
  static Status CheckTlsFiles(const UplinkTlsOptions& tls);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weir
