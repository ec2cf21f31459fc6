// MqttUplink against a real Mosquitto: batches as JSON arrays with the
// weir-ids property, positions reported only after the PUBACK, and no row
// lost across a broker that dies with messages in flight.
#include "uplink/mqtt_uplink.h"

#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "tests/mqtt/test_broker.h"

namespace weir {
namespace {

using testing::TestBroker;
using testing::WaitFor;

struct Received {
  std::string topic;
  std::string payload;
  std::string weir_ids;  // the user property, "" when absent
};

// A cloud-side subscriber that records every message (MQTT 5, so it sees
// user properties). With `persistent`, it keeps a session across broker
// restarts (the broker must be started with persistence).
class Subscriber {
 public:
  Subscriber(const std::string& uri, const std::string& id, bool persistent = false)
      : create_(MQTTVERSION_5), client_(uri, id, create_, nullptr), persistent_(persistent) {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      Received r{m->get_topic(), m->get_payload_str(), ""};
      const mqtt::properties& p = m->get_properties();
      if (p.contains(mqtt::property::USER_PROPERTY)) {
        auto kv = mqtt::get<mqtt::string_pair>(p, mqtt::property::USER_PROPERTY);
        if (std::get<0>(kv) == "weir-ids") r.weir_ids = std::get<1>(kv);
      }
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(std::move(r));
    });
  }
  // Connects and subscribes, waiting for the SUBACK; false if the broker is not there.
  bool Connect() {
    try {
      mqtt::connect_options opts;
      opts.set_mqtt_version(MQTTVERSION_5);
      opts.set_clean_start(!persistent_);
      if (persistent_) {
        mqtt::properties props;
        props.add(mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL, 3600));
        opts.set_properties(props);
      }
      client_.connect(opts)->wait();
      client_.subscribe("weir/#", 1)->wait();
      return true;
    } catch (const mqtt::exception&) {
      return false;
    }
  }
  std::vector<Received> got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_.size();
  }

 private:
  mqtt::create_options create_;
  mqtt::async_client client_;
  bool persistent_;
  std::mutex mu_;
  std::vector<Received> got_;
};

UplinkRow Row(int64_t pos, const std::string& topic = "weir/gw-01/climate") {
  std::string id = "gw-01/climate/d" + std::to_string(pos) + "/1700000040000";
  return {pos, topic, id, R"({"id":")" + id + R"(","rev":0,"count":)" + std::to_string(pos) + "}"};
}

class Delivered {
 public:
  MqttUplink::DeliveredFn fn() {
    return [this](const std::vector<int64_t>& p) {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(p);
      for (int64_t x : p) positions_.insert(x);
    };
  }
  std::vector<std::vector<int64_t>> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::set<int64_t> positions() {
    std::lock_guard<std::mutex> lock(mu_);
    return positions_;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<int64_t>> calls_;
  std::set<int64_t> positions_;
};

MqttUplinkOptions Options(const TestBroker& broker, int64_t batch_max) {
  MqttUplinkOptions o;
  o.broker = broker.uri();
  o.client_id = "weir-gw-01-uplink";
  o.batch_max = batch_max;
  return o;
}

TEST(MqttUplinkTest, SendsABatchAsOneArrayWithWeirIdsAndReportsItsPositions) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  Subscriber sub(broker.uri(), "cloud");
  ASSERT_TRUE(sub.Connect());
  Delivered delivered;
  MqttUplink uplink(Options(broker, 100), delivered.fn());
  // Handed over before the connection exists: the first message holds all
  // three rows of the first topic; the row of another topic goes alone.
  uplink.Enqueue({Row(1), Row(2), Row(3), Row(4, "weir/gw-01/other")});
  ASSERT_TRUE(uplink.Start().ok());
  ASSERT_TRUE(uplink.WaitIdle(10000));
  EXPECT_EQ(uplink.stats().mqtt_version, 5);
  ASSERT_TRUE(WaitFor([&] { return sub.count() == 2; }, 10000));
  auto got = sub.got();
  EXPECT_EQ(got[0].topic, "weir/gw-01/climate");
  EXPECT_EQ(got[0].payload,
            "[" + Row(1).payload + "," + Row(2).payload + "," + Row(3).payload + "]");
  EXPECT_EQ(
      got[0].weir_ids,
      R"(["gw-01/climate/d1/1700000040000","gw-01/climate/d2/1700000040000","gw-01/climate/d3/1700000040000"])");
  EXPECT_EQ(got[1].topic, "weir/gw-01/other");
  EXPECT_EQ(got[1].payload, "[" + Row(4).payload + "]");
  auto calls = delivered.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(calls[1], (std::vector<int64_t>{4}));
  EXPECT_EQ(uplink.pending_rows(), 0u);
}

