// core/backoff.h, tested here where it matters most (DESIGN 6.4: 1 s to 60 s
// with jitter).
#include "core/backoff.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(BackoffTest, DoublesWithJitterWithinOneToSixtySeconds) {
  Backoff b(1000, 60000, 42);
  // Nominal 1, 2, 4, 8, 16, 32 s; each delay in [nominal, 2*nominal] (capped).
  const int64_t nominal[] = {1000, 2000, 4000, 8000, 16000, 32000};
  for (int64_t n : nominal) {
    int64_t d = b.NextDelayMs();
    EXPECT_GE(d, n);
    EXPECT_LE(d, std::min<int64_t>(2 * n, 60000));
  }
  // At the ceiling: in [30 s, 60 s] from then on.
  for (int i = 0; i < 50; ++i) {
    int64_t d = b.NextDelayMs();
    EXPECT_GE(d, 30000);
    EXPECT_LE(d, 60000);
  }
  b.Reset();
  int64_t d = b.NextDelayMs();
  EXPECT_GE(d, 1000);
  EXPECT_LE(d, 2000);
}

TEST(BackoffTest, GatewaysWithOtherSeedsSpreadOut) {
  Backoff a(1000, 60000, 1), b(1000, 60000, 2);
  bool differ = false;
  for (int i = 0; i < 5; ++i) differ |= a.NextDelayMs() != b.NextDelayMs();
  EXPECT_TRUE(differ);
}

TEST(BackoffTest, EqualFloorAndCeilingIsAFixedDelay) {
  Backoff b(4000, 4000, 7);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.NextDelayMs(), 4000);
}

}  // namespace
}  // namespace weir
