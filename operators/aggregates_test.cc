#include "operators/aggregates.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "operators/quantile_sketch.h"

namespace weir {
namespace {

double NearestRank(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::max<size_t>(1, std::min(rank, v.size()));
  return v[rank - 1];
}

void ExpectWithin(double got, double want, double rel) {
  EXPECT_LE(std::fabs(got - want), rel * std::fabs(want)) << got << " vs " << want;
}

TEST(QuantileSketch, LognormalWithinHalfPercent) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(3.0, 1.5);  // heavily right-skewed
  QuantileSketch s;
  std::vector<double> values;
  for (int i = 0; i < 100000; ++i) {
    double v = dist(rng);
    values.push_back(v);
    s.Add(v);
  }
  for (double q : {0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999}) {
    ExpectWithin(s.Quantile(q), NearestRank(values, q), QuantileSketch::kRelativeAccuracy * 1.001);
  }
}

TEST(QuantileSketch, MixedSignsZerosAndMerge) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> dist(0, 50);
  QuantileSketch a, b, all;
  std::vector<double> values;
  for (int i = 0; i < 20000; ++i) {
    double v = i % 17 == 0 ? 0.0 : dist(rng);
    values.push_back(v);
    (i % 3 ? a : b).Add(v);
    all.Add(v);
  }
  a.Merge(b);
  for (double q : {0.05, 0.3, 0.5, 0.7, 0.95}) {
    double want = NearestRank(values, q);
    EXPECT_LE(std::fabs(a.Quantile(q) - want), 0.005 * std::fabs(want) + 1e-12);
    EXPECT_DOUBLE_EQ(a.Quantile(q), all.Quantile(q));
  }
}

TEST(QuantileSketch, SmallCountsAreExactAtTheEnds) {
  QuantileSketch s;
  for (double v : {3.0, 1.0, 2.0}) s.Add(v);
  EXPECT_DOUBLE_EQ(s.Quantile(0.01), 1.0);  // clamped to the exact min
  EXPECT_DOUBLE_EQ(s.Quantile(0.99), 3.0);  // and max
  ExpectWithin(s.Quantile(0.5), 2.0, 0.005);
}

TEST(QuantileSketch, WideRangeStaysBounded) {
  QuantileSketch s;
  std::vector<double> values;
  for (int i = -300; i <= 300; ++i) {
    values.push_back(std::pow(10.0, i / 10.0));
    s.Add(values.back());
  }
  // The smallest magnitudes collapse; the upper quantiles keep their bound.
  ExpectWithin(s.Quantile(0.99), NearestRank(values, 0.99), 0.005 * 1.001);
  ExpectWithin(s.Quantile(0.5), NearestRank(values, 0.5), 0.005 * 1.001);
  std::string blob;
  StateEncoder enc(&blob);
  s.Encode(&enc);
  QuantileSketch t;
  StateDecoder dec(blob);
  ASSERT_TRUE(t.Decode(&dec));
  EXPECT_DOUBLE_EQ(t.Quantile(0.99), s.Quantile(0.99));
}

Reading WithField(double v) {
  Reading r;
  r.SetField(0, v);
  return r;
}

double Value(const AggSpec& spec, const AggSlot& slot) {
  double v = 0;
  EXPECT_TRUE(AggValue(spec, slot, nullptr, &v));
  return v;
}

TEST(Aggregates, StddevIsPopulationAndStable) {
  AggSpec spec{AggregateKind::kStddev, false, 0, 0};
  AggSlot a, b;
  // Large offset, tiny spread: the naive sum-of-squares formula loses it all.
  std::vector<double> xs = {1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16};
  for (size_t i = 0; i < xs.size(); ++i)
    AggAdd(spec, WithField(xs[i]), 0, i, i < 2 ? &a : &b, nullptr);
  AggMerge(spec, b, &a);
  EXPECT_NEAR(Value(spec, a), std::sqrt(22.5), 1e-6);  // mean 10 (+1e9), squares 36+9+9+36
}

TEST(Aggregates, FirstLastDeltaTiesByArrival) {
  AggSpec first{AggregateKind::kFirst, false, 0, 0};
  AggSpec last{AggregateKind::kLast, false, 0, 0};
  AggSpec delta{AggregateKind::kDelta, false, 0, 0};
  AggSlot s1, s2;
  AggAdd(first, WithField(1), 100, 1, &s1, nullptr);
  AggAdd(first, WithField(2), 100, 2, &s2, nullptr);
  AggAdd(first, WithField(5), 200, 3, &s2, nullptr);
  AggMerge(first, s2, &s1);
  EXPECT_EQ(Value(first, s1), 1);  // earlier arrival wins the tie at ts 100
  EXPECT_EQ(Value(last, s1), 5);
  EXPECT_EQ(Value(delta, s1), 4);
  AggSlot t1, t2;
  AggAdd(last, WithField(7), 300, 4, &t1, nullptr);
  AggAdd(last, WithField(8), 300, 5, &t2, nullptr);
  AggMerge(last, t1, &t2);
  EXPECT_EQ(Value(last, t2), 8);  // later arrival wins the tie
}

TEST(Aggregates, EmptyIsNullExceptCount) {
  AggSlot empty;
  double v = -1;
  for (AggregateKind k :
       {AggregateKind::kSum, AggregateKind::kMin, AggregateKind::kMax, AggregateKind::kAvg,
        AggregateKind::kFirst, AggregateKind::kLast, AggregateKind::kStddev, AggregateKind::kDelta,
        AggregateKind::kQuantile}) {
    EXPECT_FALSE(AggValue(AggSpec{k, false, 0, 0.5}, empty, nullptr, &v));
  }
  EXPECT_TRUE(AggValue(AggSpec{AggregateKind::kCount, false, 0, 0}, empty, nullptr, &v));
  EXPECT_EQ(v, 0);
}

TEST(Aggregates, SkipsReadingsWithoutTheField) {
  AggSpec sum{AggregateKind::kSum, false, 1, 0};
  AggSpec star{AggregateKind::kCount, true, -1, 0};
  AggSlot s, n;
  Reading r = WithField(3);  // field 0 only
  AggAdd(sum, r, 0, 1, &s, nullptr);
  AggAdd(star, r, 0, 1, &n, nullptr);
  double v;
  EXPECT_FALSE(AggValue(sum, s, nullptr, &v));
  EXPECT_EQ(Value(star, n), 1);
}

}  // namespace
}  // namespace weir
