// Engine: the event-time core (DESIGN section 5). Pure logic: no clock reads,
// no I/O; processing time is an argument. One Engine holds one
// PipelineOperator per configured pipeline and steps them in config order,
// so results fired by one step come out ordered by pipeline first.
//
// Step protocol (DESIGN 5.2, 8), for each input line / live message:
//   engine.AdvanceTo(t, out);                  // time-advance step (idle release, firing)
//   then, for a status message: engine.OnStatus(device, online, t, out);
//   or, for each accepted reading of the message (after dedup):
//        engine.OnReading(reading, t, out);     // one step per reading
// Drain() at the end of a replay with --drain, or when a pipeline is removed.
//
// REQUIRES: external synchronization (one thread, the loop, drives an Engine).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/reading.h"
#include "core/result.h"
#include "core/status.h"

namespace weir {

// Receives what the engine emits, in emission order. References are valid only
// during the call.
class EngineOutput {
 public:
  virtual ~EngineOutput() = default;
  // A result (revision of a window or session) or a retraction.
  virtual void OnResult(int pipeline_index, const ResultRecord& result) = 0;
  // `late: side`: a late reading dropped from window state, to be published raw
  // on <uplink topic>/late. `ts_ms` is the timestamp the pipeline used.
  virtual void OnLateSide(int pipeline_index, const Reading& reading, int64_t ts_ms) {
    (void)pipeline_index, (void)reading, (void)ts_ms;
  }
};

// Counters per pipeline (DESIGN 7).
struct PipelineCounters {
  int64_t readings = 0;       // readings that reached the pipeline
  int64_t filtered = 0;       // failed `where`
  int64_t late_dropped = 0;   // per window a reading was dropped from
  int64_t late_updates = 0;   // late readings added to a window (late: update)
  int64_t results = 0;        // results emitted (incl. revisions)
  int64_t retractions = 0;
  int64_t open_windows = 0;   // windows/sessions currently held
  int64_t keys = 0;           // keys currently held in memory
  int64_t spilled_keys = 0;
  int64_t min_watermark = 0;  // lowest key watermark, for watermark-lag metrics
};

// Where checkpoints and spilled keys go (storage implements it with SQLite,
// tests in memory). Rows are opaque blobs owned by operators/.
class StateWriter {
 public:
  virtual ~StateWriter() = default;
  // kind: 'p' pipeline-level, 'd' device, 'k' key. `id` is the pipeline's
  // stable storage name (name, or name~g from generation 1 on).
  virtual void Put(std::string_view pipeline_id, char kind, std::string_view id,
                   std::string_view blob) = 0;
  virtual void Erase(std::string_view pipeline_id, char kind, std::string_view id) = 0;
};

class StateReader {
 public:
  virtual ~StateReader() = default;
  // Calls fn(kind, id, blob) for every row of the pipeline.
  virtual Status ForEach(std::string_view pipeline_id,
                         const std::function<Status(char, std::string_view, std::string_view)>& fn) = 0;
};

// Where keys beyond limits.max_keys go while they are idle (storage
// implements it with SQLite, tests in memory). Blobs use the checkpoint
// format of 'k' rows; `key_id` is the key's checkpoint id. Spill rows are not
// a checkpoint: a restart restores from checkpoints and the journal, so the
// spill table may be emptied on start.
class SpillStore {
 public:
  virtual ~SpillStore() = default;
  virtual void Put(std::string_view pipeline_id, std::string_view key_id,
                   std::string_view blob) = 0;
  // Copies the row into *blob; false when there is none.
  virtual bool Get(std::string_view pipeline_id, std::string_view key_id, std::string* blob) = 0;
  virtual void Erase(std::string_view pipeline_id, std::string_view key_id) = 0;
};

class Engine {
 public:
  // `generations[i]` is pipeline i's generation (DESIGN 6.5): from 1 on, ids
  // use "name~g". Empty means all 0.
  // REQUIRES: `config` passed ParseConfig.
  static Result<std::unique_ptr<Engine>> Create(const Config& config,
                                                const std::vector<int64_t>& generations = {});
  virtual ~Engine() = default;

  // Processing time advances to now_ms (never decreases). Returns true when
  // the step changed any state (a watermark rose, something fired).
  virtual bool AdvanceTo(int64_t now_ms, EngineOutput* out) = 0;
  virtual void OnStatus(std::string_view device, bool online, int64_t now_ms,
                        EngineOutput* out) = 0;
  // REQUIRES: dedup already applied; malformed readings never reach here.
  virtual void OnReading(const Reading& reading, int64_t now_ms, EngineOutput* out) = 0;
  // As if every watermark went to +infinity: fires every open and dirty window.
  virtual void Drain(EngineOutput* out) = 0;

  // Checkpoints: writes the state changed since the last call (and erases what
  // was purged), then clears the change marks. Restore loads it back.
  virtual void CollectChanges(StateWriter* writer) = 0;
  virtual Status Restore(StateReader* reader) = 0;

  // Enables limits.max_keys: the least recently active keys beyond it are
  // written to `store` and read back when a reading or a due window needs
  // them; results are the same as with every key in memory. Without a store
  // every key stays in memory. `store` must outlive the engine.
  virtual void SetSpillStore(SpillStore* store) { (void)store; }

  virtual const PipelineCounters& counters(int pipeline_index) const = 0;
};

}  // namespace weir
