// The event-time engine (DESIGN 5): per pipeline, per-device clocks and
// watermarks, tumbling/hopping windows and sessions, lateness and revisions.
//
// A step (time advance, status, or one reading) first updates device state
// (a reading is judged against the watermarks as they were before it), then
// EndStep: recompute wm_p, collect what is due (windows whose key watermark
// passed their end, dirty windows whose delay and device condition hold),
// emit them sorted by (end, start, key values), then purge. Work per step is
// kept proportional to what changes:
//   - wm_p is the minimum of a segment tree over eligible devices;
//   - a key is looked at only when its watermark reaches its next_deadline
//     (the earliest end or purge time among its windows);
//   - idle devices (5.2) are found at the front of arrival-ordered queues and
//     their raised watermark, max(wm, now - lag - ooo), is evaluated lazily:
//     device keys wake the device when a key falls due, group pipelines keep
//     the `now - lag - ooo` terms in a second tree.
// CreateEngine(..., exhaustive=true) turns all of that into plain rescans so
// tests can check the bookkeeping against the direct reading of the contract.
//
// Memory: devices, keys, windows and quantile sketches live in pools indexed
// by int32; names are found through open-addressing indexes keyed by
// string_view. Freed windows and sketches go to free lists and keep their
// buffers, and every per-step scratch vector is a member, so once the pools
// have grown to the working set a reading allocates nothing.
#include "operators/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>

#include "core/name_index.h"
#include "core/text.h"
#include "operators/aggregates.h"
#include "operators/engine_internal.h"
#include "operators/quantile_sketch.h"
#include "operators/state_codec.h"

namespace weir {
namespace {

// Watermark bounds that leave room for +/- durations without overflow.
constexpr int64_t kNegInf = std::numeric_limits<int64_t>::min() / 4;
constexpr int64_t kPosInf = std::numeric_limits<int64_t>::max() / 4;
// Version 2 added the purge marks (KeyState::purged_to, DeviceState::purge_floor,
// PipelineOperator::purge_floor_); version 1 rows still decode (see LegacyPurgeFloors).
constexpr uint8_t kBlobVersion = 2;
constexpr uint8_t kBlobVersionNoMarks = 1;

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// A pipeline's devices. Names live once per engine (`names`, shared by the
// pipelines), so the engine hashes a reading's device once and hands every
// pipeline the same handle; each pipeline maps handles to its own dense
// device ids (devices restored from a checkpoint exist in one pipeline only).
class DeviceIndex {
 public:
  explicit DeviceIndex(NameIndex* names) : names_(names) {}
  // Pipeline id of an engine handle, -1 when this pipeline has not seen it.
  int32_t Local(int32_t handle) const {
    return static_cast<size_t>(handle) < local_.size() ? local_[static_cast<size_t>(handle)] : -1;
  }
  int32_t Handle(std::string_view name) { return names_->FindOrInsert(name); }
  // REQUIRES: Local(handle) < 0.
  int32_t Insert(int32_t handle) {
    if (static_cast<size_t>(handle) >= local_.size()) {
      local_.resize(std::max(static_cast<size_t>(handle) + 1, 2 * local_.size()), -1);
    }
    int32_t id = static_cast<int32_t>(handles_.size());
    local_[static_cast<size_t>(handle)] = id;
    handles_.push_back(handle);
    return id;
  }
  const std::string& name(int32_t id) const {
    return names_->name(handles_[static_cast<size_t>(id)]);
  }

 private:
  NameIndex* names_;
  std::vector<int32_t> local_;    // by handle
  std::vector<int32_t> handles_;  // by pipeline id
};

// Minimum over a growing array of values, O(log n) per update (a segment
// tree over leaves [n, 2n) of `tree_`). Capacity doubles as values are added.
class MinTree {
 public:
  void Add(int64_t v) {
    if (size_ == cap_) {
      size_t cap = cap_ ? cap_ * 2 : 64;
      std::vector<int64_t> t(2 * cap, kPosInf);
      for (size_t i = 0; i < size_; ++i) t[cap + i] = tree_[cap_ + i];
      for (size_t i = cap - 1; i >= 1; --i) t[i] = std::min(t[2 * i], t[2 * i + 1]);
      tree_.swap(t);
      cap_ = cap;
    }
    ++size_;
    Set(static_cast<int32_t>(size_ - 1), v);
  }
  void Set(int32_t index, int64_t v) {
    size_t i = cap_ + static_cast<size_t>(index);
    tree_[i] = v;
    for (i /= 2; i >= 1; i /= 2) {
      int64_t m = std::min(tree_[2 * i], tree_[2 * i + 1]);
      if (tree_[i] == m) break;  // nothing above changes
      tree_[i] = m;
    }
  }
  int64_t Min() const { return cap_ ? tree_[1] : kPosInf; }

 private:
  std::vector<int64_t> tree_;
  size_t size_ = 0;
  size_t cap_ = 0;
};

struct DeviceState {
  int64_t max_ts = kNegInf;
  int64_t dwm = kNegInf;  // data watermark: max_ts - max_out_of_orderness
  int64_t wm = kNegInf;   // dwm raised by idleness
  int64_t lag = 0;
  bool has_lag = false;  // an accepted reading arrived (idleness needs lag_d)
  int64_t last_arrival = 0;
  bool online = true;
  bool seen = false;          // sent this pipeline a reading (counts for wm_p)
  bool idle = false;          // silent past its timeout (5.2) as of the last time-advance step
  bool in_idle_list = false;  // exhaustive mode only
  // While idle, wm_d is raised lazily: wm_d = max(wm, now - lag - ooo) (see
  // EffectiveWm). Group pipelines: `ramping` once now - lag - ooo >= wm, so
  // the device's term in wm_p is now - lag - ooo.
  bool ramping = false;
  uint32_t idle_epoch = 0;  // tells stale wake-ups apart
  uint64_t touch_mark = 0;  // step stamp: already in touched_devices_
  int8_t queue = -1;        // arrival queue: 0 online, 1 offline, -1 none
  int32_t q_prev = -1;
  int32_t q_next = -1;
  bool has_offset = false;
  int64_t clock_offset = 0;
  // Restored from a checkpoint written before purge marks were kept: the
  // purge mark every key of this device is assumed to have at least (see
  // LegacyPurgeFloors). kNegInf otherwise.
  int64_t purge_floor = kNegInf;
  bool changed = false;
  std::vector<int32_t> keys;  // keys containing `device` fed by this device
  int32_t own_key = -1;       // key ["device"]: the device's one key, found without hashing
};

struct Window {
  // Tumbling/hopping: [start, end). Sessions: first and last timestamps.
  int64_t start = 0;
  int64_t end = 0;
  int64_t count = 0;
  int64_t rev = -1;  // last emitted revision; -1: never emitted
  int64_t id_start = 0;
  uint64_t emit_seq = 0;  // order of first emission (earliest-emitted session keeps its id)
  bool dirty = false;
  bool in_dirty_list = false;
  int64_t dirty_since = 0;
  int32_t key = -1;
  std::vector<int32_t> dirty_devices;
  std::vector<std::pair<int64_t, int64_t>> retractions;  // (id_start, rev) sent before next result
  std::vector<AggSlot> aggs;
};

struct KeyState {
  int32_t device = -1;  // when the key contains `device`: whose wm closes it
  std::vector<std::string> values;
  std::string id_part;           // values percent-encoded, joined by ","; "*" for key []
  std::vector<int32_t> windows;  // sorted by start
  // Greatest `end` (sessions: last timestamp) of a window that fired and was
  // purged. A window ending at or before it that is not held is treated as
  // purged: a late reading for it is dropped even when allowed_lateness has
  // grown since (a reload), because re-creating it would emit a second,
  // different result under an id the receiver already has.
  int64_t purged_to = kNegInf;
  int64_t next_deadline = kPosInf;  // lower bound of the key wm at which something is due
  uint64_t mark = 0;                // step stamp: already a candidate in this step
  bool changed = false;
  bool persisted = false;
  bool spilled = false;  // windows live in the SpillStore; next_deadline stays exact
  bool linked = false;   // in the LRU list of keys holding windows in memory
  int32_t lru_prev = -1;
  int32_t lru_next = -1;
};

// Where a key part comes from.
constexpr int kKeyDevice = -1;
constexpr int kKeyUnknown = -2;

struct WhereSpec {
  int source = kKeyUnknown;  // field index (numeric) / attribute index (text) / kKeyDevice
  bool on_field = false;
  CompareOp op = CompareOp::kEq;
  bool is_text = false;
  double number = 0;
  std::string text;
};

template <typename T>
bool Compare(const T& a, CompareOp op, const T& b) {
  switch (op) {
    case CompareOp::kLt:
      return a < b;
    case CompareOp::kLe:
      return a <= b;
    case CompareOp::kGt:
      return a > b;
    case CompareOp::kGe:
      return a >= b;
    case CompareOp::kEq:
      return a == b;
    case CompareOp::kNe:
      return !(a == b);
  }
  return false;
}

struct Emission {
  int64_t end;
  int64_t start;
  int32_t key;
  int32_t window;
  int64_t rev;
};

class PipelineOperator {
 public:
  // `names`: the engine's device names, shared by its pipelines.
  PipelineOperator(const Config& config, int index, int64_t generation, NameIndex* names);
  // Tests: recompute everything every step instead of incrementally.
  void set_exhaustive(bool on) { exhaustive_ = on; }
  void set_spill(SpillStore* store) { spill_ = store; }

