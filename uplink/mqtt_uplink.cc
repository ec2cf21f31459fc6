// MqttUplink on Paho C++'s async_client. One sender thread owns the client:
// it connects (with our backoff), packs batches and publishes them; Paho's
// threads only report PUBACKs, refusals and lost connections back under `mu`.
#include "uplink/mqtt_uplink.h"

#include <mqtt/async_client.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "core/backoff.h"
#include "core/log.h"

namespace weir {

const char* UplinkStateName(UplinkState state) {
  switch (state) {
    case UplinkState::kStopped:
      return "stopped";
    case UplinkState::kConnecting:
      return "connecting";
    case UplinkState::kConnected:
      return "connected";
    case UplinkState::kDisconnected:
      return "disconnected";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// After the broker refused one message (an MQTT 5 PUBACK reason code), wait
// this long before sending it again, so a persistent refusal does not spin.
constexpr auto kRefusalRetry = std::chrono::seconds(1);

void LogLine(LogLevel level, const std::string& line) {
  WEIR_LOG(level, "uplink", "%s", line.c_str());
}

bool IsTls(const std::string& uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0;
}

// JSON string literal for an id (ids are percent-encoded text; escape anyway).
void AppendJsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out->append(buf);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

}  // namespace

struct MqttUplink::Impl : public mqtt::iaction_listener {
  struct Batch {
    std::vector<UplinkRow> rows;
    bool backlog = false;
  };

  MqttUplinkOptions options;
  DeliveredFn delivered;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool connected = false;
  bool wait_before_connect = false;  // after a lost connection: back off first
  std::deque<UplinkRow> live;
  std::deque<UplinkRow> backlog;
  std::map<uint64_t, Batch> inflight;  // by batch number, which is the publish context
  uint64_t next_batch = 1;
  int reporting = 0;  // Delivered callbacks running: WaitIdle waits for them too
  int window = 1;     // messages in flight: min(max_inflight, broker's receive maximum)
  double rate_per_s = 0;
  double tokens = 0;
  Clock::time_point refilled_at = Clock::now();
  Clock::time_point retry_after = Clock::time_point::min();
  MqttUplinkStats stats;
  int version_try = 5;
  bool version_fixed = false;

  // Owned by the sender thread.
  std::unique_ptr<mqtt::async_client> client;
  int client_version = 0;
  std::thread thread;

  void Run();
  bool Connect();
  // Put in-flight rows back into their queue in position order.
  // REQUIRES: mu held; positions increase within each queue (the runtime
  // hands rows over in outbox order).
  void RequeueAllLocked();
  void RequeueLocked(Batch&& b);
  void RefillLocked(Clock::time_point now);
  // Takes the next batch if the window, the rate and the queues allow.
  // REQUIRES: mu held.
  bool TakeBatchLocked(Batch* b);
  mqtt::message_ptr BuildMessage(const Batch& b) const;

  void on_success(const mqtt::token& tok) override;
  void on_failure(const mqtt::token& tok) override;
};

MqttUplink::MqttUplink(MqttUplinkOptions options, DeliveredFn delivered) : impl_(new Impl) {
  impl_->options = std::move(options);
  impl_->delivered = std::move(delivered);
  impl_->rate_per_s = impl_->options.max_rate_per_s;
  if (impl_->options.mqtt_version == 4) impl_->version_try = 4;
  impl_->version_fixed = impl_->options.mqtt_version != 0;
  if (impl_->options.password.empty()) {
    if (const char* pw = std::getenv("WEIR_UPLINK_PASSWORD")) impl_->options.password = pw;
  }
}

MqttUplink::~MqttUplink() { Stop(); }

Status MqttUplink::CheckTlsFiles(const UplinkTlsOptions& tls) {
  if (tls.cert.empty() != tls.key.empty()) {
    return InvalidArgument("uplink.tls: cert and key go together (set both or neither)");
  }
  for (const std::string* f : {&tls.ca, &tls.cert, &tls.key}) {
    if (!f->empty() && access(f->c_str(), R_OK) != 0) {
      return InvalidArgument("uplink.tls: cannot read " + *f + ": " + std::strerror(errno));
    }
  }
  if (!tls.key.empty()) {
    struct stat st;
    if (stat(tls.key.c_str(), &st) != 0) {
      return InvalidArgument("uplink.tls.key: cannot stat " + tls.key + ": " +
                             std::strerror(errno));
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return FailedPrecondition("uplink.tls.key " + tls.key +
                                " is readable by group or others (mode " + mode +
                                "); restrict it with: chmod 600 " + tls.key);
    }
  }
  return Status::Ok();
}

Status MqttUplink::Start() {
  const MqttUplinkOptions& o = impl_->options;
  if (o.broker.empty()) return InvalidArgument("uplink.broker is empty");
  if (o.client_id.empty()) return InvalidArgument("uplink.client_id is empty");
  if (o.batch_max < 1) return InvalidArgument("uplink.batch_max must be at least 1");
  if (o.max_inflight < 1) return InvalidArgument("max_inflight must be at least 1");
  if (o.mqtt_version != 0 && o.mqtt_version != 4 && o.mqtt_version != 5) {
    return InvalidArgument("mqtt_version must be 0 (auto), 4 (3.1.1) or 5");
  }
  bool has_tls_files = !o.tls.ca.empty() || !o.tls.cert.empty() || !o.tls.key.empty();
  if (has_tls_files && !IsTls(o.broker)) {
    return InvalidArgument("uplink.tls is set but uplink.broker is not an ssl:// URI");
  }
  RETURN_IF_ERROR(CheckTlsFiles(o.tls));
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->thread.joinable()) return FailedPrecondition("uplink already started");
  impl_->stop = false;
  impl_->stats.state = UplinkState::kConnecting;
  impl_->thread = std::thread([this] { impl_->Run(); });
  return Status::Ok();
}

void MqttUplink::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->thread.joinable()) return;
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.state = UplinkState::kStopped;
}

