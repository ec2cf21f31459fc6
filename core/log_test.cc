#include "core/log.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(RateLimiter, LetsBurstThroughThenCountsSuppressed) {
  RateLimiter limiter(2, 1000);
  int64_t suppressed = -1;
  EXPECT_TRUE(limiter.Allow(0, &suppressed));
  EXPECT_EQ(suppressed, 0);
  EXPECT_TRUE(limiter.Allow(10, &suppressed));
  EXPECT_FALSE(limiter.Allow(20, &suppressed));
  EXPECT_FALSE(limiter.Allow(30, &suppressed));
  // A new interval lets the next one through and reports the two held back.
  EXPECT_TRUE(limiter.Allow(1000, &suppressed));
  EXPECT_EQ(suppressed, 2);
}

TEST(ParseLogLevel, AcceptsTheFourNames) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// A message with newlines (a list of config errors, say) stays one line.
TEST(Log, OneLinePerEvent) {
  testing::internal::CaptureStderr();
  Log(LogLevel::kError, "run", "reload rejected:\n%s\n", "a.json: /x: bad\na.json: /y: bad\n");
  std::string out = testing::internal::GetCapturedStderr();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  EXPECT_NE(out.find("ERROR run: reload rejected: | a.json: /x: bad | a.json: /y: bad\n"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace weir
