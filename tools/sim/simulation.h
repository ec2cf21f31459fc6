// Simulation: what the fleet publishes, message by message, in simulated
// time order: batching, out-of-order jitter, duplicates, status messages and
// disconnects with bounded buffering and replay on reconnect (DESIGN 9).
// Pure and deterministic like Fleet; weir-sim only paces and publishes.
#pragma once

#include <cstdint>
#include <deque>
#include <queue>
#include <string>
#include <tuple>
#include <vector>

#include "tools/sim/fleet.h"

namespace weir::sim {

struct SimMessage {
  int64_t time = 0;  // simulated time the message leaves the device
  size_t device = 0;
  std::string topic;
  std::string payload;
  bool binary = false;  // a FlatBuffers batch
  bool status = false;  // an online/offline status message
  int copies = 1;       // 2 when the device publishes it twice
  std::vector<SimReading> readings;
};

// What became of a generated reading, for --truth.
enum class Fate { kPublished, kDropped, kUnsent };

class Simulation {
 public:
  // REQUIRES: `scenario` outlives the simulation. `end_ms` is the simulated
  // end (exclusive); readings are made before it only.
  Simulation(const Scenario& scenario, uint64_t seed, int64_t start_ms, int64_t end_ms);

  // The next message in time order; false when the run is over. `truth`
  // receives the readings dropped from full buffers since the last call;
  // the caller reports a message's readings once it has published them.
  bool Next(SimMessage* out, std::vector<std::pair<SimReading, Fate>>* truth);
  // Readings made but never handed out (still buffered by disconnected
  // devices, or not yet due when the run was stopped), as kUnsent; call at
  // the end. Readings after simulated time `now` (a stop before the end)
  // were never made and are left out.
  void Finish(int64_t now, std::vector<std::pair<SimReading, Fate>>* truth);

  const Fleet& fleet() const { return fleet_; }
  uint64_t dropped() const { return dropped_; }

  // The payload of readings as one message of their device's group.
  std::string Encode(size_t device, const std::vector<SimReading>& readings, int64_t sent_at,
                     bool* binary) const;

 private:
  enum Kind { kData, kOffline, kReconnect };
  struct Event {
    int64_t time;
    uint64_t order;  // ties keep the order events were made in
    Kind kind;
    size_t device;
    std::vector<SimReading> readings;
    bool operator>(const Event& o) const {
      return std::tie(time, order) > std::tie(o.time, o.order);
    }
  };
  struct DeviceState {
    std::vector<SimReading> batch;    // readings not yet in a message
    std::deque<SimReading> buffered;  // made or due while disconnected
    int offline_depth = 0;            // overlapping outages
  };

  void Push(int64_t time, Kind kind, size_t device, std::vector<SimReading> readings);
  void Buffer(size_t device, std::vector<SimReading> readings);
  void Emit(int64_t time, size_t device, std::vector<SimReading> readings);
  void Fill();  // makes readings until an event is due before the next reading

  Fleet fleet_;
  int64_t end_ms_;
  int64_t now_ = 0;       // time of the last event handled: nothing is scheduled before it
  bool flushed_ = false;  // partial batches sent after the last reading
  uint64_t order_ = 0;
  uint64_t dropped_ = 0;
  std::vector<DeviceState> state_;
  std::vector<std::mt19937_64> rng_;  // jitter and disconnect draws, apart from values
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::deque<SimMessage> ready_;
  std::vector<std::pair<SimReading, Fate>> truth_;
};

}  // namespace weir::sim
