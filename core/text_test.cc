#include "core/text.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

std::string Key(double v) {
  std::string s;
  AppendKeyNumber(v, &s);
  return s;
}

TEST(KeyNumber, IntegralDoublesDropTheFraction) {
  EXPECT_EQ(Key(5.0), "5");
  EXPECT_EQ(Key(-3.0), "-3");
  EXPECT_EQ(Key(0.0), "0");
}

TEST(KeyNumber, FractionsUseShortestRoundTrip) {
  EXPECT_EQ(Key(0.1), "0.1");
  EXPECT_EQ(Key(21.5), "21.5");
}

TEST(IdPart, EncodesSlashCommaPercentInUppercaseHex) {
  std::string s;
  AppendIdPart("a/b,c%", &s);
  EXPECT_EQ(s, "a%2Fb%2Cc%25");
}

TEST(JsonString, EscapesControlCharactersAndQuotes) {
  std::string s;
  AppendJsonString("a\"b\\c\n\x01", &s);
  EXPECT_EQ(s, "\"a\\\"b\\\\c\\n\\u0001\"");
}

}  // namespace
}  // namespace weir