  bool Advance(int64_t now, EngineOutput* out);
  // `device` is r.device's (or the status device's) handle in the engine's names.
  void OnStatus(int32_t device, bool online, int64_t now, EngineOutput* out);
  void OnReading(const Reading& r, int32_t device, int64_t now, EngineOutput* out);
  void Drain(EngineOutput* out);
  void CollectChanges(StateWriter* writer);
  Status Restore(StateReader* reader);
  const PipelineCounters& counters() const { return counters_; }

 private:
  bool is_session() const { return window_.type == WindowType::kSession; }
  int64_t FireTime(const Window& w) const { return is_session() ? w.end + window_.gap_ms : w.end; }
  int64_t IdleCost(const DeviceState& d) const { return d.lag + et_.max_out_of_orderness_ms; }
  // wm_d as DESIGN 5.2 has it in this step, raised by idleness.
  int64_t EffectiveWm(const DeviceState& d) const {
    return d.idle ? std::max(d.wm, now_ - IdleCost(d)) : d.wm;
  }
  int64_t KeyWatermark(const KeyState& k) const {
    return k.device >= 0 ? EffectiveWm(devices_[static_cast<size_t>(k.device)]) : wm_p_;
  }

  void BeginStep(int64_t now, bool advance);
  bool EndStep(EngineOutput* out);
  int32_t FindOrAddDevice(std::string_view name) { return AddDevice(device_index_.Handle(name)); }
  int32_t AddDevice(int32_t handle) {
    int32_t id = device_index_.Local(handle);
    return id >= 0 ? id : AddNewDevice(handle);
  }
  int32_t AddNewDevice(int32_t handle);
  int32_t FindOrAddKey(std::string_view enc, int32_t device);
  void EncodeKey(const Reading& r);
  bool PassesWhere(const Reading& r) const;

  // Watermark bookkeeping: the minimum of wm_d over eligible (seen and
  // online) devices, kept in a MinTree, O(log devices) per change.
  void RaiseDeviceWm(int32_t di, int64_t new_wm);
  // Its keys are checked at the end of the step (and, idle, its wake-up re-armed).
  void Touch(int32_t di);
  void SetEligible(int32_t di, bool eligible);
  void RecomputePipelineWatermark();
  void NoteArrival(int32_t di);

  // Idleness without a per-step cost per idle device: devices with a lag sit
  // in two queues ordered by last arrival (online: idle_timeout, offline:
  // max_hold), so the ones falling idle are at the front. Idle devices are
  // then woken only when it matters: device keys when one of their keys
  // falls due, group pipelines when the device's term starts ramping.
  void QueueRemove(int32_t di);
  void QueuePush(int32_t di);
  void EnterIdle(int32_t di);
  void LeaveIdle(int32_t di);
  void StartRamping(int32_t di);
  void PushWake(int32_t di);
  void AdvanceExhaustive();

  int32_t AcquireWindow(int32_t key);
  void ReleaseWindow(int32_t wi);
  void AddToWindow(int32_t wi, const Reading& r, int64_t ts);
  void MarkDirty(int32_t wi, int32_t di);
  void RemoveFromDirtyList(int32_t wi);
  void InsertSorted(KeyState& k, int32_t wi);
  void LowerDeadline(KeyState& k, int64_t t);

  bool AddToTimeWindows(int32_t ki, const Reading& r, int64_t ts, int32_t di, int64_t key_wm);
  bool AddToSessions(int32_t ki, const Reading& r, int64_t ts, int32_t di, int64_t key_wm);
  void MergeSession(int32_t dst, int32_t src);

  void AddCandidate(int32_t ki);
  void CollectDue(int32_t ki);
  void Purge(int32_t ki, int64_t key_wm);
  void RecomputeDeadline(KeyState& k);
  void EmitSorted(EngineOutput* out);
  void EmitOne(const Emission& e, EngineOutput* out);

  void EncodeDevice(int32_t di, std::string* blob) const;
  void EncodeKeyState(int32_t ki, std::string* blob) const;
  Status DecodeDevice(std::string_view id, std::string_view blob);
  Status DecodeKeyState(std::string_view blob, bool from_spill);

  // limits.max_keys: keys holding windows form an LRU list; beyond the limit
  // the least recently active ones without dirty windows are spilled.
  void LruLink(int32_t ki);
  void LruUnlink(int32_t ki);
  void EnsureLoaded(int32_t ki);
  void Evict(int32_t ki);
  void EvictOverflow();
  Status DecodePipeline(std::string_view blob);
  void RebuildAfterRestore();
  // The purge mark a late reading for `ki` is judged against: the key's own,
  // raised by the floor derived from a checkpoint without marks.
  int64_t PurgedTo(const KeyState& k) const {
    int64_t floor =
        k.device >= 0 ? devices_[static_cast<size_t>(k.device)].purge_floor : purge_floor_;
    return std::max(k.purged_to, floor);
  }
  void LegacyPurgeFloors();

  // Config, resolved.
  const int index_;
  std::string name_;
  std::string storage_id_;  // name or name~g
  std::string id_prefix_;   // "gateway/pipeline[~g]/"
  WindowConfig window_;
  EventTimeConfig et_;
  std::vector<int> key_parts_;
  std::vector<std::string> key_names_;
  bool key_has_device_ = false;
  bool key_is_device_ = false;  // key ["device"]: DeviceState::own_key holds it
  std::vector<WhereSpec> where_;
  std::vector<AggSpec> aggs_;
  std::vector<std::string> agg_names_;

  // State.
  int64_t now_ = kNegInf;
  bool advance_ = false;  // inside a time-advance step (idle devices count)
  uint64_t step_ = 0;
  uint64_t arrival_seq_ = 0;
  uint64_t emit_seq_ = 0;
  int64_t wm_p_ = kNegInf;
  bool wm_p_raised_ = false;
  int64_t purge_floor_ = kNegInf;  // group keys' DeviceState::purge_floor
  bool restored_without_marks_ = false;
  MinTree eligible_wm_;    // wm_d of eligible devices, kPosInf for the others and ramping ones
  MinTree ramp_neg_cost_;  // -(lag + ooo) of ramping eligible devices, kPosInf for the others
  struct Queue {
    int32_t head = -1;
    int32_t tail = -1;
  };
  Queue queues_[2];
  struct Wake {
    int64_t at;
    int32_t device;
    uint32_t epoch;
    bool operator>(const Wake& o) const { return at > o.at; }
  };
  std::vector<Wake> wakes_;             // min-heap
  int64_t min_key_deadline_ = kPosInf;  // group keys: min next_deadline over keys
  bool exhaustive_ = false;
  SpillStore* spill_ = nullptr;
  int64_t max_keys_ = 0;
  int32_t lru_head_ = -1;
  int32_t lru_tail_ = -1;
  int64_t lru_size_ = 0;
  std::string spill_blob_;

  DeviceIndex device_index_;
  std::vector<DeviceState> devices_;
  NameIndex key_index_;
  std::vector<KeyState> keys_;
  std::vector<Window> windows_;
  std::vector<int32_t> free_windows_;
  std::vector<QuantileSketch> sketches_;
  std::vector<int32_t> free_sketches_;
  std::vector<int32_t> dirty_;            // windows with dirty set
  std::vector<std::string> erased_keys_;  // persisted keys dropped since the last checkpoint