void MqttUplink::Enqueue(std::vector<UplinkRow> rows, bool backlog) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& q = backlog ? impl_->backlog : impl_->live;
    for (auto& r : rows) q.push_back(std::move(r));
  }
  impl_->cv.notify_all();
}

size_t MqttUplink::pending_rows() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  size_t n = impl_->live.size() + impl_->backlog.size();
  for (const auto& [no, b] : impl_->inflight) n += b.rows.size();
  return n;
}

void MqttUplink::SetMaxRate(double rows_per_s) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->RefillLocked(Clock::now());
    impl_->rate_per_s = rows_per_s > 0 ? rows_per_s : 0;
  }
  impl_->cv.notify_all();
}

bool MqttUplink::WaitIdle(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] {
    return impl_->live.empty() && impl_->backlog.empty() && impl_->inflight.empty() &&
           impl_->reporting == 0;
  });
}

bool MqttUplink::WaitConnected(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [this] { return impl_->connected; });
}

MqttUplinkStats MqttUplink::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  MqttUplinkStats s = impl_->stats;
  s.rows_queued = impl_->live.size() + impl_->backlog.size();
  s.messages_inflight = impl_->inflight.size();
  s.rows_inflight = 0;
  for (const auto& [no, b] : impl_->inflight) s.rows_inflight += b.rows.size();
  return s;
}

void MqttUplink::Impl::RequeueLocked(Batch&& b) {
  // Back into its queue at its place by position (batches fail in any
  // order), so resends go out oldest first again.
  auto& q = b.backlog ? backlog : live;
  stats.rows_resent += b.rows.size();
  auto at = std::lower_bound(q.begin(), q.end(), b.rows.front().position,
                             [](const UplinkRow& r, int64_t p) { return r.position < p; });
  q.insert(at, std::make_move_iterator(b.rows.begin()), std::make_move_iterator(b.rows.end()));
}

