// Daemon: `weir run`. Owns the libuv loop and wires the stages together
// (DESIGN section 2):
//
//   MQTT thread   MqttSource callback: journal append (durability journal),
//                 then a bounded queue push (blocks when full) + uv_async wake.
//   loop thread   drains the queue through the MessageProcessor (decode,
//                 dedup, engine); a tick timer advances processing time; a
//                 commit timer hands results + state changes + the journal
//                 position to the store as one CommitBatch; committed outbox
//                 rows are handed to the uplink; PUBACKs delete rows.
//   store worker  one transaction per batch (storage/).
//   Paho threads  uplink publishing and PUBACKs (uplink/).
//
// Restart = open the store, rebuild the engine from the state table, replay
// the journal after the checkpoint, then start the uplink and the source.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"

namespace weir {

struct DaemonOptions {
  std::string config_path;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  // Runs until SIGINT/SIGTERM; returns the process exit code.
  int Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weir