TEST(MqttUplinkTest, BatchMaxOneSendsBareObjectsAndMqtt311HasNoProperty) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  Subscriber sub(broker.uri(), "cloud");
  ASSERT_TRUE(sub.Connect());
  Delivered delivered;
  MqttUplinkOptions o = Options(broker, 1);
  o.mqtt_version = 4;
  MqttUplink uplink(o, delivered.fn());
  ASSERT_TRUE(uplink.Start().ok());
  uplink.Enqueue({Row(7), Row(8)});
  ASSERT_TRUE(uplink.WaitIdle(10000));
  ASSERT_TRUE(WaitFor([&] { return sub.count() == 2; }, 10000));
  auto got = sub.got();
  EXPECT_EQ(got[0].payload, Row(7).payload);
  EXPECT_EQ(got[1].payload, Row(8).payload);
  EXPECT_EQ(got[0].weir_ids, "");
  EXPECT_EQ(delivered.positions(), (std::set<int64_t>{7, 8}));
  EXPECT_EQ(uplink.stats().mqtt_version, 4);
}

// The broker freezes (SIGSTOP) with the rows in flight: no position may be
// reported. It then dies (SIGKILL) and comes back empty on the same port:
// the uplink reconnects after its backoff, sends every row again, and only
// then reports them.
TEST(MqttUplinkTest, ReportsOnlyAfterPubackAndResendsAfterBrokerRestart) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  Delivered delivered;
  MqttUplinkOptions o = Options(broker, 5);
  // The restarted broker forgets subscriptions: the test's subscriber must
  // be back before the uplink is. A long first backoff gives it the time
  // even on a loaded machine.
  o.reconnect_min_ms = 4000;
  o.reconnect_max_ms = 4000;
  MqttUplink uplink(o, delivered.fn());
  ASSERT_TRUE(uplink.Start().ok());
  ASSERT_TRUE(uplink.WaitConnected(10000));

  broker.Pause();
  std::vector<UplinkRow> rows;
  for (int i = 1; i <= 20; ++i) rows.push_back(Row(i));
  uplink.Enqueue(rows);
  ASSERT_TRUE(WaitFor([&] { return uplink.stats().messages_inflight == 4; }, 5000));
  // Absence can only be shown by waiting a while: long enough for a local
  // PUBACK many times over.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(delivered.calls().empty());
  EXPECT_EQ(uplink.pending_rows(), 20u);

  broker.Kill();
  ASSERT_TRUE(broker.Start());  // same port, no memory of anything
  Subscriber sub(broker.uri(), "cloud");
  ASSERT_TRUE(sub.Connect());  // before the uplink's backoff runs out
  ASSERT_TRUE(uplink.WaitIdle(20000));
  std::set<int64_t> all;
  for (int i = 1; i <= 20; ++i) all.insert(i);
  EXPECT_EQ(delivered.positions(), all);
  MqttUplinkStats s = uplink.stats();
  EXPECT_EQ(s.connects, 2u);
  EXPECT_EQ(s.connection_losses, 1u);
  EXPECT_GE(s.rows_resent, 20u);
  ASSERT_TRUE(WaitFor([&] { return sub.count() == 4; }, 10000)) << sub.count();
  auto got = sub.got();
  for (int b = 0; b < 4; ++b) {
    std::string want = "[";
    for (int i = b * 5 + 1; i <= b * 5 + 5; ++i)
      want += (i > b * 5 + 1 ? "," : "") + Row(i).payload;
    EXPECT_EQ(got[b].payload, want + "]");
  }
}