void MqttUplink::Impl::RequeueAllLocked() {
  for (auto it = inflight.rbegin(); it != inflight.rend(); ++it)
    RequeueLocked(std::move(it->second));
  inflight.clear();
}

void MqttUplink::Impl::RefillLocked(Clock::time_point now) {
  if (rate_per_s > 0) {
    double dt = std::chrono::duration<double>(now - refilled_at).count();
    // A burst of at most one second's worth (or one batch) after an idle spell.
    double cap = std::max(rate_per_s, static_cast<double>(options.batch_max));
    tokens = std::min(cap, tokens + dt * rate_per_s);
  }
  refilled_at = now;
}

bool MqttUplink::Impl::TakeBatchLocked(Batch* b) {
  if (static_cast<int>(inflight.size()) >= window) return false;
  std::deque<UplinkRow>* q = nullptr;
  size_t limit = static_cast<size_t>(options.batch_max);
  if (!live.empty()) {
    q = &live;
  } else if (!backlog.empty()) {
    if (rate_per_s > 0) {
      if (tokens < 1) return false;
      limit = std::min(limit, static_cast<size_t>(tokens));
    }
    q = &backlog;
  } else {
    return false;
  }
  b->backlog = q == &backlog;
  b->rows.clear();
  const std::string topic = q->front().topic;
  while (!q->empty() && b->rows.size() < limit && q->front().topic == topic) {
    b->rows.push_back(std::move(q->front()));
    q->pop_front();
  }
  if (b->backlog && rate_per_s > 0) tokens -= static_cast<double>(b->rows.size());
  return true;
}

mqtt::message_ptr MqttUplink::Impl::BuildMessage(const Batch& b) const {
  std::string payload;
  if (options.batch_max == 1) {
    payload = b.rows[0].payload;
  } else {
    size_t n = 2;
    for (const auto& r : b.rows) n += r.payload.size() + 1;
    payload.reserve(n);
    payload.push_back('[');
    for (size_t i = 0; i < b.rows.size(); ++i) {
      if (i) payload.push_back(',');
      payload += b.rows[i].payload;
    }
    payload.push_back(']');
  }
  auto msg = mqtt::make_message(b.rows[0].topic, payload, 1, false);
  if (client_version == 5) {
    std::string ids = "[";
    bool first = true;
    for (const auto& r : b.rows) {
      if (r.id.empty()) continue;
      if (!first) ids.push_back(',');
      first = false;
      AppendJsonString(r.id, &ids);
    }
    ids.push_back(']');
    mqtt::properties props;
    props.add(mqtt::property(mqtt::property::USER_PROPERTY, "weir-ids", ids));
    msg->set_properties(props);
  }
  return msg;
}

void MqttUplink::Impl::on_success(const mqtt::token& tok) {
  auto no = reinterpret_cast<uintptr_t>(tok.get_user_context());
  std::vector<int64_t> positions;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = inflight.find(no);
    if (it == inflight.end()) return;  // already put back after a lost connection
    positions.reserve(it->second.rows.size());
    for (const auto& r : it->second.rows) positions.push_back(r.position);
    inflight.erase(it);
    ++stats.messages_acked;
    stats.rows_delivered += positions.size();
    ++reporting;
  }
  cv.notify_all();
  if (delivered) delivered(positions);
  {
    std::lock_guard<std::mutex> lock(mu);
    --reporting;
  }
  cv.notify_all();
}