  // Per-step scratch.
  std::vector<int32_t> idle_list_;
  std::vector<int32_t> touched_devices_;
  std::vector<int32_t> candidates_;
  std::vector<Emission> emissions_;
  std::vector<int32_t> matches_;
  std::string key_buf_;
  ResultRecord rec_;
  PipelineCounters counters_;
};

PipelineOperator::PipelineOperator(const Config& config, int index, int64_t generation,
                                   NameIndex* names)
    : index_(index), device_index_(names) {
  const PipelineConfig& p = config.pipelines[static_cast<size_t>(index)];
  name_ = p.name;
  storage_id_ = p.name;
  if (generation > 0) {
    storage_id_ += '~';
    AppendInt(generation, &storage_id_);
  }
  AppendIdPart(config.gateway, &id_prefix_);
  id_prefix_ += '/';
  AppendIdPart(storage_id_, &id_prefix_);
  id_prefix_ += '/';
  window_ = p.window;
  if (window_.type == WindowType::kTumbling) window_.hop_ms = window_.size_ms;
  et_ = p.event_time;
  max_keys_ = p.max_keys;
  for (const std::string& k : p.key) {
    key_names_.push_back(k);
    if (k == "device") {
      key_parts_.push_back(kKeyDevice);
      key_has_device_ = true;
    } else {
      int a = config.AttributeIndex(k);
      key_parts_.push_back(a >= 0 ? a : kKeyUnknown);
    }
  }
  key_is_device_ = key_parts_.size() == 1 && key_parts_[0] == kKeyDevice;
  for (const WhereCondition& c : p.where) {
    WhereSpec w;
    w.op = c.op;
    w.is_text = c.is_text;
    w.number = c.number;
    w.text = c.text;
    int f = config.FieldIndex(c.name);
    int a = config.AttributeIndex(c.name);
    if (!c.is_text && f >= 0) {
      w.on_field = true;
      w.source = f;
    } else if (c.name == "device") {
      w.source = kKeyDevice;
    } else if (a >= 0) {
      w.source = a;
    }  // else: text compared with a numeric field, or an unknown name: never holds
    if (!w.is_text && !w.on_field) {
      // A numeric condition on an attribute compares key text (5 == "5").
      w.text.clear();
      AppendKeyNumber(w.number, &w.text);
    }
    where_.push_back(std::move(w));
  }
  rec_.pipeline = name_;
  for (const AggregateConfig& a : p.aggregates) {
    AggSpec s;
    s.kind = a.kind;
    s.q = a.q;
    s.star = a.kind == AggregateKind::kCount && a.field == "*";
    s.field = s.star ? -1 : config.FieldIndex(a.field);
    aggs_.push_back(s);
    agg_names_.push_back(a.name);
    ResultValue v;
    v.name = a.name;
    rec_.values.push_back(v);
  }
  rec_.key.resize(key_names_.size());
  for (size_t i = 0; i < key_names_.size(); ++i) rec_.key[i].first = key_names_[i];
}

// ---------------------------------------------------------------- lookups

int32_t PipelineOperator::AddNewDevice(int32_t handle) {
  int32_t id = device_index_.Insert(handle);
  devices_.emplace_back();
  eligible_wm_.Add(kPosInf);
  ramp_neg_cost_.Add(kPosInf);
  // Scratch lists hold at most one entry per device: size them now, not mid-step.
  if (touched_devices_.capacity() < devices_.size()) {
    touched_devices_.reserve(2 * devices_.size());
    idle_list_.reserve(2 * devices_.size());
  }
  return id;
}

void PipelineOperator::EncodeKey(const Reading& r) {
  // Length-prefixed parts: unambiguous whatever bytes the values hold.
  key_buf_.clear();
  for (int part : key_parts_) {
    std::string_view v;
    if (part == kKeyDevice) {
      v = r.device;
    } else if (part >= 0 && r.HasAttribute(part)) {
      v = r.attribute[static_cast<size_t>(part)];
    }
    uint32_t n = static_cast<uint32_t>(v.size());
    char len[4] = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 24)};
    key_buf_.append(len, 4);
    key_buf_.append(v.data(), v.size());
  }
}

int32_t PipelineOperator::FindOrAddKey(std::string_view enc, int32_t device) {
  int32_t id = key_index_.Find(enc);
  if (id >= 0) return id;
  id = key_index_.Insert(enc);
  keys_.emplace_back();
  KeyState& k = keys_.back();
  size_t pos = 0;
  for (size_t i = 0; i < key_parts_.size(); ++i) {
    uint32_t n = static_cast<uint32_t>(static_cast<uint8_t>(enc[pos])) |
                 static_cast<uint32_t>(static_cast<uint8_t>(enc[pos + 1])) << 8 |
                 static_cast<uint32_t>(static_cast<uint8_t>(enc[pos + 2])) << 16 |
                 static_cast<uint32_t>(static_cast<uint8_t>(enc[pos + 3])) << 24;
    k.values.emplace_back(enc.substr(pos + 4, n));
    pos += 4 + n;
  }
  if (key_parts_.empty()) {
    k.id_part = "*";
  } else {
    for (size_t i = 0; i < k.values.size(); ++i) {
      if (i) k.id_part += ',';
      AppendIdPart(k.values[i], &k.id_part);
    }
  }
  if (key_has_device_) {
    k.device = device;
    devices_[static_cast<size_t>(device)].keys.push_back(id);
    if (key_is_device_) devices_[static_cast<size_t>(device)].own_key = id;
  }
  if (candidates_.capacity() < keys_.size()) candidates_.reserve(2 * keys_.size());
  return id;
}

bool PipelineOperator::PassesWhere(const Reading& r) const {
  for (const WhereSpec& w : where_) {
    if (w.on_field) {
      if (!r.HasField(w.source)) return false;
      if (!Compare(r.field[static_cast<size_t>(w.source)], w.op, w.number)) return false;
      continue;
    }
    std::string_view v;
    if (w.source == kKeyDevice) {
      v = r.device;
    } else if (w.source >= 0 && r.HasAttribute(w.source)) {
      v = r.attribute[static_cast<size_t>(w.source)];
    } else {
      return false;
    }
    if (!w.is_text && w.op != CompareOp::kEq && w.op != CompareOp::kNe) {
      // Ordering on an attribute: compare as a number when it is one.
      char* endp = nullptr;
      char buf[64];
      if (v.size() >= sizeof buf) return false;
      std::memcpy(buf, v.data(), v.size());
      buf[v.size()] = 0;
      double d = std::strtod(buf, &endp);
      if (v.empty() || endp != buf + v.size()) return false;
      if (!Compare(d, w.op, w.number)) return false;
      continue;
    }
    if (!Compare(v, w.op, std::string_view(w.text))) return false;
  }
  return true;
}

// ------------------------------------------------------------- watermarks

void PipelineOperator::RaiseDeviceWm(int32_t di, int64_t new_wm) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  if (new_wm <= d.wm) return;
  if (d.seen && d.online) eligible_wm_.Set(di, new_wm);
  d.wm = new_wm;
  d.changed = true;
  Touch(di);
}

void PipelineOperator::Touch(int32_t di) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  if (d.touch_mark == step_) return;
  d.touch_mark = step_;
  touched_devices_.push_back(di);
}

void PipelineOperator::SetEligible(int32_t di, bool eligible) {
  eligible_wm_.Set(di, eligible ? devices_[static_cast<size_t>(di)].wm : kPosInf);
}

void PipelineOperator::RecomputePipelineWatermark() {
  int64_t min_wm = eligible_wm_.Min();
  int64_t neg_cost = ramp_neg_cost_.Min();
  if (neg_cost < kPosInf) min_wm = std::min(min_wm, now_ + neg_cost);
  if (exhaustive_) {
    min_wm = kPosInf;
    for (const DeviceState& d : devices_) {
      if (d.seen && d.online) min_wm = std::min(min_wm, d.wm);
    }
  }
  // kPosInf: no eligible device, and wm_p stays as it is.
  counters_.min_watermark = min_wm < kPosInf ? min_wm : wm_p_;
  if (min_wm < kPosInf && min_wm > wm_p_) {
    wm_p_ = min_wm;
    wm_p_raised_ = true;
  }
}

void PipelineOperator::NoteArrival(int32_t di) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  d.last_arrival = now_;
  d.idle = false;
  d.changed = true;
  // Already last in its queue (and in the right one): nothing moves.
  if (d.has_lag &&
      !(d.queue >= 0 && queues_[d.queue].tail == di && d.queue == (d.online ? 0 : 1))) {
    QueueRemove(di);
    QueuePush(di);
  }
}

void PipelineOperator::QueueRemove(int32_t di) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  if (d.queue < 0) return;
  Queue& q = queues_[d.queue];
  if (d.q_prev >= 0) {
    devices_[static_cast<size_t>(d.q_prev)].q_next = d.q_next;
  } else {
    q.head = d.q_next;
  }
  if (d.q_next >= 0) {
    devices_[static_cast<size_t>(d.q_next)].q_prev = d.q_prev;
  } else {
    q.tail = d.q_prev;
  }
  d.queue = -1;
  d.q_prev = d.q_next = -1;
}

void PipelineOperator::QueuePush(int32_t di) {
  // REQUIRES: not queued, and last_arrival >= that of every queued device.
  DeviceState& d = devices_[static_cast<size_t>(di)];
  d.queue = d.online ? 0 : 1;
  Queue& q = queues_[d.queue];
  d.q_prev = q.tail;
  d.q_next = -1;
  if (q.tail >= 0) {
    devices_[static_cast<size_t>(q.tail)].q_next = di;
  } else {
    q.head = di;
  }
  q.tail = di;
}

void PipelineOperator::EnterIdle(int32_t di) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  d.idle = true;
  ++d.idle_epoch;
  int64_t cost = IdleCost(d);
  if (key_has_device_) {
    RaiseDeviceWm(di, now_ - cost);
    Touch(di);  // EndStep checks its keys and arms the next wake-up
  } else if (now_ - cost >= d.wm) {
    StartRamping(di);
  } else {
    wakes_.push_back({d.wm + cost, di, d.idle_epoch});
    std::push_heap(wakes_.begin(), wakes_.end(), std::greater<Wake>());
  }
}

void PipelineOperator::StartRamping(int32_t di) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  d.ramping = true;
  if (d.seen && d.online) {
    eligible_wm_.Set(di, kPosInf);
    ramp_neg_cost_.Set(di, -IdleCost(d));
  }
}

void PipelineOperator::LeaveIdle(int32_t di) {
  DeviceState& d = devices_[static_cast<size_t>(di)];
  if (!d.idle) return;
  int64_t wm = EffectiveWm(d);
  if (d.ramping) {
    d.ramping = false;
    ramp_neg_cost_.Set(di, kPosInf);
    if (d.seen && d.online) eligible_wm_.Set(di, d.wm);
  }
  d.idle = false;
  RaiseDeviceWm(di, wm);
}

void PipelineOperator::PushWake(int32_t di) {
  const DeviceState& d = devices_[static_cast<size_t>(di)];
  if (!d.idle) return;
  int64_t due = kPosInf;
  for (int32_t ki : d.keys) due = std::min(due, keys_[static_cast<size_t>(ki)].next_deadline);
  if (due >= kPosInf) return;
  wakes_.push_back({due + IdleCost(d), di, d.idle_epoch});
  std::push_heap(wakes_.begin(), wakes_.end(), std::greater<Wake>());
}

