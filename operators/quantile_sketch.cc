#include "operators/quantile_sketch.h"

#include <algorithm>
#include <cmath>

namespace weir {
namespace {
constexpr double kGamma =
    (1 + QuantileSketch::kRelativeAccuracy) / (1 - QuantileSketch::kRelativeAccuracy);
const double kLogGamma = std::log(kGamma);
}  // namespace

int32_t QuantileSketch::Index(double magnitude) {
  double i = std::ceil(std::log(magnitude) / kLogGamma);
  // Magnitudes are finite doubles, so |i| stays far below int32 limits.
  return static_cast<int32_t>(i);
}

double QuantileSketch::Value(int32_t index) { return 2 * std::pow(kGamma, index) / (kGamma + 1); }

void QuantileSketch::Store::Add(int32_t index, uint64_t n) {
  total += n;
  if (counts.empty()) {
    offset = index;
    counts.assign(1, 0);
  }
  if (index < offset) {
    int32_t top = offset + static_cast<int32_t>(counts.size()) - 1;
    int32_t new_offset = std::max(index, top - kMaxBuckets + 1);
    counts.insert(counts.begin(), static_cast<size_t>(offset - new_offset), 0);
    offset = new_offset;
    if (index < offset) index = offset;  // collapsed into the lowest bucket
  } else if (index >= offset + static_cast<int32_t>(counts.size())) {
    counts.resize(static_cast<size_t>(index - offset + 1), 0);
    if (counts.size() > static_cast<size_t>(kMaxBuckets)) {
      // Collapse the lowest magnitudes into the new lowest bucket.
      size_t drop = counts.size() - kMaxBuckets;
      uint64_t moved = 0;
      for (size_t i = 0; i < drop; ++i) moved += counts[i];
      counts.erase(counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(drop));
      counts[0] = static_cast<uint32_t>(counts[0] + moved);
      offset += static_cast<int32_t>(drop);
    }
  }
  counts[static_cast<size_t>(index - offset)] += static_cast<uint32_t>(n);
}

void QuantileSketch::Add(double v) {
  if (count_ == 0) {
    min_ = max_ = v;
  } else {
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  ++count_;
  if (v > 0) {
    positive_.Add(Index(v), 1);
  } else if (v < 0) {
    negative_.Add(Index(-v), 1);
  } else {
    ++zero_;
  }
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  if (other.count_ == 0) return;
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  zero_ += other.zero_;
  for (size_t i = 0; i < other.positive_.counts.size(); ++i) {
    if (other.positive_.counts[i]) {
      positive_.Add(other.positive_.offset + static_cast<int32_t>(i), other.positive_.counts[i]);
    }
  }
  for (size_t i = 0; i < other.negative_.counts.size(); ++i) {
    if (other.negative_.counts[i]) {
      negative_.Add(other.negative_.offset + static_cast<int32_t>(i), other.negative_.counts[i]);
    }
  }
}

double QuantileSketch::Quantile(double q) const {
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::max<uint64_t>(1, std::min<uint64_t>(rank, count_));
  // The extremes are known exactly.
  if (rank == 1) return min_;
  if (rank == count_) return max_;
  uint64_t seen = 0;
  double result = max_;
  bool found = false;
  // Negative values, largest magnitude first.
  for (size_t i = negative_.counts.size(); i-- > 0 && !found;) {
    seen += negative_.counts[i];
    if (seen >= rank) {
      result = -Value(negative_.offset + static_cast<int32_t>(i));
      found = true;
    }
  }
  if (!found) {
    seen += zero_;
    if (seen >= rank) {
      result = 0;
      found = true;
    }
  }
  for (size_t i = 0; i < positive_.counts.size() && !found; ++i) {
    seen += positive_.counts[i];
    if (seen >= rank) {
      result = Value(positive_.offset + static_cast<int32_t>(i));
      found = true;
    }
  }
  return std::min(max_, std::max(min_, result));
}

void QuantileSketch::Clear() {
  positive_.Clear();
  negative_.Clear();
  zero_ = count_ = 0;
  min_ = max_ = 0;
}

void QuantileSketch::Encode(StateEncoder* enc) const {
  enc->U64(count_);
  enc->U64(zero_);
  enc->F64(min_);
  enc->F64(max_);
  for (const Store* s : {&positive_, &negative_}) {
    enc->I64(s->offset);
    enc->I64(static_cast<int64_t>(s->counts.size()));
    for (uint32_t c : s->counts) enc->I64(c);
  }
}

bool QuantileSketch::Decode(StateDecoder* dec) {
  Clear();
  count_ = dec->U64();
  zero_ = dec->U64();
  min_ = dec->F64();
  max_ = dec->F64();
  for (Store* s : {&positive_, &negative_}) {
    s->offset = static_cast<int32_t>(dec->I64());
    int64_t n = dec->Count(kMaxBuckets);
    s->counts.resize(static_cast<size_t>(n));
    for (auto& c : s->counts) {
      c = static_cast<uint32_t>(dec->I64());
      s->total += c;
    }
  }
  return dec->ok();
}

}  // namespace weir
