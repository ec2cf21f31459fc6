#include "ingest/dedup.h"

namespace weir {
namespace {

constexpr uint8_t kBlobVersion = 1;

void PutU64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

}  // namespace

void SeqWindow::ShiftBy(uint64_t n) {
  if (n >= static_cast<uint64_t>(kBits)) {
    bits_.fill(0);
    return;
  }
  // Bit i (seq H-1-i) moves to bit i+n.
  const int words = static_cast<int>(bits_.size());
  const int word_shift = static_cast<int>(n / 64);
  const int bit_shift = static_cast<int>(n % 64);
  for (int w = words - 1; w >= 0; --w) {
    uint64_t v = 0;
    int src = w - word_shift;
    if (src >= 0) {
      v = bits_[src] << bit_shift;
      if (bit_shift != 0 && src - 1 >= 0) v |= bits_[src - 1] >> (64 - bit_shift);
    }
    bits_[w] = v;
  }
}

DedupVerdict SeqWindow::Check(int64_t seq) {
  if (!has_high_) {
    has_high_ = true;
    high_ = seq;
    return DedupVerdict::kAccepted;
  }
  if (seq == high_) return DedupVerdict::kDuplicate;
  // Unsigned differences: no overflow at the ends of the int64 range.
  if (seq > high_) {
    uint64_t up = static_cast<uint64_t>(seq) - static_cast<uint64_t>(high_);
    ShiftBy(up);
    // The old H is now H'-up, at bit up-1.
    if (up - 1 < static_cast<uint64_t>(kBits)) Mark(up - 1);
    high_ = seq;
    return DedupVerdict::kAccepted;
  }
  uint64_t below = static_cast<uint64_t>(high_) - static_cast<uint64_t>(seq);  // >= 1
  if (below > static_cast<uint64_t>(kBits)) return DedupVerdict::kAcceptedUnchecked;
  uint64_t bit = below - 1;
  if (Marked(bit)) return DedupVerdict::kDuplicate;
  Mark(bit);
  return DedupVerdict::kAccepted;
}

void SeqWindow::AppendBlob(std::string* out) const {
  if (!has_high_) return;
  out->push_back(static_cast<char>(kBlobVersion));
  PutU64(static_cast<uint64_t>(high_), out);
  for (uint64_t w : bits_) PutU64(w, out);
}

Status SeqWindow::FromBlob(std::string_view blob) {
  if (blob.empty()) {
    *this = SeqWindow();
    return Status::Ok();
  }
  if (blob.size() != kBlobBytes || static_cast<uint8_t>(blob[0]) != kBlobVersion) {
    return DataLoss("dedup state blob has an unknown format");
  }
  has_high_ = true;
  high_ = static_cast<int64_t>(GetU64(blob.data() + 1));
  for (size_t w = 0; w < bits_.size(); ++w) bits_[w] = GetU64(blob.data() + 9 + 8 * w);
  return Status::Ok();
}

Dedup::Dedup(int64_t max_devices) : max_devices_(max_devices) {}

int Dedup::Find(std::string_view device) { return index_.Find(device); }

int Dedup::Register(std::string_view device) {
  int index = Find(device);
  if (index >= 0) return index;
  if (static_cast<int64_t>(slot_.size()) >= max_devices_) return -1;
  index = index_.Insert(device);
  slot_.push_back(-1);
  changed_flag_.push_back(false);
  return index;
}

SeqWindow& Dedup::WindowOf(int index) {
  int32_t& slot = slot_[static_cast<size_t>(index)];
  if (slot < 0) {
    slot = static_cast<int32_t>(windows_.size());
    windows_.emplace_back();
  }
  return windows_[static_cast<size_t>(slot)];
}

void Dedup::MarkChanged(int index) {
  if (!changed_flag_[index]) {
    changed_flag_[index] = true;
    changed_.push_back(index);
  }
}

DedupVerdict Dedup::Check(std::string_view device, bool has_seq, int64_t seq) {
  int index = Register(device);
  if (index < 0) return DedupVerdict::kTooManyDevices;
  if (!has_seq) return DedupVerdict::kAccepted;
  DedupVerdict v = WindowOf(index).Check(seq);
  if (v == DedupVerdict::kAccepted) MarkChanged(index);
  return v;
}

bool Dedup::Touch(std::string_view device) { return Register(device) >= 0; }

Status Dedup::Restore(std::string_view device, std::string_view blob) {
  int index = Register(device);
  if (index < 0) {
    return ResourceExhausted("dedup state holds more devices than source.max_devices");
  }
  if (blob.empty() && slot_[static_cast<size_t>(index)] < 0) return Status::Ok();
  return WindowOf(index).FromBlob(blob);
}

}  // namespace weir