// ------------------------------------------------------------------ steps

void PipelineOperator::BeginStep(int64_t now, bool advance) {
  if (now > now_) now_ = now;
  advance_ = advance;
  ++step_;
  wm_p_raised_ = false;
  touched_devices_.clear();
  candidates_.clear();
  emissions_.clear();
}

bool PipelineOperator::Advance(int64_t now, EngineOutput* out) {
  BeginStep(now, /*advance=*/true);
  if (exhaustive_) {
    AdvanceExhaustive();
  } else {
    for (int q = 0; q < 2; ++q) {
      int64_t timeout = q == 0 ? et_.idle_timeout_ms : et_.max_hold_ms;
      while (queues_[q].head >= 0 &&
             now_ - devices_[static_cast<size_t>(queues_[q].head)].last_arrival >= timeout) {
        int32_t di = queues_[q].head;
        QueueRemove(di);
        EnterIdle(di);
      }
    }
    while (!wakes_.empty() && wakes_.front().at <= now_) {
      Wake w = wakes_.front();
      std::pop_heap(wakes_.begin(), wakes_.end(), std::greater<Wake>());
      wakes_.pop_back();
      DeviceState& d = devices_[static_cast<size_t>(w.device)];
      if (!d.idle || d.idle_epoch != w.epoch) continue;  // it has spoken since
      if (key_has_device_) {
        RaiseDeviceWm(w.device, now_ - IdleCost(d));
        Touch(w.device);
      } else if (!d.ramping) {
        StartRamping(w.device);
      }
    }
  }
  bool changed = !touched_devices_.empty();
  changed |= EndStep(out);
  advance_ = false;
  return changed;
}

// The plain reading of 5.2, for tests: every step, scan every device and
// raise every idle one.
void PipelineOperator::AdvanceExhaustive() {
  for (int32_t di = 0; di < static_cast<int32_t>(devices_.size()); ++di) {
    DeviceState& d = devices_[static_cast<size_t>(di)];
    if (!d.has_lag || d.idle) continue;
    int64_t deadline = d.last_arrival + (d.online ? et_.idle_timeout_ms : et_.max_hold_ms);
    if (now_ >= deadline) {
      d.idle = true;
      if (!d.in_idle_list) {
        d.in_idle_list = true;
        idle_list_.push_back(di);
      }
    }
  }
  size_t kept = 0;
  for (int32_t di : idle_list_) {
    DeviceState& d = devices_[static_cast<size_t>(di)];
    if (!d.idle) {
      d.in_idle_list = false;
      continue;
    }
    idle_list_[kept++] = di;
    RaiseDeviceWm(di, now_ - IdleCost(d));
  }
  idle_list_.resize(kept);
}

void PipelineOperator::OnStatus(int32_t device, bool online, int64_t now, EngineOutput* out) {
  BeginStep(now, /*advance=*/false);
  int32_t di = AddDevice(device);
  LeaveIdle(di);
  DeviceState& d = devices_[static_cast<size_t>(di)];
  bool was = d.seen && d.online;
  d.online = online;
  if (d.seen && was != online) SetEligible(di, online);
  NoteArrival(di);
  EndStep(out);
}

void PipelineOperator::OnReading(const Reading& r, int32_t device, int64_t now, EngineOutput* out) {
  BeginStep(now, /*advance=*/false);
  ++counters_.readings;
  ++arrival_seq_;
  int32_t di = AddDevice(device);
  DeviceState* d = &devices_[static_cast<size_t>(di)];
  if (d->idle) LeaveIdle(di);  // its wm as this line's time advance left it
  if (r.has_sent_at) {
    d->clock_offset = now_ - r.sent_at_ms;
    d->has_offset = true;
  }
  int64_t ts = r.ts_ms;
  if (et_.clock == ClockMode::kCorrected && d->has_offset) ts += d->clock_offset;

  // Judged against the watermarks as they were before the reading.
  int64_t dev_wm_before = d->wm;
  int64_t wm_p_before = wm_p_;

  bool was_eligible = d->seen && d->online;
  d->max_ts = std::max(d->max_ts, ts);
  d->dwm = std::max(d->dwm, d->max_ts - et_.max_out_of_orderness_ms);
  d->lag = now_ - ts;
  d->has_lag = true;
  d->online = true;
  d->seen = true;
  int64_t new_wm = std::max(d->wm, d->dwm);
  if (!was_eligible) {
    d->wm = new_wm;
    Touch(di);
    SetEligible(di, true);
  } else {
    RaiseDeviceWm(di, new_wm);
  }
  NoteArrival(di);

  if (!PassesWhere(r)) {
    ++counters_.filtered;
  } else {
    // Key ["device"], the common case: the device already knows its key.
    int32_t ki = key_is_device_ ? devices_[static_cast<size_t>(di)].own_key : -1;
    if (ki < 0) {
      EncodeKey(r);
      ki = FindOrAddKey(key_buf_, di);
    }
    if (keys_[static_cast<size_t>(ki)].spilled) EnsureLoaded(ki);
    int64_t key_wm = key_has_device_ ? dev_wm_before : wm_p_before;
    bool dropped = is_session() ? AddToSessions(ki, r, ts, di, key_wm)
                                : AddToTimeWindows(ki, r, ts, di, key_wm);
    KeyState& k = keys_[static_cast<size_t>(ki)];
    k.changed = true;
    if (!k.windows.empty() && (!k.linked || (spill_ && max_keys_ > 0))) LruLink(ki);
    if (dropped && et_.late == LatePolicy::kSide && out) out->OnLateSide(index_, r, ts);
  }
  EndStep(out);
}

void PipelineOperator::AddCandidate(int32_t ki) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  if (k.mark == step_) return;
  k.mark = step_;
  candidates_.push_back(ki);
}

bool PipelineOperator::EndStep(EngineOutput* out) {
  RecomputePipelineWatermark();
  bool scanned = false;
  // Keys whose watermark rose far enough for something to be due.
  if (exhaustive_) {
    for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) AddCandidate(ki);
  } else if (key_has_device_) {
    for (int32_t di : touched_devices_) {
      const DeviceState& d = devices_[static_cast<size_t>(di)];
      int64_t wm = EffectiveWm(d);
      for (int32_t ki : d.keys) {
        if (keys_[static_cast<size_t>(ki)].next_deadline <= wm) AddCandidate(ki);
      }
    }
  } else if (wm_p_ >= min_key_deadline_) {
    scanned = true;
    for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) {
      if (keys_[static_cast<size_t>(ki)].next_deadline <= wm_p_) AddCandidate(ki);
    }
  }
  for (int32_t ki : candidates_) {
    EnsureLoaded(ki);
    CollectDue(ki);
  }

  // Dirty windows (5.4): due once late_emit_delay has passed since they
  // became dirty and one dirty device's data (or idleness) is past the end.
  size_t kept = 0;
  for (size_t i = 0; i < dirty_.size(); ++i) {
    int32_t wi = dirty_[i];
    Window& w = windows_[static_cast<size_t>(wi)];
    if (!w.dirty) {
      w.in_dirty_list = false;
      continue;
    }
    bool emit = false;
    if (now_ - w.dirty_since >= et_.late_emit_delay_ms) {
      int64_t e = FireTime(w);
      size_t stay = 0;
      for (int32_t di : w.dirty_devices) {
        const DeviceState& d = devices_[static_cast<size_t>(di)];
        if (d.dwm >= e || (advance_ && d.idle)) {
          emit = true;
        } else {
          w.dirty_devices[stay++] = di;
        }
      }
      if (emit) {
        w.dirty_devices.resize(stay);
        emissions_.push_back({w.end, w.start, w.key, wi, w.rev + 1});
        w.rev += 1;
        w.dirty_since = now_;
        if (stay == 0) w.dirty = false;
        keys_[static_cast<size_t>(w.key)].changed = true;
        AddCandidate(w.key);
      }
    }
    if (w.dirty) {
      dirty_[kept++] = wi;
    } else {
      w.in_dirty_list = false;
    }
  }
  dirty_.resize(kept);

  bool changed = wm_p_raised_ || !emissions_.empty();
  if (!emissions_.empty()) EmitSorted(out);
  size_t held_before = windows_.size() - free_windows_.size();
  for (int32_t ki : candidates_) {
    KeyState& k = keys_[static_cast<size_t>(ki)];
    Purge(ki, KeyWatermark(k));
    if (k.windows.empty()) LruUnlink(ki);
  }
  if (!key_has_device_) {
    if (scanned) {
      min_key_deadline_ = kPosInf;
      for (const KeyState& k : keys_)
        min_key_deadline_ = std::min(min_key_deadline_, k.next_deadline);
    } else {
      for (int32_t ki : candidates_) {
        min_key_deadline_ =
            std::min(min_key_deadline_, keys_[static_cast<size_t>(ki)].next_deadline);
      }
    }
  }
  changed |= held_before != windows_.size() - free_windows_.size();
  if (key_has_device_ && !exhaustive_) {
    // Idle devices whose keys moved on: wake them when the next one is due.
    for (int32_t di : touched_devices_) {
      if (devices_[static_cast<size_t>(di)].idle) PushWake(di);
    }
    for (int32_t ki : candidates_) PushWake(keys_[static_cast<size_t>(ki)].device);
  }
  if (spill_ && max_keys_ > 0) EvictOverflow();
  counters_.open_windows = static_cast<int64_t>(windows_.size() - free_windows_.size());
  counters_.keys = lru_size_;
  return changed;
}