// A stream with the broker restarted gracefully in the middle (its sessions
// saved): every row reaches the subscriber, and any row seen twice is
// byte-identical to what was handed over.
TEST(MqttUplinkTest, StreamSurvivesBrokerRestartWithOnlyIdenticalDuplicates) {
  TestBroker broker(/*persistence=*/true);
  ASSERT_TRUE(broker.Start());
  Subscriber sub(broker.uri(), "cloud-persistent", /*persistent=*/true);
  ASSERT_TRUE(sub.Connect());
  Delivered delivered;
  MqttUplinkOptions o = Options(broker, 10);
  o.reconnect_min_ms = 200;
  MqttUplink uplink(o, delivered.fn());
  ASSERT_TRUE(uplink.Start().ok());
  ASSERT_TRUE(uplink.WaitConnected(10000));

  constexpr int kRows = 3000;
  std::map<std::string, std::string> sent;  // id -> payload
  std::vector<UplinkRow> rows;
  for (int i = 1; i <= kRows; ++i) {
    rows.push_back(Row(i));
    sent[rows.back().id] = rows.back().payload;
  }
  uplink.Enqueue(rows);
  ASSERT_TRUE(WaitFor([&] { return delivered.positions().size() >= 200; }, 10000));
  broker.Stop();
  ASSERT_TRUE(broker.Start());
  ASSERT_TRUE(WaitFor([&] { return sub.Connect(); }, 10000));
  ASSERT_TRUE(uplink.WaitIdle(30000));
  EXPECT_EQ(delivered.positions().size(), static_cast<size_t>(kRows));

  // Every row arrives; duplicates are identical repeats.
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& r : sub.got()) {
          size_t pos = 1;  // inside the array: split on the objects we built
          while (pos < r.payload.size()) {
            size_t end = r.payload.find('}', pos);
            std::string obj = r.payload.substr(pos, end + 1 - pos);
            size_t id_start = obj.find("\"id\":\"") + 6;
            std::string id = obj.substr(id_start, obj.find('"', id_start) - id_start);
            EXPECT_EQ(obj, sent[id]);
            seen[id] = obj;
            pos = end + 2;
          }
        }
        return seen.size() == static_cast<size_t>(kRows);
      },
      10000))
      << seen.size();
}

