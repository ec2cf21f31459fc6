// MqttSource on Paho C++'s async_client. The reconnect loop is ours (not
// Paho's automatic reconnect) because the first connection needs retrying
// too, and because falling back from MQTT 5 to 3.1.1 needs a new client.
#include "ingest/mqtt_source.h"

#include <mqtt/async_client.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/backoff.h"
#include "core/log.h"

namespace weir {

const char* SourceStateName(SourceState state) {
  switch (state) {
    case SourceState::kStopped:
      return "stopped";
    case SourceState::kConnecting:
      return "connecting";
    case SourceState::kConnected:
      return "connected";
    case SourceState::kDisconnected:
      return "disconnected";
  }
  return "unknown";
}

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kSubscribeTimeout = std::chrono::seconds(10);

void LogLine(LogLevel level, const std::string& line) {
  WEIR_LOG(level, "source", "%s", line.c_str());
}

}  // namespace

struct MqttSource::Impl {
  MqttSourceOptions options;
  Handler handler;

  mutable std::mutex mu;  // guards everything below except `client` callbacks' use
  std::condition_variable cv;
  bool stop = false;
  bool lost = false;  // set by the connection-lost handler: the loop reconnects
  MqttSourceStats stats;
  int version_try = 5;  // the version the next attempt uses
  bool version_fixed = false;
  // Filter changes not yet acknowledged by the broker (Subscribe /
  // Unsubscribe); `options.filters` already has them. `filters_dirty`: the
  // reconnect thread should send them on the live connection.
  std::vector<std::string> to_subscribe;
  std::vector<std::string> to_unsubscribe;
  bool filters_dirty = false;

  std::unique_ptr<mqtt::async_client> client;  // owned by the reconnect thread
  int client_version = 0;
  std::thread thread;

  void Run();
  bool ConnectOnce();
  // Sends the pending filter changes on the connected client; false when
  // the broker did not acknowledge them (they stay pending for the next
  // connect). Reconnect thread only, `mu` not held.
  bool SendFilterChanges();
  void OnMessage(mqtt::const_message_ptr msg);
};

MqttSource::MqttSource(MqttSourceOptions options, Handler handler) : impl_(new Impl) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  if (impl_->options.mqtt_version == 4) impl_->version_try = 4;
  impl_->version_fixed = impl_->options.mqtt_version != 0;
  if (!impl_->options.clock_ms) {
    impl_->options.clock_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

MqttSource::~MqttSource() { Stop(); }

Status MqttSource::Start() {
  const MqttSourceOptions& o = impl_->options;
  if (o.broker.empty()) return InvalidArgument("source.broker is empty");
  if (o.client_id.empty()) return InvalidArgument("source.client_id is empty");
  if (o.filters.empty()) return InvalidArgument("no topic filters to subscribe to");
  if (o.qos < 0 || o.qos > 2) return InvalidArgument("source.qos must be 0, 1 or 2");
  if (o.mqtt_version != 0 && o.mqtt_version != 4 && o.mqtt_version != 5) {
    return InvalidArgument("mqtt_version must be 0 (auto), 4 (3.1.1) or 5");
  }
  if (!impl_->handler) return InvalidArgument("no message handler");
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->thread.joinable()) return FailedPrecondition("source already started");
  impl_->stop = false;
  impl_->stats.state = SourceState::kConnecting;
  impl_->thread = std::thread([this] { impl_->Run(); });
  return Status::Ok();
}

void MqttSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->thread.joinable()) return;
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.state = SourceState::kStopped;
}

bool MqttSource::WaitConnected(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [this] { return impl_->stats.state == SourceState::kConnected; });
}

namespace {

void AddUnique(std::vector<std::string>* list, const std::string& s) {
  if (std::find(list->begin(), list->end(), s) == list->end()) list->push_back(s);
}
void RemoveFrom(std::vector<std::string>* list, const std::string& s) {
  list->erase(std::remove(list->begin(), list->end(), s), list->end());
}

}  // namespace

