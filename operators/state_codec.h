// StateEncoder / StateDecoder: the byte layout of checkpoint and spill blobs.
// Fixed-width little-endian integers and doubles, length-prefixed strings.
// Blobs are only read back by the same build's operators/, but every read is
// bounds-checked so a corrupt row gives DataLoss instead of a crash.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace weir {

class StateEncoder {
 public:
  explicit StateEncoder(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void I64(int64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i)
      b[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
    out_->append(b, 8);
  }
  void U64(uint64_t v) { I64(static_cast<int64_t>(v)); }
  void F64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    U64(bits);
  }
  void Str(std::string_view s) {
    I64(static_cast<int64_t>(s.size()));
    out_->append(s.data(), s.size());
  }

 private:
  std::string* out_;
};

class StateDecoder {
 public:
  explicit StateDecoder(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == in_.size(); }
  uint8_t U8() {
    if (!Need(1)) return 0;
    return static_cast<uint8_t>(in_[pos_++]);
  }
  int64_t I64() {
    if (!Need(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return static_cast<int64_t>(v);
  }
  uint64_t U64() { return static_cast<uint64_t>(I64()); }
  double F64() {
    uint64_t bits = U64();
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  std::string_view Str() {
    int64_t n = I64();
    if (n < 0 || !Need(static_cast<size_t>(n))) {
      ok_ = false;
      return {};
    }
    std::string_view s = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  // A count that must be plausible for the bytes left (guards resize()).
  int64_t Count(int64_t max_value) {
    int64_t n = I64();
    if (n < 0 || n > max_value) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace weir
