#include "operators/aggregates.h"

#include <cmath>

namespace weir {

void AggMerge(const AggSpec& spec, const AggSlot& s, AggSlot* d) {
  if (s.n == 0) return;
  if (d->n == 0) {
    int32_t keep = d->sketch;
    *d = s;
    d->sketch = keep;
    return;
  }
  switch (spec.kind) {
    case AggregateKind::kCount:
    case AggregateKind::kQuantile:
      break;
    case AggregateKind::kSum:
    case AggregateKind::kAvg:
      d->sum += s.sum;
      break;
    case AggregateKind::kMin:
      if (s.sum < d->sum) d->sum = s.sum;
      break;
    case AggregateKind::kMax:
      if (s.sum > d->sum) d->sum = s.sum;
      break;
    case AggregateKind::kStddev: {
      // Chan et al.'s pairwise combination.
      double na = static_cast<double>(d->n), nb = static_cast<double>(s.n), n = na + nb;
      double delta = s.sum - d->sum;
      d->sum += delta * nb / n;
      d->m2 += s.m2 + delta * delta * na * nb / n;
      break;
    }
    case AggregateKind::kFirst:
    case AggregateKind::kLast:
    case AggregateKind::kDelta:
      if (s.first_ts < d->first_ts || (s.first_ts == d->first_ts && s.first_seq < d->first_seq)) {
        d->first_v = s.first_v, d->first_ts = s.first_ts, d->first_seq = s.first_seq;
      }
      if (s.last_ts > d->last_ts || (s.last_ts == d->last_ts && s.last_seq > d->last_seq)) {
        d->last_v = s.last_v, d->last_ts = s.last_ts, d->last_seq = s.last_seq;
      }
      break;
  }
  d->n += s.n;
}

bool AggValue(const AggSpec& spec, const AggSlot& a, const QuantileSketch* sketch, double* value) {
  if (spec.kind == AggregateKind::kCount) {
    *value = static_cast<double>(a.n);
    return true;
  }
  if (a.n == 0) return false;
  switch (spec.kind) {
    case AggregateKind::kCount:
      break;
    case AggregateKind::kSum:
    case AggregateKind::kMin:
    case AggregateKind::kMax:
      *value = a.sum;
      break;
    case AggregateKind::kAvg:
      *value = a.sum / static_cast<double>(a.n);
      break;
    case AggregateKind::kStddev:
      *value = std::sqrt(std::max(0.0, a.m2 / static_cast<double>(a.n)));
      break;
    case AggregateKind::kFirst:
      *value = a.first_v;
      break;
    case AggregateKind::kLast:
      *value = a.last_v;
      break;
    case AggregateKind::kDelta:
      *value = a.last_v - a.first_v;
      break;
    case AggregateKind::kQuantile:
      if (!sketch || sketch->count() == 0) return false;
      *value = sketch->Quantile(spec.q);
      break;
  }
  return true;
}

void AggEncode(const AggSlot& a, StateEncoder* enc) {
  enc->I64(a.n);
  enc->F64(a.sum);
  enc->F64(a.m2);
  enc->F64(a.first_v);
  enc->I64(a.first_ts);
  enc->U64(a.first_seq);
  enc->F64(a.last_v);
  enc->I64(a.last_ts);
  enc->U64(a.last_seq);
}

void AggDecode(StateDecoder* dec, AggSlot* a) {
  a->n = dec->I64();
  a->sum = dec->F64();
  a->m2 = dec->F64();
  a->first_v = dec->F64();
  a->first_ts = dec->I64();
  a->first_seq = dec->U64();
  a->last_v = dec->F64();
  a->last_ts = dec->I64();
  a->last_seq = dec->U64();
}

}  // namespace weir