void MqttSource::Subscribe(const std::vector<std::string>& filters) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const std::string& f : filters) {
      AddUnique(&impl_->options.filters, f);
      RemoveFrom(&impl_->to_unsubscribe, f);
      AddUnique(&impl_->to_subscribe, f);
    }
    impl_->filters_dirty = true;
  }
  impl_->cv.notify_all();
}

void MqttSource::Unsubscribe(const std::vector<std::string>& filters) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const std::string& f : filters) {
      RemoveFrom(&impl_->options.filters, f);
      RemoveFrom(&impl_->to_subscribe, f);
      AddUnique(&impl_->to_unsubscribe, f);
    }
    impl_->filters_dirty = true;
  }
  impl_->cv.notify_all();
}

bool MqttSource::Impl::SendFilterChanges() {
  std::vector<std::string> sub, unsub;
  {
    std::lock_guard<std::mutex> lock(mu);
    sub = to_subscribe;
    unsub = to_unsubscribe;
  }
  if (sub.empty() && unsub.empty()) return true;
  try {
    if (!sub.empty()) {
      mqtt::iasync_client::qos_collection qos(sub.size(), options.qos);
      mqtt::token_ptr tok = client->subscribe(mqtt::string_collection::create(sub), qos);
      if (!tok->wait_for(kSubscribeTimeout)) {
        throw mqtt::exception(MQTTASYNC_FAILURE, "subscribe timed out");
      }
      for (const std::string& f : sub) LogLine(LogLevel::kInfo, "added topic filter " + f);
    }
    if (!unsub.empty()) {
      mqtt::token_ptr tok = client->unsubscribe(mqtt::string_collection::create(unsub));
      if (!tok->wait_for(kSubscribeTimeout)) {
        throw mqtt::exception(MQTTASYNC_FAILURE, "unsubscribe timed out");
      }
      for (const std::string& f : unsub) LogLine(LogLevel::kInfo, "removed topic filter " + f);
    }
  } catch (const mqtt::exception& e) {
    LogLine(
        LogLevel::kWarn,
        std::string("changing topic filters failed (retried at the next connect): ") + e.what());
    return false;
  }
  std::lock_guard<std::mutex> lock(mu);
  // Only what was sent: a change that came meanwhile stays pending.
  for (const std::string& f : sub) RemoveFrom(&to_subscribe, f);
  for (const std::string& f : unsub) RemoveFrom(&to_unsubscribe, f);
  ++stats.filter_changes;
  return true;
}

MqttSourceStats MqttSource::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void MqttSource::Impl::OnMessage(mqtt::const_message_ptr msg) {
  // Paho's callback thread. The PUBACK follows our return (Paho C >= 1.3.10).
  Message m;
  m.arrival_ms = options.clock_ms();
  m.topic = msg->get_topic();
  m.payload = msg->get_payload_str();
  size_t bytes = m.payload.size();
  handler(std::move(m));
  std::lock_guard<std::mutex> lock(mu);
  ++stats.messages;
  stats.payload_bytes += bytes;
}