void MqttUplink::Impl::on_failure(const mqtt::token& tok) {
  auto no = reinterpret_cast<uintptr_t>(tok.get_user_context());
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = inflight.find(no);
    if (it == inflight.end()) return;
    if (static_cast<int>(tok.get_reason_code()) >= 0x80) {
      // The broker refused this one message (MQTT 5 reason code): send it
      // again a little later rather than drop it. Other failures are a lost
      // connection: the rows simply go out again after the reconnect.
      LogLine(LogLevel::kWarn, "broker refused a message on " + it->second.rows[0].topic +
                                   " (code " + std::to_string(tok.get_return_code()) + ", reason " +
                                   std::to_string(static_cast<int>(tok.get_reason_code())) +
                                   "); will resend");
      retry_after = Clock::now() + kRefusalRetry;
    }
    RequeueLocked(std::move(it->second));
    inflight.erase(it);
  }
  cv.notify_all();
}

// One connection attempt. Runs on the sender thread, without `mu`.
bool MqttUplink::Impl::Connect() {
  try {
    if (!client || client_version != version_try) {
      client.reset();  // another MQTT version needs another Paho client
      // Paho refuses more queued publishes than maxBufferedMessages; we never
      // queue more than the window, but leave room.
      mqtt::create_options create(version_try == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1,
                                  options.max_inflight * 2 + 16);
      create.set_send_while_disconnected(false);
      client = std::make_unique<mqtt::async_client>(options.broker, options.client_id, create,
                                                    nullptr);  // nothing in Paho persistence
      client_version = version_try;
      client->set_connection_lost_handler([this](const std::string& cause) {
        {
          std::lock_guard<std::mutex> lock(mu);
          connected = false;
          wait_before_connect = true;
          ++stats.connection_losses;
          stats.state = UplinkState::kDisconnected;
          RequeueAllLocked();
        }
        LogLine(LogLevel::kWarn,
                "connection to " + options.broker + " lost" + (cause.empty() ? "" : ": " + cause));
        cv.notify_all();
      });
    }
    mqtt::connect_options opts;
    opts.set_keep_alive_interval(options.keep_alive_s);
    opts.set_connect_timeout(static_cast<int>(kConnectTimeout.count()));
    opts.set_automatic_reconnect(false);
    opts.set_max_inflight(options.max_inflight);
    if (version_try == 5) {
      opts.set_mqtt_version(MQTTVERSION_5);
      opts.set_clean_start(true);  // we resend from the outbox, not from a session
    } else {
      opts.set_mqtt_version(MQTTVERSION_3_1_1);
      opts.set_clean_session(true);
    }
    if (!options.username.empty()) opts.set_user_name(options.username);
    if (!options.password.empty()) opts.set_password(options.password);
    if (IsTls(options.broker)) {
      mqtt::ssl_options ssl;
      if (!options.tls.ca.empty()) ssl.set_trust_store(options.tls.ca);
      if (!options.tls.cert.empty()) ssl.set_key_store(options.tls.cert);
      if (!options.tls.key.empty()) ssl.set_private_key(options.tls.key);
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);
      ssl.set_error_handler(
          [](const std::string& err) { LogLine(LogLevel::kWarn, "TLS: " + err); });
      opts.set_ssl(std::move(ssl));
    }
    mqtt::token_ptr tok = client->connect(opts);
    if (!tok->wait_for(kConnectTimeout + std::chrono::seconds(1))) {
      throw mqtt::exception(MQTTASYNC_FAILURE, "connect timed out");
    }
    int w = options.max_inflight;
    const mqtt::properties& props = tok->get_connect_response().get_properties();
    if (version_try == 5 && props.contains(mqtt::property::RECEIVE_MAXIMUM)) {
      // Exceeding the broker's receive maximum is a protocol error.
      w = std::min<int>(w, mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM));
    }
    std::lock_guard<std::mutex> lock(mu);
    window = std::max(1, w);
    return true;
  } catch (const mqtt::exception& e) {
    // The broker URI and client id only: never credentials or key material.
    LogLine(LogLevel::kWarn, "cannot connect to " + options.broker + " as " + options.client_id +
                                 " (MQTT " + (version_try == 5 ? "5" : "3.1.1") + "): " + e.what());
    return false;
  }
}