void PipelineOperator::CollectDue(int32_t ki) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  int64_t key_wm = KeyWatermark(k);
  for (int32_t wi : k.windows) {
    Window& w = windows_[static_cast<size_t>(wi)];
    // Time windows are sorted by end too: nothing later is due.
    if (!is_session() && FireTime(w) > key_wm) break;
    if (w.dirty || w.rev >= 0 || FireTime(w) > key_wm) continue;
    w.rev = 0;
    emissions_.push_back({w.end, w.start, ki, wi, 0});
    k.changed = true;
  }
}

void PipelineOperator::Purge(int32_t ki, int64_t key_wm) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  size_t kept = 0;
  size_t n = k.windows.size();
  for (size_t i = 0; i < n; ++i) {
    int32_t wi = k.windows[i];
    const Window& w = windows_[static_cast<size_t>(wi)];
    if (!is_session() && key_wm < FireTime(w) + et_.allowed_lateness_ms) {
      // Sorted by end: none of the rest is purgeable either.
      for (; i < n; ++i) k.windows[kept++] = k.windows[i];
      break;
    }
    if (!w.dirty && w.rev >= 0 && key_wm >= FireTime(w) + et_.allowed_lateness_ms) {
      k.purged_to = std::max(k.purged_to, w.end);
      ReleaseWindow(wi);
      k.changed = true;
    } else {
      k.windows[kept++] = wi;
    }
  }
  k.windows.resize(kept);
  RecomputeDeadline(k);
}

void PipelineOperator::RecomputeDeadline(KeyState& k) {
  k.next_deadline = kPosInf;
  for (int32_t wi : k.windows) {
    const Window& w = windows_[static_cast<size_t>(wi)];
    // Time windows are sorted by end, and a deadline is never before the end.
    if (!is_session() && FireTime(w) >= k.next_deadline) break;
    if (w.dirty) continue;  // the dirty list watches it
    int64_t t = FireTime(w);
    if (w.rev >= 0) t += et_.allowed_lateness_ms;
    k.next_deadline = std::min(k.next_deadline, t);
  }
}

void PipelineOperator::LowerDeadline(KeyState& k, int64_t t) {
  k.next_deadline = std::min(k.next_deadline, t);
  if (!key_has_device_) min_key_deadline_ = std::min(min_key_deadline_, t);
}

void PipelineOperator::EmitSorted(EngineOutput* out) {
  if (emissions_.empty()) return;
  std::sort(emissions_.begin(), emissions_.end(), [this](const Emission& a, const Emission& b) {
    if (a.end != b.end) return a.end < b.end;
    if (a.start != b.start) return a.start < b.start;
    const auto& va = keys_[static_cast<size_t>(a.key)].values;
    const auto& vb = keys_[static_cast<size_t>(b.key)].values;
    return std::lexicographical_compare(va.begin(), va.end(), vb.begin(), vb.end());
  });
  for (const Emission& e : emissions_) EmitOne(e, out);
  emissions_.clear();
}

void PipelineOperator::EmitOne(const Emission& e, EngineOutput* out) {
  Window& w = windows_[static_cast<size_t>(e.window)];
  const KeyState& k = keys_[static_cast<size_t>(e.key)];
  if (e.rev == 0) {
    w.id_start = w.start;
    w.emit_seq = ++emit_seq_;
  }
  for (const auto& [id_start, rev] : w.retractions) {
    rec_.id.assign(id_prefix_);
    rec_.id += k.id_part;
    rec_.id += '/';
    AppendInt(id_start, &rec_.id);
    rec_.rev = rev;
    rec_.retracted = true;
    ++counters_.retractions;
    if (out) out->OnResult(index_, rec_);
  }
  w.retractions.clear();
  rec_.id.assign(id_prefix_);
  rec_.id += k.id_part;
  rec_.id += '/';
  AppendInt(w.id_start, &rec_.id);
  rec_.rev = e.rev;
  rec_.retracted = false;
  for (size_t i = 0; i < k.values.size(); ++i) rec_.key[i].second.assign(k.values[i]);
  rec_.start = w.start;
  rec_.end = w.end;
  rec_.count = w.count;
  rec_.has_duration = is_session();
  rec_.duration_ms = w.end - w.start;
  for (size_t i = 0; i < aggs_.size(); ++i) {
    const AggSlot& slot = w.aggs[i];
    const QuantileSketch* sk =
        slot.sketch >= 0 ? &sketches_[static_cast<size_t>(slot.sketch)] : nullptr;
    double v = 0;
    rec_.values[i].is_null = !AggValue(aggs_[i], slot, sk, &v);
    rec_.values[i].value = v;
  }
  ++counters_.results;
  if (out) out->OnResult(index_, rec_);
}

// ---------------------------------------------------------------- windows

int32_t PipelineOperator::AcquireWindow(int32_t key) {
  if (free_windows_.empty()) {
    // Grow the pool by doubling, so a working set that creeps up causes a
    // handful of allocations, not one per new window.
    size_t grow = std::max<size_t>(16, windows_.size());
    windows_.reserve(windows_.size() + grow);
    free_windows_.reserve(windows_.size() + grow);
    for (size_t i = 0; i < grow; ++i) {
      windows_.emplace_back();
      Window& w = windows_.back();
      w.aggs.resize(aggs_.size());
      w.dirty_devices.reserve(4);
      w.retractions.reserve(2);
      free_windows_.push_back(static_cast<int32_t>(windows_.size() - 1));
    }
    std::reverse(free_windows_.begin(), free_windows_.end());
  }
  int32_t wi = free_windows_.back();
  free_windows_.pop_back();
  Window& w = windows_[static_cast<size_t>(wi)];
  w.start = w.end = w.count = 0;
  w.rev = -1;
  w.id_start = 0;
  w.emit_seq = 0;
  w.dirty = w.in_dirty_list = false;
  w.dirty_since = 0;
  w.key = key;
  w.dirty_devices.clear();
  w.retractions.clear();
  for (size_t i = 0; i < aggs_.size(); ++i) {
    w.aggs[i] = AggSlot{};
    if (aggs_[i].kind == AggregateKind::kQuantile) {
      if (free_sketches_.empty()) {
        size_t grow = std::max<size_t>(16, sketches_.size());
        sketches_.reserve(sketches_.size() + grow);
        free_sketches_.reserve(sketches_.size() + grow);
        for (size_t j = 0; j < grow; ++j) {
          sketches_.emplace_back();
          sketches_.back().Reserve(64);
          free_sketches_.push_back(static_cast<int32_t>(sketches_.size() - 1));
        }
      }
      int32_t si = free_sketches_.back();
      free_sketches_.pop_back();
      sketches_[static_cast<size_t>(si)].Clear();
      w.aggs[i].sketch = si;
    }
  }
  return wi;
}

void PipelineOperator::ReleaseWindow(int32_t wi) {
  Window& w = windows_[static_cast<size_t>(wi)];
  if (w.in_dirty_list) RemoveFromDirtyList(wi);
  for (AggSlot& a : w.aggs) {
    if (a.sketch >= 0) free_sketches_.push_back(a.sketch);
    a.sketch = -1;
  }
  w.key = -1;
  free_windows_.push_back(wi);
}

void PipelineOperator::RemoveFromDirtyList(int32_t wi) {
  auto it = std::find(dirty_.begin(), dirty_.end(), wi);
  if (it != dirty_.end()) dirty_.erase(it);
  windows_[static_cast<size_t>(wi)].in_dirty_list = false;
}

void PipelineOperator::AddToWindow(int32_t wi, const Reading& r, int64_t ts) {
  Window& w = windows_[static_cast<size_t>(wi)];
  ++w.count;
  // Locals, not members, in the loop: the slot stores could alias them as far
  // as the compiler knows, and this runs per aggregate per window per reading.
  AggSlot* slots = w.aggs.data();
  const AggSpec* specs = aggs_.data();
  const size_t n = aggs_.size();
  const uint64_t seq = arrival_seq_;
  for (size_t i = 0; i < n; ++i) {
    QuantileSketch* sk = nullptr;
    if (specs[i].kind == AggregateKind::kQuantile && slots[i].sketch >= 0) {
      sk = &sketches_[static_cast<size_t>(slots[i].sketch)];
    }
    AggAdd(specs[i], r, ts, seq, &slots[i], sk);
  }
}

void PipelineOperator::MarkDirty(int32_t wi, int32_t di) {
  Window& w = windows_[static_cast<size_t>(wi)];
  if (!w.dirty) {
    w.dirty = true;
    w.dirty_since = now_;
  }
  if (!w.in_dirty_list) {
    w.in_dirty_list = true;
    dirty_.push_back(wi);
  }
  if (std::find(w.dirty_devices.begin(), w.dirty_devices.end(), di) == w.dirty_devices.end()) {
    w.dirty_devices.push_back(di);
  }
}

void PipelineOperator::InsertSorted(KeyState& k, int32_t wi) {
  k.windows.push_back(wi);
  for (size_t i = k.windows.size() - 1; i > 0; --i) {
    const Window& a = windows_[static_cast<size_t>(k.windows[i - 1])];
    const Window& b = windows_[static_cast<size_t>(k.windows[i])];
    if (a.start <= b.start) break;
    std::swap(k.windows[i - 1], k.windows[i]);
  }
}

