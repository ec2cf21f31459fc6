#include "core/result.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(ResultJson, WindowResultHasContractFieldsInOrder) {
  ResultRecord r;
  r.id = "gw-01/climate/d17/1700000040000";
  r.rev = 0;
  r.pipeline = "climate";
  r.key = {{"device", "d17"}};
  r.start = 1700000040000;
  r.end = 1700000100000;
  r.count = 60;
  r.values = {{"n", false, 60}, {"temp_avg", false, 21.5}, {"temp_p95", true, 0}};
  EXPECT_EQ(ResultJson(r),
            "{\"id\":\"gw-01/climate/d17/1700000040000\",\"rev\":0,\"pipeline\":\"climate\","
            "\"key\":{\"device\":\"d17\"},\"start\":1700000040000,\"end\":1700000100000,"
            "\"count\":60,\"values\":{\"n\":60,\"temp_avg\":21.5,\"temp_p95\":null}}");
}

TEST(ResultJson, RetractionCarriesOnlyIdRevRetracted) {
  ResultRecord r;
  r.id = "gw/p/d1/280000";
  r.rev = 1;
  r.retracted = true;
  r.pipeline = "p";
  EXPECT_EQ(ResultJson(r), "{\"id\":\"gw/p/d1/280000\",\"rev\":1,\"retracted\":true}");
}

TEST(ResultJson, SessionAddsDuration) {
  ResultRecord r;
  r.id = "x";
  r.pipeline = "p";
  r.has_duration = true;
  r.duration_ms = 10000;
  r.end = 10000;
  EXPECT_NE(ResultJson(r).find("\"duration_ms\":10000"), std::string::npos);
}

}  // namespace
}  // namespace weir