// One connection attempt with the current version; subscribes on success.
// Runs on the reconnect thread only.
bool MqttSource::Impl::ConnectOnce() {
  try {
    if (!client || client_version != version_try) {
      client.reset();  // a different MQTT version needs a new Paho client
      mqtt::create_options create(version_try == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
      // No Paho persistence: the broker's persistent session is the store.
      client =
          std::make_unique<mqtt::async_client>(options.broker, options.client_id, create, nullptr);
      client_version = version_try;
      client->set_message_callback([this](mqtt::const_message_ptr msg) { OnMessage(msg); });
      client->set_connection_lost_handler([this](const std::string& cause) {
        {
          std::lock_guard<std::mutex> lock(mu);
          lost = true;
          ++stats.connection_losses;
          stats.state = SourceState::kDisconnected;
        }
        LogLine(LogLevel::kWarn, "connection to broker lost" + (cause.empty() ? "" : ": " + cause));
        cv.notify_all();
      });
    }
    mqtt::connect_options opts;
    opts.set_keep_alive_interval(options.keep_alive_s);
    opts.set_connect_timeout(static_cast<int>(kConnectTimeout.count()));
    opts.set_automatic_reconnect(false);
    if (version_try == 5) {
      opts.set_mqtt_version(MQTTVERSION_5);
      opts.set_clean_start(false);
      mqtt::properties props;
      props.add(mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL,
                               static_cast<int32_t>(options.session_expiry_ms / 1000)));
      opts.set_properties(props);
    } else {
      opts.set_mqtt_version(MQTTVERSION_3_1_1);
      opts.set_clean_session(false);
    }
    if (!options.username.empty()) opts.set_user_name(options.username);
    if (!options.password.empty()) opts.set_password(options.password);
    if (options.broker.rfind("ssl://", 0) == 0 || options.broker.rfind("mqtts://", 0) == 0) {
      opts.set_ssl(mqtt::ssl_options());
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      lost = false;
    }
    mqtt::token_ptr tok = client->connect(opts);
    if (!tok->wait_for(kConnectTimeout + std::chrono::seconds(1))) {
      throw mqtt::exception(MQTTASYNC_FAILURE, "connect timed out");
    }
    bool session_present = tok->get_connect_response().is_session_present();
    // Resubscribe every time: a broker that restarted without persistence
    // has forgotten our subscriptions even though our client id is the same.
    std::vector<std::string> current;
    {
      std::lock_guard<std::mutex> lock(mu);
      current = options.filters;
      // The whole set goes out now; removals still have to be sent.
      to_subscribe.clear();
    }
    auto filters = mqtt::string_collection::create(current);
    mqtt::iasync_client::qos_collection qos(current.size(), options.qos);
    mqtt::token_ptr sub = client->subscribe(filters, qos);
    if (!sub->wait_for(kSubscribeTimeout)) {
      throw mqtt::exception(MQTTASYNC_FAILURE, "subscribe timed out");
    }
    // Filters removed while disconnected leave the persistent session now
    // (a failure leaves them for the next connect; the connection is fine).
    SendFilterChanges();
    std::lock_guard<std::mutex> lock(mu);
    if (lost) return false;  // lost again while subscribing
    ++stats.connects;
    stats.state = SourceState::kConnected;
    stats.mqtt_version = version_try;
    stats.session_present = session_present;
    version_fixed = true;  // auto mode: keep the version that worked
    LogLine(LogLevel::kInfo, "connected to " + options.broker + " as " + options.client_id +
                                 " (MQTT " + (version_try == 5 ? "5" : "3.1.1") + ", session " +
                                 (session_present ? "resumed" : "new") + ")");
    return true;
  } catch (const mqtt::exception& e) {
    LogLine(LogLevel::kWarn, "cannot connect to " + options.broker + " as " + options.client_id +
                                 " (MQTT " + (version_try == 5 ? "5" : "3.1.1") + "): " + e.what());
    return false;
  }
}

void MqttSource::Impl::Run() {
  Backoff backoff(options.reconnect_min_ms, options.reconnect_max_ms,
                  std::hash<std::string>()(options.client_id));
  std::unique_lock<std::mutex> lock(mu);
  while (!stop) {
    if (stats.state == SourceState::kConnected && !lost) {
      cv.wait(lock, [this] { return stop || lost || filters_dirty; });
      if (filters_dirty && !stop && !lost) {
        filters_dirty = false;
        lock.unlock();
        SendFilterChanges();  // on failure they wait for the next connect
        lock.lock();
      }
      continue;
    }
    stats.state = SourceState::kConnecting;
    filters_dirty = false;  // the connect sends them
    lock.unlock();
    bool ok = ConnectOnce();
    lock.lock();
    if (ok) {
      backoff.Reset();
      cv.notify_all();
      continue;
    }
    ++stats.connect_failures;
    stats.state = SourceState::kDisconnected;
    if (!version_fixed) version_try = version_try == 5 ? 4 : 5;
    int64_t delay_ms = backoff.NextDelayMs();
    cv.wait_for(lock, std::chrono::milliseconds(delay_ms), [this] { return stop; });
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
}

}  // namespace weir