bool PipelineOperator::AddToTimeWindows(int32_t ki, const Reading& r, int64_t ts, int32_t di,
                                        int64_t key_wm) {
  const int64_t size = window_.size_ms, hop = window_.hop_ms, offset = window_.offset_ms;
  bool dropped = false;
  int64_t s = FloorDiv(ts - offset, hop) * hop + offset;
  for (; s > ts - size; s -= hop) {
    int64_t e = s + size;
    bool late = key_wm >= e;
    if (late && !(et_.late == LatePolicy::kUpdate && key_wm < e + et_.allowed_lateness_ms)) {
      ++counters_.late_dropped;
      dropped = true;
      continue;
    }
    // The key's windows are sorted by start: binary search (group keys
    // held back by a slow device can hold hundreds).
    const std::vector<int32_t>& list = keys_[static_cast<size_t>(ki)].windows;
    int32_t wi = -1;
    if (!list.empty() && windows_[static_cast<size_t>(list.back())].start == s) {
      wi = list.back();  // the key's newest window: most readings go there
    } else {
      auto it = std::lower_bound(list.begin(), list.end(), s, [this](int32_t w, int64_t start) {
        return windows_[static_cast<size_t>(w)].start < start;
      });
      if (it != list.end() && windows_[static_cast<size_t>(*it)].start == s) wi = *it;
    }
    if (wi < 0 && late && e <= PurgedTo(keys_[static_cast<size_t>(ki)])) {
      // Fired and purged already (allowed_lateness grew since): too late.
      ++counters_.late_dropped;
      dropped = true;
      continue;
    }
    if (wi < 0) {
      wi = AcquireWindow(ki);
      Window& w = windows_[static_cast<size_t>(wi)];
      w.start = s;
      w.end = e;
      InsertSorted(keys_[static_cast<size_t>(ki)], wi);
    }
    AddToWindow(wi, r, ts);
    if (late) {
      ++counters_.late_updates;
      MarkDirty(wi, di);
    } else {
      LowerDeadline(keys_[static_cast<size_t>(ki)], e);
    }
  }
  return dropped;
}

void PipelineOperator::MergeSession(int32_t dst, int32_t src) {
  // Copy what is needed from src first: Window references stay valid here
  // (no acquisition), but keep the two clearly apart.
  Window& d = windows_[static_cast<size_t>(dst)];
  Window& s = windows_[static_cast<size_t>(src)];
  d.count += s.count;
  d.start = std::min(d.start, s.start);
  d.end = std::max(d.end, s.end);
  for (size_t i = 0; i < aggs_.size(); ++i) {
    AggMerge(aggs_[i], s.aggs[i], &d.aggs[i]);
    if (d.aggs[i].sketch >= 0 && s.aggs[i].sketch >= 0) {
      sketches_[static_cast<size_t>(d.aggs[i].sketch)].Merge(
          sketches_[static_cast<size_t>(s.aggs[i].sketch)]);
    }
  }
  if (s.dirty) {
    if (!d.dirty) {
      d.dirty = true;
      d.dirty_since = s.dirty_since;
    } else {
      d.dirty_since = std::min(d.dirty_since, s.dirty_since);
    }
    for (int32_t di : s.dirty_devices) {
      if (std::find(d.dirty_devices.begin(), d.dirty_devices.end(), di) == d.dirty_devices.end()) {
        d.dirty_devices.push_back(di);
      }
    }
    if (!d.in_dirty_list) {
      d.in_dirty_list = true;
      dirty_.push_back(dst);
    }
  }
  for (const auto& r : s.retractions) d.retractions.push_back(r);
  if (s.rev >= 0) d.retractions.emplace_back(s.id_start, s.rev + 1);
  ReleaseWindow(src);
}

bool PipelineOperator::AddToSessions(int32_t ki, const Reading& r, int64_t ts, int32_t di,
                                     int64_t key_wm) {
  const int64_t gap = window_.gap_ms, max_dur = window_.max_duration_ms;
  KeyState* k = &keys_[static_cast<size_t>(ki)];
  matches_.clear();
  int64_t nf = ts, nl = ts;
  for (int32_t wi : k->windows) {
    const Window& w = windows_[static_cast<size_t>(wi)];
    if (w.start - gap < ts && ts < w.end + gap) {
      matches_.push_back(wi);
      nf = std::min(nf, w.start);
      nl = std::max(nl, w.end);
    }
  }
  if (!matches_.empty() && max_dur > 0 && nl - nf >= max_dur) {
    // Joining all would span too long: only the latest-starting one, if it fits.
    int32_t latest = matches_[0];
    for (int32_t wi : matches_) {
      if (windows_[static_cast<size_t>(wi)].start > windows_[static_cast<size_t>(latest)].start) {
        latest = wi;
      }
    }
    const Window& l = windows_[static_cast<size_t>(latest)];
    matches_.clear();
    if (std::max(ts, l.end) - std::min(ts, l.start) < max_dur) matches_.push_back(latest);
  }

  if (matches_.empty()) {
    bool late = key_wm >= ts + gap;
    // ts <= purged_to: it would have joined a session that fired and was
    // purged (allowed_lateness grew since): too late, as for time windows.
    if (late && (et_.late != LatePolicy::kUpdate || key_wm >= ts + gap + et_.allowed_lateness_ms ||
                 ts <= PurgedTo(*k))) {
      ++counters_.late_dropped;
      return true;
    }
    int32_t wi = AcquireWindow(ki);
    k = &keys_[static_cast<size_t>(ki)];
    Window& w = windows_[static_cast<size_t>(wi)];
    w.start = w.end = ts;
    InsertSorted(*k, wi);
    AddToWindow(wi, r, ts);
    if (late) {
      ++counters_.late_updates;
      MarkDirty(wi, di);
    } else {
      LowerDeadline(*k, ts + gap);
    }
    return false;
  }

  bool late = false;
  int32_t target = matches_[0];
  for (int32_t wi : matches_) {
    const Window& w = windows_[static_cast<size_t>(wi)];
    if (w.rev < 0) continue;
    late = true;
    const Window& t = windows_[static_cast<size_t>(target)];
    if (t.rev < 0 || w.emit_seq < t.emit_seq) target = wi;
  }
  if (late && et_.late != LatePolicy::kUpdate) {
    ++counters_.late_dropped;
    return true;
  }
  for (int32_t wi : matches_) {
    if (wi != target) MergeSession(target, wi);
  }
  if (matches_.size() > 1) {
    size_t kept = 0;
    for (int32_t wi : k->windows) {
      if (wi == target || std::find(matches_.begin(), matches_.end(), wi) == matches_.end()) {
        k->windows[kept++] = wi;
      }
    }
    k->windows.resize(kept);
  }
  Window& w = windows_[static_cast<size_t>(target)];
  w.start = std::min(w.start, ts);
  w.end = std::max(w.end, ts);
  AddToWindow(target, r, ts);
  // Keep the key's sessions ordered by start.
  std::sort(k->windows.begin(), k->windows.end(), [this](int32_t a, int32_t b) {
    return windows_[static_cast<size_t>(a)].start < windows_[static_cast<size_t>(b)].start;
  });
  if (late) {
    ++counters_.late_updates;
    MarkDirty(target, di);
  } else if (!w.dirty) {
    LowerDeadline(*k, FireTime(w));
  }
  return false;
}

// ------------------------------------------------------------------ spill

void PipelineOperator::LruLink(int32_t ki) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  if (k.linked) {
    // Recency matters only to choose what to spill; without spilling the
    // list just counts keys in memory, so a linked key stays where it is.
    if (lru_head_ == ki || !spill_ || max_keys_ <= 0) return;
    LruUnlink(ki);
  }
  k.linked = true;
  k.lru_prev = -1;
  k.lru_next = lru_head_;
  if (lru_head_ >= 0) keys_[static_cast<size_t>(lru_head_)].lru_prev = ki;
  lru_head_ = ki;
  if (lru_tail_ < 0) lru_tail_ = ki;
  ++lru_size_;
}

void PipelineOperator::LruUnlink(int32_t ki) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  if (!k.linked) return;
  if (k.lru_prev >= 0) {
    keys_[static_cast<size_t>(k.lru_prev)].lru_next = k.lru_next;
  } else {
    lru_head_ = k.lru_next;
  }
  if (k.lru_next >= 0) {
    keys_[static_cast<size_t>(k.lru_next)].lru_prev = k.lru_prev;
  } else {
    lru_tail_ = k.lru_prev;
  }
  k.linked = false;
  k.lru_prev = k.lru_next = -1;
  --lru_size_;
}

void PipelineOperator::EnsureLoaded(int32_t ki) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  if (!k.spilled) return;
  k.spilled = false;
  --counters_.spilled_keys;
  spill_blob_.clear();
  if (spill_->Get(storage_id_, k.id_part, &spill_blob_)) {
    // A blob this engine wrote; a failing one leaves the key empty.
    (void)DecodeKeyState(spill_blob_, /*from_spill=*/true);
    spill_->Erase(storage_id_, k.id_part);
  }
  if (!keys_[static_cast<size_t>(ki)].windows.empty()) LruLink(ki);
}

