// Backoff: reconnect delays that grow exponentially between a floor and a
// ceiling, with jitter so that a fleet of gateways that lost the same broker
// does not reconnect in lockstep. Pure logic: the caller sleeps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace weir {

class Backoff {
 public:
  // REQUIRES: 0 < min_ms <= max_ms.
  Backoff(int64_t min_ms, int64_t max_ms, uint64_t seed)
      : min_ms_(min_ms), max_ms_(max_ms), rng_(seed) {}

  // The delay before the next attempt: the nominal delay doubles per failure
  // (min, 2*min, ... up to max), and the returned value is uniform in
  // [nominal, 2*nominal], or in [max/2, max] once the nominal delay reached
  // max; it never leaves [min_ms, max_ms]. Even the first retry is jittered.
  int64_t NextDelayMs() {
    int64_t nominal = nominal_ms_ == 0 ? min_ms_ : std::min(max_ms_, nominal_ms_ * 2);
    nominal_ms_ = nominal;
    int64_t lo = nominal;
    int64_t hi = std::min(max_ms_, nominal * 2);
    if (lo >= hi) {
      lo = std::max(min_ms_, max_ms_ / 2);
      hi = max_ms_;
    }
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  // After a successful connection: the next failure starts from min_ms again.
  void Reset() { nominal_ms_ = 0; }

 private:
  int64_t min_ms_;
  int64_t max_ms_;
  int64_t nominal_ms_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace weir
