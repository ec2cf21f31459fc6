// Aggregate state (DESIGN 4 `aggregates`): one AggSlot per aggregate per
// window or session. Every kind is mergeable, because sessions merge.
#pragma once

#include <cstdint>

#include "config/config.h"
#include "core/reading.h"
#include "operators/quantile_sketch.h"
#include "operators/state_codec.h"

namespace weir {

// An aggregate of the config, resolved against the reading schema.
struct AggSpec {
  AggregateKind kind = AggregateKind::kCount;
  bool star = false;  // count("*")
  int field = -1;     // Reading field index; -1 with !star: a field no reading has
  double q = 0;
};

// Fixed-size state; which members mean what depends on the kind:
//   count: n.  sum/avg: n, sum.  min/max: n, v.  stddev: n, mean, m2 (Welford).
//   first/last/delta: n, first_* and last_* (value, ts, arrival seq).
//   quantile: n and the pooled sketch `sketch` (index owned by the caller).
struct AggSlot {
  int64_t n = 0;
  double sum = 0;  // also v (min/max) and mean (stddev)
  double m2 = 0;
  double first_v = 0;
  int64_t first_ts = 0;
  uint64_t first_seq = 0;
  double last_v = 0;
  int64_t last_ts = 0;
  uint64_t last_seq = 0;
  int32_t sketch = -1;
};

// Adds reading r (event time ts, arrival number seq) to the slot. `sketch` is
// the slot's sketch for quantiles, else null. Inline: it runs for every
// aggregate of every window a reading falls in.
inline void AggAdd(const AggSpec& spec, const Reading& r, int64_t ts, uint64_t seq, AggSlot* a,
                   QuantileSketch* sketch) {
  if (spec.star) {
    ++a->n;
    return;
  }
  if (spec.field < 0 || !r.HasField(spec.field)) return;
  double v = r.field[spec.field];
  switch (spec.kind) {
    case AggregateKind::kCount:
      break;
    case AggregateKind::kSum:
    case AggregateKind::kAvg:
      a->sum += v;
      break;
    case AggregateKind::kMin:
      if (a->n == 0 || v < a->sum) a->sum = v;
      break;
    case AggregateKind::kMax:
      if (a->n == 0 || v > a->sum) a->sum = v;
      break;
    case AggregateKind::kStddev: {
      // Welford: stable for long runs of nearly equal values.
      double n = static_cast<double>(a->n + 1);
      double d = v - a->sum;
      a->sum += d / n;
      a->m2 += d * (v - a->sum);
      break;
    }
    case AggregateKind::kFirst:
    case AggregateKind::kLast:
    case AggregateKind::kDelta:
      // Arrival order breaks ties: the earlier arrival stays first, the later
      // becomes last (seq only grows, so >= picks the later one).
      if (a->n == 0 || ts < a->first_ts) {
        a->first_v = v, a->first_ts = ts, a->first_seq = seq;
      }
      if (a->n == 0 || ts >= a->last_ts) {
        a->last_v = v, a->last_ts = ts, a->last_seq = seq;
      }
      break;
    case AggregateKind::kQuantile:
      if (sketch) sketch->Add(v);
      break;
  }
  ++a->n;
}
// Folds src into dst (sketches merged by the caller).
void AggMerge(const AggSpec& spec, const AggSlot& src, AggSlot* dst);
// The result value; false means null (no values; count is never null).
bool AggValue(const AggSpec& spec, const AggSlot& slot, const QuantileSketch* sketch,
              double* value);

void AggEncode(const AggSlot& slot, StateEncoder* enc);
void AggDecode(StateDecoder* dec, AggSlot* slot);

}  // namespace weir