TEST(MqttUplinkTest, RefusesAKeyFileReadableByOthers) {
  std::string dir = testing::MakeTempDir("weir-tls-");
  std::string key = dir + "/gw.key";
  FILE* f = std::fopen(key.c_str(), "w");
  std::fputs("not really a key\n", f);
  std::fclose(f);
  chmod(key.c_str(), 0644);
  UplinkTlsOptions tls{"", dir + "/gw.key", key};
  Status st = MqttUplink::CheckTlsFiles(tls);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("chmod 600"), std::string::npos);
  EXPECT_EQ(st.message().find("not really"), std::string::npos);  // no key material
  chmod(key.c_str(), 0600);
  EXPECT_TRUE(MqttUplink::CheckTlsFiles(tls).ok());

  MqttUplinkOptions o;
  o.broker = "tcp://127.0.0.1:1";
  o.client_id = "x";
  o.tls = tls;
  MqttUplink uplink(o, nullptr);
  EXPECT_EQ(uplink.Start().code(), StatusCode::kInvalidArgument);  // TLS files need ssl://
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// live_first with max_rate: backlog rows drain at the rate, and a live row
// handed over later overtakes them.
TEST(MqttUplinkRateTest, BacklogDrainsAtMaxRateAndLiveRowsGoFirst) {
  TestBroker broker;
  ASSERT_TRUE(broker.Start());
  std::mutex mu;
  std::vector<int64_t> order;
  MqttUplinkOptions o;
  o.broker = broker.uri();
  o.client_id = "weir-rate-uplink";
  o.batch_max = 5;
  o.max_rate_per_s = 50;  // rows per second, with bursts of up to one second's worth
  MqttUplink uplink(o, [&](const std::vector<int64_t>& p) {
    std::lock_guard<std::mutex> lock(mu);
    order.insert(order.end(), p.begin(), p.end());
  });
  ASSERT_TRUE(uplink.Start().ok());
  ASSERT_TRUE(uplink.WaitConnected(10000));
  auto t0 = std::chrono::steady_clock::now();
  std::vector<UplinkRow> backlog;
  for (int i = 1; i <= 100; ++i) backlog.push_back(Row(i));
  uplink.Enqueue(backlog, /*backlog=*/true);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return order.size() >= 5;
      },
      10000));
  uplink.Enqueue({Row(1000)}, /*backlog=*/false);
  ASSERT_TRUE(uplink.WaitIdle(20000));
  double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // 100 rows at 50/s: a full bucket sends 50 at once, the other 50 take
  // at least 1 s (a little slack for timer granularity).
  EXPECT_GE(elapsed_s, 0.95);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(order.size(), 101u);
  auto live_at = std::find(order.begin(), order.end(), 1000) - order.begin();
  // At most the first burst (50 rows) and a few refills are ahead of it.
  EXPECT_LT(live_at, 70) << "the live row waited behind the backlog";
  std::vector<int64_t> backlog_order;
  for (int64_t p : order) {
    if (p != 1000) backlog_order.push_back(p);
  }
  EXPECT_TRUE(std::is_sorted(backlog_order.begin(), backlog_order.end()));
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// Makes a CA, a server certificate for 127.0.0.1 and a client certificate
// with openssl; returns false if openssl is missing or fails.
bool MakeCertificates(const std::string& dir) {
  std::ofstream(dir + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
  std::string cmd =
      "cd " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1"
      " -subj /CN=weir-test-ca"
      " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr"
      " -subj /CN=127.0.0.1"
      " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
      " -out server.crt -days 1 -extfile san.ext"
      " && openssl req -newkey rsa:2048 -nodes -keyout gw.key -out gw.csr -subj /CN=gw-01"
      " && openssl x509 -req -in gw.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
      " -out gw.crt -days 1"
      " && chmod 600 gw.key >/dev/null 2>&1";
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

TEST(MqttUplinkTlsTest, DeliversOverTlsWithAClientCertificate) {
  std::string certs = testing::MakeTempDir("weir-certs-");
  ASSERT_TRUE(MakeCertificates(certs));
  TestBroker broker;
  broker.UseTls(certs + "/ca.crt", certs + "/server.crt", certs + "/server.key");
  ASSERT_TRUE(broker.Start());
  ASSERT_EQ(broker.uri().rfind("ssl://", 0), 0u);
  Delivered delivered;
  MqttUplinkOptions o;
  o.broker = broker.uri();
  o.client_id = "weir-tls-uplink";
  o.tls = {certs + "/ca.crt", certs + "/gw.crt", certs + "/gw.key"};
  MqttUplink uplink(o, delivered.fn());
  ASSERT_TRUE(uplink.Start().ok());
  uplink.Enqueue({Row(1), Row(2)});
  ASSERT_TRUE(uplink.WaitIdle(20000));
  EXPECT_EQ(delivered.positions(), (std::set<int64_t>{1, 2}));

  // The same key made readable by others: refused before any connection.
  chmod((certs + "/gw.key").c_str(), 0640);
  MqttUplink refused(o, delivered.fn());
  Status st = refused.Start();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
}

}  // namespace
}  // namespace weir
