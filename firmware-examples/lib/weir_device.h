// weir_device: what a field device needs to publish readings weir ingests
// (DESIGN 4, 6.1): a monotonic seq, sent_at, a fixed ring buffer that keeps
// readings while the broker is away (dropping the oldest when full), and
// JSON and FlatBuffers encoders writing into caller-provided memory.
//
// Portable C++11 without exceptions or RTTI, for an ESP32 as for Linux. No
// heap after init: every buffer is a member sized at compile time, so a
// device can run for years without fragmentation.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifndef WEIR_FW_MAX_FIELDS
#define WEIR_FW_MAX_FIELDS 8
#endif
#ifndef WEIR_FW_MAX_BATCH
#define WEIR_FW_MAX_BATCH 16
#endif

namespace weir_fw {

constexpr size_t kMaxFields = WEIR_FW_MAX_FIELDS;
constexpr size_t kMaxBatch = WEIR_FW_MAX_BATCH;

struct Reading {
  int64_t ts = 0;   // device clock, ms since the epoch
  int64_t seq = 0;  // from 1, never repeats while the device runs
  double values[kMaxFields] = {};
};

// A fixed-capacity FIFO; pushing onto a full ring overwrites the oldest.
template <typename T, size_t N>
class Ring {
 public:
  // Returns false when the oldest element was overwritten to make room.
  bool Push(const T& v) {
    bool kept = size_ < N;
    items_[(head_ + size_) % N] = v;
    if (kept) {
      ++size_;
    } else {
      head_ = (head_ + 1) % N;
    }
    return kept;
  }
  const T& At(size_t i) const { return items_[(head_ + i) % N]; }  // 0 = oldest
  void PopFront(size_t n) {
    if (n > size_) n = size_;
    head_ = (head_ + n) % N;
    size_ -= n;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  static constexpr size_t capacity() { return N; }

 private:
  T items_[N];
  size_t head_ = 0;
  size_t size_ = 0;
};

// What a device reports: its id and field names (the payload keys, equal to
// weir's source.fields paths, or FlatBuffers channel names).
struct Schema {
  const char* device;
  const char* const* fields;
  size_t field_count;  // at most kMaxFields
  int decimals;        // JSON values are printed with this many decimals
};

// {"ts":..,"seq":..,"sent_at":..,"<field>":..} for one reading, an array of
// such objects for several. Returns the length written (a terminating NUL
// follows), or 0 when `cap` is too small; nothing is allocated.
size_t EncodeJson(const Schema& schema, const Reading* readings, size_t count, int64_t sent_at,
                  char* out, size_t cap);

// A weir.fb.Batch (schemas/reading.fbs, identifier "WEIR"): one sample per
// field and reading, the samples of a reading sharing its seq. `arena` is
// the builder's memory; the finished buffer lies inside it. Returns the
// buffer (and its size in *size), or nullptr when the arena is too small.
const uint8_t* EncodeFlatBuffers(const Schema& schema, const Reading* readings, size_t count,
                                 int64_t sent_at, uint8_t* arena, size_t arena_size, size_t* size);

// The bytes EncodeFlatBuffers needs at most for `count` readings.
size_t FlatBuffersArenaSize(const Schema& schema, size_t count);

enum class Format { kJson, kFlatBuffers };

// A device's outgoing readings: Record() stamps each with the next seq and
// keeps it until Flush() has handed it to a publish function that
// succeeded (for MQTT QoS 1: the PUBACK came). While the broker is away the
// ring fills, then drops the oldest, counting them.
template <size_t kCapacity, size_t kPayloadBytes = 2048>
class Device {
 public:
  Device(const Schema& schema, Format format, size_t batch)
      : schema_(schema),
        format_(format),
        batch_(batch < 1           ? 1
               : batch > kMaxBatch ? kMaxBatch
                                   : batch) {}

  // Stamps and buffers a reading; returns its seq.
  int64_t Record(int64_t ts, const double* values) {
    Reading r;
    r.ts = ts;
    r.seq = next_seq_++;
    for (size_t i = 0; i < schema_.field_count && i < kMaxFields; ++i) r.values[i] = values[i];
    if (!ring_.Push(r)) ++dropped_;
    return r.seq;
  }

  // Publishes buffered readings, oldest first, `batch` per message, while
  // `publish(const uint8_t* payload, size_t size)` returns true. Returns the
  // number of readings sent. `now_ms` is the device clock (sent_at).
  template <typename Publish>
  size_t Flush(int64_t now_ms, Publish&& publish) {
    size_t sent = 0;
    while (!ring_.empty()) {
      size_t n = ring_.size() < batch_ ? ring_.size() : batch_;
      for (size_t i = 0; i < n; ++i) scratch_[i] = ring_.At(i);
      const uint8_t* payload = nullptr;
      size_t size = 0;
      if (format_ == Format::kJson) {
        size = EncodeJson(schema_, scratch_, n, now_ms, reinterpret_cast<char*>(payload_),
                          sizeof(payload_));
        payload = payload_;
      } else {
        payload =
            EncodeFlatBuffers(schema_, scratch_, n, now_ms, payload_, sizeof(payload_), &size);
      }
      if (payload == nullptr || size == 0) {
        // Cannot ever fit: drop it rather than block the queue forever.
        ring_.PopFront(n);
        dropped_ += n;
        continue;
      }
      if (!publish(payload, size)) break;
      ring_.PopFront(n);
      sent += n;
    }
    return sent;
  }

  size_t buffered() const { return ring_.size(); }
  uint64_t dropped() const { return dropped_; }
  int64_t next_seq() const { return next_seq_; }

 private:
  Schema schema_;
  Format format_;
  size_t batch_;
  Ring<Reading, kCapacity> ring_;
  Reading scratch_[kMaxBatch];
  alignas(8) uint8_t payload_[kPayloadBytes];
  int64_t next_seq_ = 1;
  uint64_t dropped_ = 0;
};

}  // namespace weir_fw