void MqttUplink::Impl::Run() {
  Backoff backoff(options.reconnect_min_ms, options.reconnect_max_ms,
                  std::hash<std::string>()(options.client_id) ^
                      static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  std::unique_lock<std::mutex> lock(mu);
  while (!stop) {
    if (!connected && wait_before_connect) {
      // The contract's 1 s to 60 s holds for the first retry too: a broker
      // that just went away is not hammered, and a fleet spreads out.
      wait_before_connect = false;
      cv.wait_for(lock, std::chrono::milliseconds(backoff.NextDelayMs()), [this] { return stop; });
      continue;
    }
    if (!connected) {
      stats.state = UplinkState::kConnecting;
      lock.unlock();
      bool ok = Connect();
      lock.lock();
      if (ok) {
        connected = true;
        ++stats.connects;
        stats.mqtt_version = version_try;
        stats.state = UplinkState::kConnected;
        version_fixed = true;
        backoff.Reset();
        // Rows of messages published on the old connection were put back
        // by the lost-connection handler and go out again now, in order.
        LogLine(LogLevel::kInfo,
                "connected to " + options.broker + " (MQTT " + (version_try == 5 ? "5" : "3.1.1") +
                    "), " + std::to_string(live.size() + backlog.size()) + " rows to send");
        cv.notify_all();
        continue;
      }
      ++stats.connect_failures;
      stats.state = UplinkState::kDisconnected;
      if (!version_fixed) version_try = version_try == 5 ? 4 : 5;
      cv.wait_for(lock, std::chrono::milliseconds(backoff.NextDelayMs()), [this] { return stop; });
      continue;
    }

    Clock::time_point now = Clock::now();
    RefillLocked(now);
    Batch batch;
    if (now >= retry_after && TakeBatchLocked(&batch)) {
      uint64_t no = next_batch++;
      mqtt::message_ptr msg = BuildMessage(batch);
      inflight.emplace(no, std::move(batch));
      ++stats.messages_published;
      lock.unlock();
      try {
        client->publish(msg, reinterpret_cast<void*>(static_cast<uintptr_t>(no)), *this);
        lock.lock();
      } catch (const mqtt::exception& e) {
        LogLine(LogLevel::kWarn, std::string("publish failed: ") + e.what() + "; reconnecting");
        lock.lock();
        // Whatever state Paho is in, start over: put every row back and
        // reconnect (the lost-connection handler may have done it already).
        connected = false;
        wait_before_connect = true;
        RequeueAllLocked();
        lock.unlock();
        try {
          if (client->is_connected()) client->disconnect(0)->wait_for(std::chrono::seconds(2));
        } catch (const mqtt::exception&) {
        }
        lock.lock();
      }
      continue;
    }

    // Nothing to send now: wait for rows, a PUBACK, a lost connection, or
    // the moment the rate limit or a refusal allows the next batch.
    Clock::time_point until = Clock::time_point::max();
    if (retry_after > now) until = retry_after;
    if (live.empty() && !backlog.empty() && rate_per_s > 0 && tokens < 1) {
      auto need = std::chrono::duration<double>((1 - tokens) / rate_per_s);
      until = std::min(until, now + std::chrono::duration_cast<Clock::duration>(need) +
                                  std::chrono::milliseconds(1));
    }
    if (until == Clock::time_point::max()) {
      cv.wait(lock);
    } else {
      cv.wait_until(lock, until);
    }
  }
  lock.unlock();
  if (client) {
    try {
      if (client->is_connected()) client->disconnect(1000)->wait_for(std::chrono::seconds(2));
    } catch (const mqtt::exception& e) {
      LogLine(LogLevel::kWarn, std::string("disconnect: ") + e.what());
    }
    client.reset();
  }
  lock.lock();
  connected = false;
  RequeueAllLocked();
}

}  // namespace weir
