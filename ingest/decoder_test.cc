#include "ingest/decoder.h"

#include <gtest/gtest.h>

#include "schemas/reading_generated.h"

namespace weir {
namespace {

// The shape of the worked examples' source (DESIGN 4), built by hand.
Config ExampleConfig() {
  Config c;
  c.gateway = "gw";
  c.source.topics = {{"s/{site}/{device}/data", PayloadFormat::kJson},
                     {"s/{site}/{device}/batch", PayloadFormat::kFlatbuffers}};
  c.source.status.enabled = true;
  c.source.status.topic = "s/{site}/{device}/status";
  c.source.seq = "/seq";
  c.source.sent_at = "/sent_at";
  c.source.fields = {{"temp", "/temp"}, {"amps", "/amps"}};
  c.source.tags = {{"room", "/room"}, {"site", "/site"}};
  c.attributes = {"site", "room"};
  return c;
}

constexpr int kTemp = 0, kAmps = 1;
constexpr int kSite = 0, kRoom = 1;

std::unique_ptr<MessageDecoder> Make(const Config& c) {
  auto d = MessageDecoder::Create(c);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d.value()) : nullptr;
}

TEST(Decoder, OneJsonObject) {
  auto d = Make(ExampleConfig());
  const DecodedMessage& m = d->Decode(
      "s/a/d1/data", R"({"ts":1000,"seq":7,"temp":21.5,"amps":null,"room":"r1","sent_at":990})",
      5000);
  ASSERT_EQ(m.kind, DecodedMessage::Kind::kData);
  ASSERT_EQ(m.reading_count, 1u);
  EXPECT_EQ(m.rejected, 0);
  const Reading& r = m.readings[0];
  EXPECT_EQ(r.device, "d1");
  EXPECT_EQ(r.ts_ms, 1000);
  EXPECT_TRUE(r.has_seq);
  EXPECT_EQ(r.seq, 7);
  EXPECT_TRUE(r.has_sent_at);
  EXPECT_EQ(r.sent_at_ms, 990);
  EXPECT_TRUE(r.HasField(kTemp));
  EXPECT_EQ(r.field[kTemp], 21.5);
  EXPECT_FALSE(r.HasField(kAmps));  // null counts as absent
  EXPECT_EQ(r.attribute[kSite], "a");
  EXPECT_EQ(r.attribute[kRoom], "r1");
  EXPECT_EQ(d->counters().readings, 1);
}

TEST(Decoder, ArrayElementsAreReadingsAndBadOnesAreRejectedAlone) {
  auto d = Make(ExampleConfig());
  const DecodedMessage& m = d->Decode(
      "s/a/d1/data", R"([{"ts":1000},"x",{"ts":"bad"},{"ts":2000,"temp":true},{"ts":3000}])", 0);
  ASSERT_EQ(m.reading_count, 2u);
  EXPECT_EQ(m.readings[0].ts_ms, 1000);
  EXPECT_EQ(m.readings[1].ts_ms, 3000);
  EXPECT_EQ(m.rejected, 3);
  EXPECT_EQ(m.first_reject, RejectReason::kNotObject);
  EXPECT_EQ(m.first_reject_detail, "array element 1: not an object");
  const auto& rej = d->counters().rejected;
  EXPECT_EQ(rej[static_cast<int>(RejectReason::kNotObject)], 1);
  EXPECT_EQ(rej[static_cast<int>(RejectReason::kMissingTimestamp)], 1);
  EXPECT_EQ(rej[static_cast<int>(RejectReason::kNonNumericField)], 1);
}

TEST(Decoder, MalformedKinds) {
  auto d = Make(ExampleConfig());
  auto reason = [&](std::string_view topic, std::string_view payload) {
    const DecodedMessage& m = d->Decode(topic, payload, 0);
    EXPECT_EQ(m.reading_count, 0u) << payload;
    EXPECT_EQ(m.rejected, 1) << payload;
    return m.first_reject;
  };
  EXPECT_EQ(reason("s/a/d1/data", "garbage"), RejectReason::kBadJson);
  EXPECT_EQ(reason("s/a/d1/data", R"({"ts":1)"), RejectReason::kBadJson);
  EXPECT_EQ(reason("s/a/d1/data", "42"), RejectReason::kNotObject);
  EXPECT_EQ(reason("s/a/d1/data", R"({"temp":1})"), RejectReason::kMissingTimestamp);
  EXPECT_EQ(reason("s/a/d1/data", R"({"ts":null})"), RejectReason::kMissingTimestamp);
  EXPECT_EQ(reason("s/a/d1/data", R"({"ts":"1000"})"), RejectReason::kMissingTimestamp);
  EXPECT_EQ(reason("s/a/d1/data", R"({"ts":1,"temp":"hot"})"), RejectReason::kNonNumericField);
  EXPECT_EQ(reason("s/a/d1/data", R"({"ts":1,"amps":{}})"), RejectReason::kNonNumericField);
  EXPECT_EQ(reason("s/a/d1/data", R"({"ts":1,"amps":[1]})"), RejectReason::kNonNumericField);
  EXPECT_EQ(reason("other/topic", R"({"ts":1})"), RejectReason::kUnmatchedTopic);
  EXPECT_EQ(reason("s/a//data", R"({"ts":1})"), RejectReason::kNoDevice);
  EXPECT_EQ(reason("s/a/d1/batch", "not a flatbuffer"), RejectReason::kBadFlatbuffer);
  EXPECT_EQ(d->counters().readings, 0);
}

TEST(Decoder, Oversize) {
  Config c = ExampleConfig();
  c.source.max_payload_bytes = 16;
  auto d = Make(c);
  EXPECT_EQ(d->Decode("s/a/d1/data", R"({"ts":1000})", 0).reading_count, 1u);
  const DecodedMessage& m = d->Decode("s/a/d1/data", R"({"ts":1000,"temp":1})", 0);
  EXPECT_EQ(m.reading_count, 0u);
  EXPECT_EQ(m.first_reject, RejectReason::kOversize);
}

TEST(Decoder, SeqMustBeAnInteger) {
  auto d = Make(ExampleConfig());
  for (const char* p : {R"({"ts":1,"seq":5.0})", R"({"ts":1,"seq":"5"})", R"({"ts":1,"seq":true})",
                        R"({"ts":1,"seq":null})", R"({"ts":1})"}) {
    const DecodedMessage& m = d->Decode("s/a/d1/data", p, 0);
    ASSERT_EQ(m.reading_count, 1u) << p;
    EXPECT_FALSE(m.readings[0].has_seq) << p;
  }
  const DecodedMessage& m = d->Decode("s/a/d1/data", R"({"ts":1,"seq":-3})", 0);
  ASSERT_EQ(m.reading_count, 1u);
  EXPECT_TRUE(m.readings[0].has_seq);
  EXPECT_EQ(m.readings[0].seq, -3);
}

TEST(Decoder, TagsAsKeyText) {
  auto d = Make(ExampleConfig());
  auto room = [&](std::string_view payload) -> std::string {
    const DecodedMessage& m = d->Decode("s/a/d1/data", payload, 0);
    EXPECT_EQ(m.reading_count, 1u) << payload;
    if (m.reading_count != 1) return "?";
    return m.readings[0].HasAttribute(kRoom) ? std::string(m.readings[0].attribute[kRoom])
                                             : "<absent>";
  };
  EXPECT_EQ(room(R"({"ts":1,"room":5})"), "5");
  EXPECT_EQ(room(R"({"ts":1,"room":5.0})"), "5");
  EXPECT_EQ(room(R"({"ts":1,"room":-0.25})"), "-0.25");
  EXPECT_EQ(room(R"({"ts":1,"room":true})"), "true");
  EXPECT_EQ(room(R"({"ts":1,"room":false})"), "false");
  EXPECT_EQ(room(R"({"ts":1,"room":"a/b,c%"})"), "a/b,c%");
  EXPECT_EQ(room(R"({"ts":1,"room":"caf\u00e9"})"), "caf\xc3\xa9");
  EXPECT_EQ(room(R"({"ts":1,"room":null})"), "<absent>");
  EXPECT_EQ(room(R"({"ts":1})"), "<absent>");
  EXPECT_EQ(room(R"({"ts":1,"room":18446744073709551615})"), "18446744073709551615");
}

TEST(Decoder, CaptureWinsOverTagOfTheSameName) {
  auto d = Make(ExampleConfig());
  const DecodedMessage& m = d->Decode("s/a/d1/data", R"({"ts":1,"site":"spoof"})", 0);
  ASSERT_EQ(m.reading_count, 1u);
  EXPECT_EQ(m.readings[0].attribute[kSite], "a");
}

TEST(Decoder, ViewsOfAllReadingsStayValidTogether) {
  auto d = Make(ExampleConfig());
  std::string payload = "[";
  for (int i = 0; i < 50; ++i) {
    if (i) payload += ",";
    payload += R"({"ts":)" + std::to_string(i) + R"(,"room":)" + std::to_string(i) + ".5}";
  }
  payload += "]";
  const DecodedMessage& m = d->Decode("s/a/d1/data", payload, 0);
  ASSERT_EQ(m.reading_count, 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(m.readings[i].attribute[kRoom], std::to_string(i) + ".5");
    EXPECT_EQ(m.readings[i].device, "d1");
  }
}

TEST(Decoder, TimestampUnits) {
  auto ts = [](TimestampUnit unit, std::string_view payload) -> int64_t {
    Config c = ExampleConfig();
    c.source.timestamp.unit = unit;
    auto d = Make(c);
    const DecodedMessage& m = d->Decode("s/a/d1/data", payload, 0);
    return m.reading_count == 1 ? m.readings[0].ts_ms : -999;
  };
  EXPECT_EQ(ts(TimestampUnit::kMs, R"({"ts":1000.9})"), 1000);
  EXPECT_EQ(ts(TimestampUnit::kMs, R"({"ts":-1000.9})"), -1000);
  EXPECT_EQ(ts(TimestampUnit::kS, R"({"ts":59.9999})"), 59999);
  EXPECT_EQ(ts(TimestampUnit::kS, R"({"ts":1700000000.0005})"), 1700000000000);
  EXPECT_EQ(ts(TimestampUnit::kS, R"({"ts":1700000000})"), 1700000000000);
  EXPECT_EQ(ts(TimestampUnit::kUs, R"({"ts":1700000000123999})"), 1700000000123);
  EXPECT_EQ(ts(TimestampUnit::kUs, R"({"ts":-1500})"), -1);  // toward zero
  EXPECT_EQ(ts(TimestampUnit::kUs, R"({"ts":2500.5})"), 2);
  EXPECT_EQ(ts(TimestampUnit::kS, R"({"ts":1e300})"), -999);  // out of range: rejected
  EXPECT_EQ(ts(TimestampUnit::kIso8601, R"({"ts":"2023-11-14T22:13:20Z"})"), 1700000000000);
  EXPECT_EQ(ts(TimestampUnit::kIso8601, R"({"ts":"2023-11-14T22:13:20.1239Z"})"), 1700000000123);
  EXPECT_EQ(ts(TimestampUnit::kIso8601, R"({"ts":"2023-11-14T23:13:20+01:00"})"), 1700000000000);
  EXPECT_EQ(ts(TimestampUnit::kIso8601, R"({"ts":1700000000000})"), -999);
  EXPECT_EQ(ts(TimestampUnit::kIso8601, R"({"ts":"yesterday"})"), -999);
}

TEST(Decoder, ReceivedUsesArrivalTime) {
  Config c = ExampleConfig();
  c.source.timestamp.received = true;
  auto d = Make(c);
  const DecodedMessage& m = d->Decode("s/a/d1/data", R"({"temp":1})", 4242);
  ASSERT_EQ(m.reading_count, 1u);
  EXPECT_EQ(m.readings[0].ts_ms, 4242);
}

TEST(Decoder, DeviceFromJsonPointer) {
  Config c = ExampleConfig();
  c.source.device = "/id";
  c.source.topics = {{"t/#", PayloadFormat::kJson}};
  c.source.status.topic = "t/{device}/status";
  c.attributes = {"room", "site"};
  auto d = Make(c);
  const DecodedMessage& m = d->Decode("t/x", R"([{"ts":1,"id":"dev9"},{"ts":2,"id":17},{"ts":3}])", 0);
  ASSERT_EQ(m.reading_count, 2u);
  EXPECT_EQ(m.readings[0].device, "dev9");
  EXPECT_EQ(m.readings[1].device, "17");
  EXPECT_EQ(m.first_reject, RejectReason::kNoDevice);
  const DecodedMessage& s = d->Decode("t/dev9/status", "offline", 0);
  EXPECT_EQ(s.kind, DecodedMessage::Kind::kStatus);
  EXPECT_EQ(s.device, "dev9");
}

TEST(Decoder, StatusMessages) {
  auto d = Make(ExampleConfig());
  const DecodedMessage& off = d->Decode("s/a/d1/status", "offline", 0);
  EXPECT_EQ(off.kind, DecodedMessage::Kind::kStatus);
  EXPECT_EQ(off.device, "d1");
  EXPECT_FALSE(off.online);
  const DecodedMessage& on = d->Decode("s/a/d1/status", "online", 0);
  EXPECT_EQ(on.kind, DecodedMessage::Kind::kStatus);
  EXPECT_TRUE(on.online);
  EXPECT_EQ(d->Decode("s/a/d1/status", R"({"ts":1000})", 0).kind,
            DecodedMessage::Kind::kStatusIgnored);
  EXPECT_EQ(d->counters().status_messages, 2);
  EXPECT_EQ(d->counters().status_ignored, 1);
}

TEST(Decoder, StatusTemplateWinsOverHashDataTemplate) {
  Config c = ExampleConfig();
  c.source.topics = {{"s/{site}/{device}/#", PayloadFormat::kJson}};
  auto d = Make(c);
  EXPECT_EQ(d->Decode("s/a/d1/status", R"({"ts":1000})", 0).kind,
            DecodedMessage::Kind::kStatusIgnored);
  EXPECT_EQ(d->Decode("s/a/d1/other", R"({"ts":1000})", 0).reading_count, 1u);
}

std::string Batch(const std::string& device, std::vector<std::string> channels,
                  const std::vector<fb::Sample>& samples, int64_t sent_at, bool has_seq) {
  flatbuffers::FlatBufferBuilder b;
  auto dev = b.CreateString(device);
  auto ch = b.CreateVectorOfStrings(channels);
  auto sm = b.CreateVectorOfStructs(samples);
  auto batch = fb::CreateBatch(b, dev, ch, sm, sent_at, has_seq);
  fb::FinishBatchBuffer(b, batch);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

TEST(Decoder, FlatbufferBatchGroupsSamplesBySeq) {
  auto d = Make(ExampleConfig());
  // Written per channel: all temps, then all amps; "hum" is not a field.
  std::string payload = Batch("ignored", {"temp", "amps", "hum"},
                              {fb::Sample(1000, 1, 0, 20.0), fb::Sample(2000, 2, 0, 21.0),
                               fb::Sample(1000, 1, 1, 0.5), fb::Sample(2000, 2, 1, 0.6),
                               fb::Sample(2000, 2, 2, 55.0)},
                              1990, true);
  const DecodedMessage& m = d->Decode("s/a/d7/batch", payload, 0);
  ASSERT_EQ(m.rejected, 0) << m.first_reject_detail;
  ASSERT_EQ(m.reading_count, 2u);
  EXPECT_EQ(m.readings[0].device, "d7");  // the capture, since source.device is "{device}"
  EXPECT_EQ(m.readings[0].ts_ms, 1000);
  EXPECT_EQ(m.readings[0].seq, 1);
  EXPECT_EQ(m.readings[0].field[kTemp], 20.0);
  EXPECT_EQ(m.readings[0].field[kAmps], 0.5);
  EXPECT_EQ(m.readings[1].ts_ms, 2000);
  EXPECT_EQ(m.readings[1].seq, 2);
  EXPECT_EQ(m.readings[1].field[kTemp], 21.0);
  EXPECT_EQ(m.readings[1].field[kAmps], 0.6);
  EXPECT_EQ(m.readings[1].attribute[kSite], "a");
  EXPECT_TRUE(m.readings[1].has_sent_at);
  EXPECT_EQ(m.readings[1].sent_at_ms, 1990);
}

TEST(Decoder, FlatbufferWithoutSeqGroupsByTs) {
  auto d = Make(ExampleConfig());
  std::string payload = Batch("x", {"amps", "temp"},
                              {fb::Sample(3000, 0, 1, 1.0), fb::Sample(1000, 0, 1, 2.0),
                               fb::Sample(3000, 0, 0, 3.0)},
                              0, false);
  const DecodedMessage& m = d->Decode("s/a/d7/batch", payload, 0);
  ASSERT_EQ(m.reading_count, 2u);
  EXPECT_EQ(m.readings[0].ts_ms, 3000);
  EXPECT_FALSE(m.readings[0].has_seq);
  EXPECT_FALSE(m.readings[0].has_sent_at);
  EXPECT_EQ(m.readings[0].field[kTemp], 1.0);
  EXPECT_EQ(m.readings[0].field[kAmps], 3.0);
  EXPECT_EQ(m.readings[1].ts_ms, 1000);
  EXPECT_FALSE(m.readings[1].HasField(kAmps));
}

TEST(Decoder, FlatbufferChannelsFeedTheFieldWhosePointerNamesThem) {
  // "temp": "/t" reads key "t" of a JSON reading, so it reads channel "t" of a batch too;
  // a channel named like the field ("temp") is not the same thing. A pointer of more
  // levels has no channel token: the field's own name is the channel.
  Config c = ExampleConfig();
  c.source.fields = {{"temp", "/t"}, {"amps", "/power/a"}};
  auto d = Make(c);
  std::string payload = Batch("x", {"temp", "t", "amps", "a"},
                              {fb::Sample(1000, 1, 0, 99.0), fb::Sample(1000, 1, 1, 21.5),
                               fb::Sample(1000, 1, 2, 0.5), fb::Sample(1000, 1, 3, 7.0)},
                              0, true);
  const DecodedMessage& m = d->Decode("s/a/d7/batch", payload, 0);
  ASSERT_EQ(m.reading_count, 1u);
  EXPECT_EQ(m.readings[0].field[kTemp], 21.5);
  EXPECT_EQ(m.readings[0].field[kAmps], 0.5);
  // An escaped token: "/a~1b" is the key "a/b".
  c.source.fields = {{"temp", "/a~1b"}, {"amps", "/x~0y"}};
  d = Make(c);
  payload = Batch("x", {"a/b", "x~y"}, {fb::Sample(1000, 1, 0, 1.0), fb::Sample(1000, 1, 1, 2.0)},
                  0, true);
  const DecodedMessage& m2 = d->Decode("s/a/d7/batch", payload, 0);
  ASSERT_EQ(m2.reading_count, 1u);
  EXPECT_EQ(m2.readings[0].field[kTemp], 1.0);
  EXPECT_EQ(m2.readings[0].field[kAmps], 2.0);
}

TEST(Decoder, FlatbufferFailuresRejectTheWholeBatch) {
  auto d = Make(ExampleConfig());
  std::string good = Batch("x", {"temp"}, {fb::Sample(1000, 1, 0, 1.0)}, 0, true);
  std::string truncated = good.substr(0, good.size() / 2);
  EXPECT_EQ(d->Decode("s/a/d7/batch", truncated, 0).first_reject, RejectReason::kBadFlatbuffer);
  std::string bad_channel = Batch("x", {"temp"}, {fb::Sample(1000, 1, 0, 1.0),
                                                  fb::Sample(1000, 2, 5, 1.0)}, 0, true);
  const DecodedMessage& m = d->Decode("s/a/d7/batch", bad_channel, 0);
  EXPECT_EQ(m.reading_count, 0u);
  EXPECT_EQ(m.first_reject, RejectReason::kBadFlatbuffer);
  std::string corrupt = good;
  corrupt[0] = '\x7f';  // root offset points outside the buffer
  EXPECT_EQ(d->Decode("s/a/d7/batch", corrupt, 0).first_reject, RejectReason::kBadFlatbuffer);
}

TEST(Iso8601, Forms) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseIso8601Ms("1970-01-01T00:00:00Z", &ms));
  EXPECT_EQ(ms, 0);
  ASSERT_TRUE(ParseIso8601Ms("1970-01-01 00:00:01.5", &ms));
  EXPECT_EQ(ms, 1500);
  ASSERT_TRUE(ParseIso8601Ms("2000-02-29T12:00:00-0130", &ms));
  EXPECT_EQ(ms, 951825600000 + 5400000);
  ASSERT_TRUE(ParseIso8601Ms("1969-12-31T23:59:59.9995Z", &ms));
  EXPECT_EQ(ms, 0);  // -0.5 ms truncated toward zero
  ASSERT_TRUE(ParseIso8601Ms("1969-12-31T23:59:59.999Z", &ms));
  EXPECT_EQ(ms, -1);
  EXPECT_FALSE(ParseIso8601Ms("2001-02-29T00:00:00Z", &ms));
  EXPECT_FALSE(ParseIso8601Ms("2023-11-14", &ms));
  EXPECT_FALSE(ParseIso8601Ms("2023-11-14T22:13:20Zjunk", &ms));
  EXPECT_FALSE(ParseIso8601Ms("2023-11-14T22:13:20.Z", &ms));
}

}  // namespace
}  // namespace weir
