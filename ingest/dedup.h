// Dedup by per-device sequence number (DESIGN 6.1).
//
// Each device keeps H, the highest seq accepted, and a 1024-bit bitmap of
// H-1024 ... H-1. A seq equal to H or marked in the bitmap is a duplicate. A
// seq below H-1024 is too old to check: it is accepted, not marked, and
// counted, so a backlog replayed behind live data is never lost.
//
// The device table is bounded by max_devices; it also gives every device a
// dense index. State per device serialises to a fixed-size blob for
// checkpoints.
//
// REQUIRES: external synchronization.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/name_index.h"
#include "core/status.h"

namespace weir {

enum class DedupVerdict {
  kAccepted,           // new seq (or no seq): marked
  kAcceptedUnchecked,  // seq < H-1024: accepted without a check, not marked
  kDuplicate,          // seq == H or already marked: drop
  kTooManyDevices,     // a new device while max_devices are known: drop
};

// One device's window of seen sequence numbers.
class SeqWindow {
 public:
  static constexpr int kBits = 1024;
  static constexpr size_t kBlobBytes = 1 + 8 + kBits / 8;

  DedupVerdict Check(int64_t seq);

  bool has_high() const { return has_high_; }
  int64_t high() const { return high_; }

  // Fixed-size little-endian blob: version byte, H, bitmap (bit i = seq H-1-i).
  void AppendBlob(std::string* out) const;
  // Restores from AppendBlob's output; an empty blob means "no seq seen".
  Status FromBlob(std::string_view blob);

 private:
  bool Marked(uint64_t i) const { return (bits_[i / 64] >> (i % 64)) & 1u; }
  void Mark(uint64_t i) { bits_[i / 64] |= uint64_t{1} << (i % 64); }
  void ShiftBy(uint64_t n);  // the window moves up by n seqs

  bool has_high_ = false;
  int64_t high_ = 0;
  std::array<uint64_t, kBits / 64> bits_{};
};

class Dedup {
 public:
  explicit Dedup(int64_t max_devices);

  // Looks up (or registers) the device and checks seq when has_seq. A
  // reading without seq is accepted (nothing to dedup by) but still
  // registers its device. Does not allocate for a known device.
  DedupVerdict Check(std::string_view device, bool has_seq, int64_t seq);

  // Registers a device (for status messages); false when the table is full.
  bool Touch(std::string_view device);

  size_t device_count() const { return slot_.size(); }

  // Checkpoint support: calls fn(device, blob) for each device whose window
  // changed since the last call, then clears the marks.
  template <typename Fn>
  void CollectChanges(Fn&& fn) {
    std::string blob;
    for (int index : changed_) {
      blob.clear();
      windows_[static_cast<size_t>(slot_[static_cast<size_t>(index)])].AppendBlob(&blob);
      fn(std::string_view(index_.name(index)), std::string_view(blob));
      changed_flag_[index] = false;
    }
    changed_.clear();
  }
  // Restores one device from a blob written by CollectChanges.
  Status Restore(std::string_view device, std::string_view blob);

 private:
  int Find(std::string_view device);  // -1 when unknown
  int Register(std::string_view device);  // -1 when full
  void MarkChanged(int index);
  SeqWindow& WindowOf(int index);  // allocates the device's window on first use

  int64_t max_devices_;
  NameIndex index_;  // device name -> device index
  // A device's seq window (137 bytes) exists only once it sent a seq: most
  // fleets without `seq` would otherwise pay it for every device (memory
  // budget, issue 9). slot_[device] indexes windows_, -1 when none.
  std::vector<int32_t> slot_;
  std::vector<SeqWindow> windows_;
  std::vector<bool> changed_flag_;
  std::vector<int> changed_;
};

}  // namespace weir
