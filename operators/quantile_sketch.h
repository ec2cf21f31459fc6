// QuantileSketch: a mergeable, bounded-size sketch for the `quantile`
// aggregate (DESIGN 4), after DDSketch (Masson, Rim, Lee, VLDB 2019).
//
// Accuracy bound: a value v != 0 is counted in the logarithmic bucket
// i = ceil(log_gamma |v|), gamma = (1 + a) / (1 - a), a = kRelativeAccuracy
// = 0.005. Bucket i covers (gamma^(i-1), gamma^i] and is represented by
// 2 gamma^i / (gamma + 1), which is within relative error a of every value
// in it. Quantile(q) walks the buckets in value order to the one holding the
// nearest-rank value (the ceil(q*n)-th smallest) and returns its
// representative clamped to the exact [min, max], so the answer is within
// 0.5% (relative) of the nearest-rank value: half the contract's 1%.
// The bound holds while one sign's buckets span at most kMaxBuckets (8192,
// that is a dynamic range of gamma^8192 ~ 4e35 between the smallest and the
// largest magnitude of one sign); beyond that the smallest magnitudes are
// collapsed into one bucket, like DDSketch's collapsing-lowest store, and only
// quantiles that land on them lose accuracy. Zero is counted exactly, and the
// rank-1 and rank-n answers are the exact min and max.
//
// Memory grows with the range of values seen (4 bytes per bucket spanned),
// never past 2 x 8192 buckets; Clear() keeps the capacity so a pooled sketch
// is reused without allocating.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "operators/state_codec.h"

namespace weir {

class QuantileSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.005;
  static constexpr int kMaxBuckets = 8192;

  void Add(double v);
  void Merge(const QuantileSketch& other);
  // REQUIRES: count() > 0, 0 < q < 1.
  double Quantile(double q) const;
  uint64_t count() const { return count_; }
  void Clear();
  // Room for `buckets` per sign up front (pools preallocate with it).
  void Reserve(size_t buckets) {
    positive_.counts.reserve(buckets);
    negative_.counts.reserve(buckets);
  }

  void Encode(StateEncoder* enc) const;
  bool Decode(StateDecoder* dec);

 private:
  // Counts for bucket indexes [offset, offset + counts.size()).
  struct Store {
    std::vector<uint32_t> counts;
    int32_t offset = 0;
    uint64_t total = 0;
    void Add(int32_t index, uint64_t n);
    void Clear() {
      counts.clear();
      offset = 0;
      total = 0;
    }
  };
  static int32_t Index(double magnitude);
  static double Value(int32_t index);

  Store positive_;
  Store negative_;  // by magnitude
  uint64_t zero_ = 0;
  uint64_t count_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace weir
