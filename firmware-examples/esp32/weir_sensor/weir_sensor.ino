// weir_sensor: an ESP32 publishing a DHT22's temperature and humidity the
// way weir expects (DESIGN 4, 6.1), with the weir_device library: QoS-1-like
// delivery over PubSubClient (which publishes QoS 0: a publish that returns
// true has reached the TCP stack, see README), a monotonic seq, sent_at from
// NTP time, an LWT on the status topic, and a RAM ring buffer that keeps up
// to 2000 readings while Wi-Fi or the broker is away.
//
// Wiring and build steps: ../README.md.
#include <DHT.h>
#include <PubSubClient.h>
#include <WiFi.h>
#include <time.h>

#include "weir_device.h"

// ---- settings -------------------------------------------------------------
static const char* kSsid = "your-ssid";
static const char* kPassword = "your-password";
static const char* kBroker = "192.168.1.10";  // the gateway running Mosquitto + weir
static const uint16_t kPort = 1883;
static const char* kDeviceId = "esp32-01";
static const uint32_t kPeriodMs = 10000;  // one reading every 10 s
static const int kDhtPin = 4;             // DHT22 data pin (GPIO4)
// ---------------------------------------------------------------------------

static const char* const kFields[] = {"t", "h"};
static weir_fw::Device<2000, 1024> device({kDeviceId, kFields, 2, 2}, weir_fw::Format::kJson, 5);
static WiFiClient net;
static PubSubClient mqtt(net);
static DHT dht(kDhtPin, DHT22);
static char topic[64];
static char status_topic[64];
static uint32_t last_reading = 0;
static uint32_t last_connect = 0;

static int64_t NowMs() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return int64_t(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

static bool Connect() {
  if (WiFi.status() != WL_CONNECTED) return false;
  // LWT: the broker publishes "offline" (retained) when the device vanishes.
  if (!mqtt.connect(kDeviceId, status_topic, 1, true, "offline")) return false;
  mqtt.publish(status_topic, "online", true);
  return true;
}

void setup() {
  Serial.begin(115200);
  snprintf(topic, sizeof(topic), "sensors/%s/telemetry", kDeviceId);
  snprintf(status_topic, sizeof(status_topic), "sensors/%s/status", kDeviceId);
  dht.begin();
  WiFi.mode(WIFI_STA);
  WiFi.begin(kSsid, kPassword);
  configTime(0, 0, "pool.ntp.org");  // ts and sent_at are UTC milliseconds
  mqtt.setServer(kBroker, kPort);
  mqtt.setBufferSize(1100);  // room for a batch of 5 JSON readings
}

void loop() {
  uint32_t now = millis();
  // Take readings only once NTP has set the clock: weir needs real event times.
  if (now - last_reading >= kPeriodMs && time(nullptr) > 1600000000) {
    last_reading = now;
    double values[2] = {dht.readTemperature(), dht.readHumidity()};  // NaN on a read error
    device.Record(NowMs(), values);
  }
  if (!mqtt.connected() && now - last_connect >= 2000) {
    last_connect = now;
    if (Connect()) {
      Serial.printf("connected, %u readings to replay\n", unsigned(device.buffered()));
    }
  }
  if (mqtt.connected()) {
    device.Flush(NowMs(), [](const uint8_t* payload, size_t size) {
      return mqtt.publish(topic, payload, size, false);
    });
  }
  mqtt.loop();
  delay(10);
}
