#include "ingest/topic.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(TopicTemplate, CapturesBecomePlusInTheFilter) {
  auto t = TopicTemplate::Parse("sensors/{site}/{device}/telemetry");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->filter(), "sensors/+/+/telemetry");
  ASSERT_EQ(t->capture_names().size(), 2u);
  EXPECT_EQ(t->capture_names()[0], "site");
  EXPECT_EQ(t->capture_names()[1], "device");
}

TEST(TopicTemplate, MatchFillsCaptures) {
  auto t = TopicTemplate::Parse("s/{site}/{device}/data");
  ASSERT_TRUE(t.ok());
  std::string_view caps[2];
  ASSERT_TRUE(t->Match("s/a/d1/data", caps));
  EXPECT_EQ(caps[0], "a");
  EXPECT_EQ(caps[1], "d1");
  EXPECT_FALSE(t->Match("s/a/d1/status", caps));
  EXPECT_FALSE(t->Match("s/a/d1", caps));
  EXPECT_FALSE(t->Match("s/a/d1/data/x", caps));
  EXPECT_FALSE(t->Match("x/a/d1/data", caps));
}

TEST(TopicTemplate, HashMatchesAnyDepthIncludingParent) {
  auto t = TopicTemplate::Parse("s/{device}/#");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->filter(), "s/+/#");
  std::string_view caps[1];
  EXPECT_TRUE(t->Match("s/d1/a/b/c", caps));
  EXPECT_EQ(caps[0], "d1");
  EXPECT_TRUE(t->Match("s/d2", caps));  // MQTT: '#' matches the parent level too
  EXPECT_EQ(caps[0], "d2");
  EXPECT_FALSE(t->Match("t/d1/x", caps));
}

TEST(TopicTemplate, EmptyLevelIsCapturedAsEmpty) {
  auto t = TopicTemplate::Parse("s/{device}/data");
  ASSERT_TRUE(t.ok());
  std::string_view caps[1] = {"unset"};
  ASSERT_TRUE(t->Match("s//data", caps));
  EXPECT_EQ(caps[0], "");
}

TEST(TopicTemplate, RejectsMalformedTemplates) {
  EXPECT_FALSE(TopicTemplate::Parse("").ok());
  EXPECT_FALSE(TopicTemplate::Parse("a/#/b").ok());
  EXPECT_FALSE(TopicTemplate::Parse("a/dev-{id}").ok());
  EXPECT_FALSE(TopicTemplate::Parse("a/{}/b").ok());
  EXPECT_FALSE(TopicTemplate::Parse("a/{x}/{x}").ok());
  EXPECT_FALSE(TopicTemplate::Parse("a/b+").ok());
}

TEST(TopicTemplate, WildcardsDoNotMatchDollarTopics) {
  auto t = TopicTemplate::Parse("{a}/#");
  ASSERT_TRUE(t.ok());
  std::string_view caps[1];
  EXPECT_FALSE(t->Match("$SYS/broker/uptime", caps));
}

TEST(FilterCovers, Cases) {
  EXPECT_TRUE(FilterCovers("s/+/#", "s/+/status"));
  EXPECT_TRUE(FilterCovers("#", "a/b"));
  EXPECT_TRUE(FilterCovers("s/+/x", "s/a/x"));
  EXPECT_FALSE(FilterCovers("s/a/x", "s/+/x"));
  EXPECT_FALSE(FilterCovers("s/+/status", "s/+/#"));
  EXPECT_FALSE(FilterCovers("s/+/data", "s/+/status"));
  EXPECT_FALSE(FilterCovers("s/+", "s/+/x"));
}

SourceConfig Source() {
  SourceConfig s;
  s.topics = {{"s/{site}/{device}/#", PayloadFormat::kJson},
              {"s/{site}/{device}/data", PayloadFormat::kFlatbuffers}};
  s.status.enabled = true;
  s.status.topic = "s/{site}/{device}/status";
  return s;
}

TEST(TopicRouter, StatusTemplateWinsOverHashDataTemplate) {
  auto r = TopicRouter::Create(Source());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string_view caps[2];
  TopicMatch m = r->Route("s/a/d1/status", caps);
  EXPECT_EQ(m.kind, TopicMatch::Kind::kStatus);
  EXPECT_EQ(caps[1], "d1");
}

TEST(TopicRouter, FirstMatchingDataTemplateWins) {
  auto r = TopicRouter::Create(Source());
  ASSERT_TRUE(r.ok());
  std::string_view caps[2];
  TopicMatch m = r->Route("s/a/d1/data", caps);
  EXPECT_EQ(m.kind, TopicMatch::Kind::kData);
  EXPECT_EQ(m.topic_index, 0);
  EXPECT_EQ(r->Route("x/y", caps).kind, TopicMatch::Kind::kNone);
}

TEST(TopicRouter, SubscriptionFiltersDropCoveredOnes) {
  auto r = TopicRouter::Create(Source());
  ASSERT_TRUE(r.ok());
  std::vector<std::string> f = r->SubscriptionFilters();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0], "s/+/+/#");

  SourceConfig s;
  s.topics = {{"s/{device}/data", PayloadFormat::kJson}, {"s/{d}/data", PayloadFormat::kJson}};
  s.status.enabled = true;
  s.status.topic = "s/{device}/status";
  auto r2 = TopicRouter::Create(s);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->SubscriptionFilters(), (std::vector<std::string>{"s/+/data", "s/+/status"}));
}

}  // namespace
}  // namespace weir