void PipelineOperator::Evict(int32_t ki) {
  KeyState& k = keys_[static_cast<size_t>(ki)];
  RecomputeDeadline(k);  // exact, so the key is read back only when something is due
  spill_blob_.clear();
  EncodeKeyState(ki, &spill_blob_);
  spill_->Put(storage_id_, k.id_part, spill_blob_);
  for (int32_t wi : k.windows) ReleaseWindow(wi);
  k.windows.clear();
  k.spilled = true;
  LruUnlink(ki);
  ++counters_.spilled_keys;
}

void PipelineOperator::EvictOverflow() {
  if (!spill_ || max_keys_ <= 0) return;
  int64_t attempts = lru_size_;
  while (lru_size_ > max_keys_ && attempts-- > 0) {
    int32_t ki = lru_tail_;
    bool dirty = false;
    for (int32_t wi : keys_[static_cast<size_t>(ki)].windows) {
      dirty |= windows_[static_cast<size_t>(wi)].dirty;
    }
    if (dirty) {
      LruLink(ki);  // pending revisions stay in memory; try the next one
      continue;
    }
    Evict(ki);
  }
}

// ------------------------------------------------------------------ drain

void PipelineOperator::Drain(EngineOutput* out) {
  BeginStep(now_, /*advance=*/false);
  for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) EnsureLoaded(ki);
  for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) {
    KeyState& k = keys_[static_cast<size_t>(ki)];
    for (int32_t wi : k.windows) {
      Window& w = windows_[static_cast<size_t>(wi)];
      if (w.rev >= 0 && !w.dirty) continue;
      w.rev += 1;
      w.dirty = false;
      w.dirty_devices.clear();
      emissions_.push_back({w.end, w.start, ki, wi, w.rev});
    }
  }
  EmitSorted(out);
  for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) {
    KeyState& k = keys_[static_cast<size_t>(ki)];
    if (!k.windows.empty()) k.changed = true;
    for (int32_t wi : k.windows) ReleaseWindow(wi);
    k.windows.clear();
    k.next_deadline = kPosInf;
    LruUnlink(ki);
  }
  counters_.keys = 0;
  dirty_.clear();
  min_key_deadline_ = kPosInf;
  counters_.open_windows = 0;
}

// ------------------------------------------------------------ checkpoints

void PipelineOperator::EncodeDevice(int32_t di, std::string* blob) const {
  const DeviceState& d = devices_[static_cast<size_t>(di)];
  StateEncoder enc(blob);
  enc.U8(kBlobVersion);
  enc.I64(d.max_ts);
  enc.I64(d.dwm);
  enc.I64(EffectiveWm(d));
  enc.I64(d.lag);
  enc.U8(d.has_lag);
  enc.I64(d.last_arrival);
  enc.U8(d.online);
  enc.U8(d.seen);
  enc.U8(d.has_offset);
  enc.I64(d.clock_offset);
  enc.I64(d.purge_floor);
}

Status PipelineOperator::DecodeDevice(std::string_view id, std::string_view blob) {
  int32_t di = FindOrAddDevice(id);
  DeviceState& d = devices_[static_cast<size_t>(di)];
  StateDecoder dec(blob);
  uint8_t version = dec.U8();
  if (version != kBlobVersion && version != kBlobVersionNoMarks) {
    return DataLoss("device state: unknown version");
  }
  d.max_ts = dec.I64();
  d.dwm = dec.I64();
  d.wm = dec.I64();
  d.lag = dec.I64();
  d.has_lag = dec.U8();
  d.last_arrival = dec.I64();
  d.online = dec.U8();
  d.seen = dec.U8();
  d.has_offset = dec.U8();
  d.clock_offset = dec.I64();
  if (version == kBlobVersion) d.purge_floor = dec.I64();
  if (!dec.ok() || !dec.done()) return DataLoss("device state: truncated blob");
  return Status::Ok();
}

void PipelineOperator::EncodeKeyState(int32_t ki, std::string* blob) const {
  const KeyState& k = keys_[static_cast<size_t>(ki)];
  StateEncoder enc(blob);
  enc.U8(kBlobVersion);
  enc.I64(static_cast<int64_t>(k.values.size()));
  for (const std::string& v : k.values) enc.Str(v);
  enc.Str(k.device >= 0 ? std::string_view(device_index_.name(k.device)) : std::string_view());
  enc.I64(k.purged_to);
  enc.I64(static_cast<int64_t>(k.windows.size()));
  for (int32_t wi : k.windows) {
    const Window& w = windows_[static_cast<size_t>(wi)];
    enc.I64(w.start);
    enc.I64(w.end);
    enc.I64(w.count);
    enc.I64(w.rev);
    enc.I64(w.id_start);
    enc.U64(w.emit_seq);
    enc.U8(w.dirty);
    enc.I64(w.dirty_since);
    enc.I64(static_cast<int64_t>(w.dirty_devices.size()));
    for (int32_t di : w.dirty_devices) enc.Str(device_index_.name(di));
    enc.I64(static_cast<int64_t>(w.retractions.size()));
    for (const auto& [id_start, rev] : w.retractions) {
      enc.I64(id_start);
      enc.I64(rev);
    }
    for (size_t i = 0; i < aggs_.size(); ++i) {
      AggEncode(w.aggs[i], &enc);
      if (w.aggs[i].sketch >= 0) sketches_[static_cast<size_t>(w.aggs[i].sketch)].Encode(&enc);
    }
  }
}

Status PipelineOperator::DecodeKeyState(std::string_view blob, bool from_spill) {
  StateDecoder dec(blob);
  uint8_t version = dec.U8();
  if (version != kBlobVersion && version != kBlobVersionNoMarks) {
    return DataLoss("key state: unknown version");
  }
  int64_t nvalues = dec.Count(1024);
  if (!dec.ok() || nvalues != static_cast<int64_t>(key_parts_.size())) {
    return DataLoss("key state: key does not match the pipeline");
  }
  key_buf_.clear();
  for (int64_t i = 0; i < nvalues; ++i) {
    std::string_view v = dec.Str();
    uint32_t n = static_cast<uint32_t>(v.size());
    char len[4] = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 24)};
    key_buf_.append(len, 4);
    key_buf_.append(v.data(), v.size());
  }
  std::string_view device = dec.Str();
  int64_t purged_to = version == kBlobVersion ? dec.I64() : kNegInf;
  if (!dec.ok()) return DataLoss("key state: truncated blob");
  int32_t di = key_has_device_ ? FindOrAddDevice(device) : -1;
  std::string enc_key = key_buf_;
  int32_t ki = FindOrAddKey(enc_key, di);
  if (!from_spill) keys_[static_cast<size_t>(ki)].persisted = true;
  int64_t& mark = keys_[static_cast<size_t>(ki)].purged_to;
  mark = std::max(mark, purged_to);
  int64_t nwin = dec.Count(1 << 20);
  for (int64_t j = 0; j < nwin && dec.ok(); ++j) {
    int32_t wi = AcquireWindow(ki);
    Window& w = windows_[static_cast<size_t>(wi)];
    w.start = dec.I64();
    w.end = dec.I64();
    w.count = dec.I64();
    w.rev = dec.I64();
    w.id_start = dec.I64();
    w.emit_seq = dec.U64();
    w.dirty = dec.U8();
    w.dirty_since = dec.I64();
    int64_t ndev = dec.Count(1 << 20);
    for (int64_t i = 0; i < ndev && dec.ok(); ++i) {
      std::string_view name = dec.Str();
      int32_t ddi = FindOrAddDevice(name);
      windows_[static_cast<size_t>(wi)].dirty_devices.push_back(ddi);
    }
    Window& w2 = windows_[static_cast<size_t>(wi)];
    int64_t nret = dec.Count(1 << 20);
    for (int64_t i = 0; i < nret && dec.ok(); ++i) {
      int64_t id_start = dec.I64();
      int64_t rev = dec.I64();
      w2.retractions.emplace_back(id_start, rev);
    }
    for (size_t i = 0; i < aggs_.size(); ++i) {
      int32_t sketch = w2.aggs[i].sketch;
      AggDecode(&dec, &w2.aggs[i]);
      w2.aggs[i].sketch = sketch;
      if (sketch >= 0 && !sketches_[static_cast<size_t>(sketch)].Decode(&dec)) break;
    }
    if (w2.dirty) {
      w2.in_dirty_list = true;
      dirty_.push_back(wi);
    }
    InsertSorted(keys_[static_cast<size_t>(ki)], wi);
  }
  if (!dec.ok() || !dec.done()) return DataLoss("key state: truncated blob");
  return Status::Ok();
}

Status PipelineOperator::DecodePipeline(std::string_view blob) {
  StateDecoder dec(blob);
  uint8_t version = dec.U8();
  if (version != kBlobVersion && version != kBlobVersionNoMarks) {
    return DataLoss("pipeline state: unknown version");
  }
  restored_without_marks_ = version == kBlobVersionNoMarks;
  now_ = dec.I64();
  wm_p_ = dec.I64();
  arrival_seq_ = dec.U64();
  emit_seq_ = dec.U64();
  counters_.readings = dec.I64();
  counters_.filtered = dec.I64();
  counters_.late_dropped = dec.I64();
  counters_.late_updates = dec.I64();
  counters_.results = dec.I64();
  counters_.retractions = dec.I64();
  if (version == kBlobVersion) purge_floor_ = dec.I64();
  if (!dec.ok() || !dec.done()) return DataLoss("pipeline state: truncated blob");
  return Status::Ok();
}

void PipelineOperator::CollectChanges(StateWriter* writer) {
  std::string blob;
  {
    // Written every time: small, and it carries the arrival and emission
    // counters that almost every step moves.
    StateEncoder enc(&blob);
    enc.U8(kBlobVersion);
    enc.I64(now_);
    enc.I64(wm_p_);
    enc.U64(arrival_seq_);
    enc.U64(emit_seq_);
    enc.I64(counters_.readings);
    enc.I64(counters_.filtered);
    enc.I64(counters_.late_dropped);
    enc.I64(counters_.late_updates);
    enc.I64(counters_.results);
    enc.I64(counters_.retractions);
    enc.I64(purge_floor_);
    writer->Put(storage_id_, 'p', "", blob);
  }
  for (int32_t di = 0; di < static_cast<int32_t>(devices_.size()); ++di) {
    DeviceState& d = devices_[static_cast<size_t>(di)];
    if (!d.changed) continue;
    blob.clear();
    EncodeDevice(di, &blob);
    writer->Put(storage_id_, 'd', device_index_.name(di), blob);
    d.changed = false;
  }
  for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) {
    KeyState& k = keys_[static_cast<size_t>(ki)];
    if (!k.changed) continue;
    k.changed = false;
    if (k.spilled) {
      // Its current state is the spill row: copy it into the checkpoint.
      blob.clear();
      if (spill_->Get(storage_id_, k.id_part, &blob)) {
        writer->Put(storage_id_, 'k', k.id_part, blob);
        k.persisted = true;
      }
      continue;
    }
    if (k.windows.empty() && k.purged_to == kNegInf) {
      // Nothing left worth restoring. (A key whose windows were purged keeps
      // its row for the mark.)
      if (k.persisted) writer->Erase(storage_id_, 'k', k.id_part);
      k.persisted = false;
      continue;
    }
    blob.clear();
    EncodeKeyState(ki, &blob);
    writer->Put(storage_id_, 'k', k.id_part, blob);
    k.persisted = true;
  }
}

Status PipelineOperator::Restore(StateReader* reader) {
  Status st = reader->ForEach(
      storage_id_, [this](char kind, std::string_view id, std::string_view blob) -> Status {
        switch (kind) {
          case 'p':
            return DecodePipeline(blob);
          case 'd':
            return DecodeDevice(id, blob);
          case 'k':
            return DecodeKeyState(blob, /*from_spill=*/false);
          default:
            return DataLoss("unknown state row kind");
        }
      });
  if (!st.ok()) return st;
  RebuildAfterRestore();
  if (restored_without_marks_) LegacyPurgeFloors();
  return Status::Ok();
}

// A checkpoint written before purge marks were kept: which windows were
// purged is unknown, and keys whose windows were all purged have no row at
// all. Assume every window that could have been: one is purged once the key
// watermark reaches its end (sessions: last + gap) plus allowed_lateness, and
// the watermarks restored here are at least those of every earlier purge.
// So every key of a device gets the floor wm_d - lateness (group keys:
// wm_p - lateness), stored with the device (pipeline) so it also covers keys
// not seen yet, and written at the next checkpoint. Under the config it was
// written with this changes no result: those readings were beyond
// allowed_lateness already.
void PipelineOperator::LegacyPurgeFloors() {
  restored_without_marks_ = false;
  const int64_t reach = et_.allowed_lateness_ms + (is_session() ? window_.gap_ms : 0);
  auto floor_of = [reach](int64_t wm) { return wm <= kNegInf ? kNegInf : wm - reach; };
  purge_floor_ = std::max(purge_floor_, floor_of(wm_p_));
  for (DeviceState& d : devices_) {
    int64_t f = floor_of(d.wm);
    if (f > d.purge_floor) {
      d.purge_floor = f;
      d.changed = true;
    }
  }
}

void PipelineOperator::RebuildAfterRestore() {
  min_key_deadline_ = kPosInf;
  for (int32_t ki = 0; ki < static_cast<int32_t>(keys_.size()); ++ki) {
    KeyState& k = keys_[static_cast<size_t>(ki)];
    if (!k.windows.empty()) LruLink(ki);
    RecomputeDeadline(k);
    min_key_deadline_ = std::min(min_key_deadline_, k.next_deadline);
    k.changed = false;
  }
  // Idle devices are found again at the next time advance: rebuild the
  // arrival queues in arrival order.
  std::vector<int32_t> order;
  for (int32_t di = 0; di < static_cast<int32_t>(devices_.size()); ++di) {
    DeviceState& d = devices_[static_cast<size_t>(di)];
    d.changed = false;
    d.idle = d.ramping = false;
    d.queue = -1;
    d.q_prev = d.q_next = -1;
    eligible_wm_.Set(di, d.seen && d.online ? d.wm : kPosInf);
    ramp_neg_cost_.Set(di, kPosInf);
    if (d.has_lag) order.push_back(di);
  }
  std::stable_sort(order.begin(), order.end(), [this](int32_t a, int32_t b) {
    return devices_[static_cast<size_t>(a)].last_arrival <
           devices_[static_cast<size_t>(b)].last_arrival;
  });
  queues_[0] = queues_[1] = Queue{};
  for (int32_t di : order) QueuePush(di);
  wakes_.clear();
  RecomputePipelineWatermark();
  EvictOverflow();
  counters_.keys = lru_size_;
  counters_.open_windows = static_cast<int64_t>(windows_.size() - free_windows_.size());
}

// ----------------------------------------------------------------- engine

class EngineImpl : public Engine {
 public:
  EngineImpl(std::unique_ptr<NameIndex> names,
             std::vector<std::unique_ptr<PipelineOperator>> pipelines)
      : names_(std::move(names)), pipelines_(std::move(pipelines)) {}

  bool AdvanceTo(int64_t now_ms, EngineOutput* out) override {
    bool changed = false;
    for (auto& p : pipelines_) changed |= p->Advance(now_ms, out);
    return changed;
  }
  void OnStatus(std::string_view device, bool online, int64_t now_ms, EngineOutput* out) override {
    int32_t handle = names_->FindOrInsert(device);
    for (auto& p : pipelines_) p->OnStatus(handle, online, now_ms, out);
  }
  void OnReading(const Reading& reading, int64_t now_ms, EngineOutput* out) override {
    // The device is hashed once here, not once per pipeline.
    int32_t handle = names_->FindOrInsert(reading.device);
    for (auto& p : pipelines_) p->OnReading(reading, handle, now_ms, out);
  }
  void Drain(EngineOutput* out) override {
    for (auto& p : pipelines_) p->Drain(out);
  }
  void CollectChanges(StateWriter* writer) override {
    for (auto& p : pipelines_) p->CollectChanges(writer);
  }
  Status Restore(StateReader* reader) override {
    for (auto& p : pipelines_) RETURN_IF_ERROR(p->Restore(reader));
    return Status::Ok();
  }
  void SetSpillStore(SpillStore* store) override {
    for (auto& p : pipelines_) p->set_spill(store);
  }
  const PipelineCounters& counters(int pipeline_index) const override {
    return pipelines_[static_cast<size_t>(pipeline_index)]->counters();
  }

 private:
  std::unique_ptr<NameIndex> names_;  // device names, shared by the pipelines
  std::vector<std::unique_ptr<PipelineOperator>> pipelines_;
};

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Create(const Config& config,
                                               const std::vector<int64_t>& generations) {
  return CreateEngine(config, generations, /*exhaustive=*/false);
}

Result<std::unique_ptr<Engine>> CreateEngine(const Config& config,
                                             const std::vector<int64_t>& generations,
                                             bool exhaustive) {
  if (!generations.empty() && generations.size() != config.pipelines.size()) {
    return InvalidArgument("one generation per pipeline expected");
  }
  if (config.source.fields.size() > static_cast<size_t>(kMaxFields) ||
      config.attributes.size() > static_cast<size_t>(kMaxAttributes)) {
    return InvalidArgument("too many fields or attributes for a Reading");
  }
  auto names = std::make_unique<NameIndex>();
  std::vector<std::unique_ptr<PipelineOperator>> ops;
  for (size_t i = 0; i < config.pipelines.size(); ++i) {
    const PipelineConfig& p = config.pipelines[i];
    const WindowConfig& w = p.window;
    if (w.type == WindowType::kSession) {
      if (w.gap_ms <= 0) return InvalidArgument("pipeline " + p.name + ": session gap must be > 0");
    } else {
      int64_t hop = w.type == WindowType::kTumbling ? w.size_ms : w.hop_ms;
      if (w.size_ms <= 0 || hop <= 0 || w.size_ms % hop != 0) {
        return InvalidArgument("pipeline " + p.name +
                               ": window size must be a positive multiple of hop");
      }
    }
    for (const AggregateConfig& a : p.aggregates) {
      bool star = a.kind == AggregateKind::kCount && a.field == "*";
      if (!star && config.FieldIndex(a.field) < 0) {
        return InvalidArgument("pipeline " + p.name + ": aggregate " + a.name +
                               " names unknown field " + a.field);
      }
    }
    int64_t g = generations.empty() ? 0 : generations[i];
    ops.push_back(std::make_unique<PipelineOperator>(config, static_cast<int>(i), g, names.get()));
    ops.back()->set_exhaustive(exhaustive);
  }
  return std::unique_ptr<Engine>(std::make_unique<EngineImpl>(std::move(names), std::move(ops)));
}

}  // namespace weir
