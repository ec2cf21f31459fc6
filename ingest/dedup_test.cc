#include "ingest/dedup.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(SeqWindow, HighAndMarkedSeqsAreDuplicates) {
  SeqWindow w;
  EXPECT_EQ(w.Check(10), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(10), DedupVerdict::kDuplicate);  // seq == H
  EXPECT_EQ(w.Check(12), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(10), DedupVerdict::kDuplicate);  // old H, now marked
  EXPECT_EQ(w.Check(11), DedupVerdict::kAccepted);   // a gap filled
  EXPECT_EQ(w.Check(11), DedupVerdict::kDuplicate);
  EXPECT_EQ(w.Check(12), DedupVerdict::kDuplicate);
}

TEST(SeqWindow, WindowEdgeIsHMinus1024) {
  SeqWindow w;
  EXPECT_EQ(w.Check(2000), DedupVerdict::kAccepted);
  // H-1024 = 976 is the lowest checked seq; 975 is below it.
  EXPECT_EQ(w.Check(976), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(976), DedupVerdict::kDuplicate);
  EXPECT_EQ(w.Check(975), DedupVerdict::kAcceptedUnchecked);
  EXPECT_EQ(w.Check(975), DedupVerdict::kAcceptedUnchecked);  // never marked
  EXPECT_EQ(w.Check(1), DedupVerdict::kAcceptedUnchecked);
}

TEST(SeqWindow, MarksSurviveShifts) {
  SeqWindow w;
  for (int64_t s = 0; s < 3000; s += 3) ASSERT_EQ(w.Check(s), DedupVerdict::kAccepted) << s;
  // H = 2997; marked within [1973, 2996]: multiples of 3.
  EXPECT_EQ(w.Check(2994), DedupVerdict::kDuplicate);
  EXPECT_EQ(w.Check(1974), DedupVerdict::kDuplicate);  // 1974 = 3*658, inside window
  EXPECT_EQ(w.Check(1975), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(1971), DedupVerdict::kAcceptedUnchecked);  // below 1973
  // A jump of more than the window clears it: old seqs become unchecked.
  EXPECT_EQ(w.Check(10000), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(2997), DedupVerdict::kAcceptedUnchecked);
  EXPECT_EQ(w.Check(9999), DedupVerdict::kAccepted);
  // A jump of exactly 1024 keeps the old H at the window's lowest bit.
  EXPECT_EQ(w.Check(11024), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(10000), DedupVerdict::kDuplicate);
  EXPECT_EQ(w.Check(9999), DedupVerdict::kAcceptedUnchecked);
}

TEST(SeqWindow, ShiftAcrossWordBoundaries) {
  for (int64_t jump : {1, 63, 64, 65, 127, 128, 500, 1023}) {
    SeqWindow w;
    ASSERT_EQ(w.Check(100), DedupVerdict::kAccepted);
    ASSERT_EQ(w.Check(99), DedupVerdict::kAccepted);
    ASSERT_EQ(w.Check(100 + jump), DedupVerdict::kAccepted);
    EXPECT_EQ(w.Check(100), DedupVerdict::kDuplicate) << jump;
    EXPECT_EQ(w.Check(99), jump + 1 <= 1024 ? DedupVerdict::kDuplicate
                                            : DedupVerdict::kAcceptedUnchecked)
        << jump;
    EXPECT_EQ(w.Check(98), jump + 2 <= 1024 ? DedupVerdict::kAccepted
                                            : DedupVerdict::kAcceptedUnchecked)
        << jump;
  }
}

TEST(SeqWindow, ExtremeSeqsDoNotOverflow) {
  SeqWindow w;
  EXPECT_EQ(w.Check(INT64_MIN), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(INT64_MAX), DedupVerdict::kAccepted);
  EXPECT_EQ(w.Check(INT64_MIN), DedupVerdict::kAcceptedUnchecked);
  EXPECT_EQ(w.Check(INT64_MAX - 1), DedupVerdict::kAccepted);
}

TEST(SeqWindow, BlobRoundTrip) {
  SeqWindow w;
  for (int64_t s : {5, 7, 1000, 990, 1500}) w.Check(s);
  std::string blob;
  w.AppendBlob(&blob);
  EXPECT_EQ(blob.size(), SeqWindow::kBlobBytes);
  SeqWindow r;
  ASSERT_TRUE(r.FromBlob(blob).ok());
  EXPECT_EQ(r.high(), 1500);
  EXPECT_EQ(r.Check(1500), DedupVerdict::kDuplicate);
  EXPECT_EQ(r.Check(1000), DedupVerdict::kDuplicate);
  EXPECT_EQ(r.Check(990), DedupVerdict::kDuplicate);
  EXPECT_EQ(r.Check(995), DedupVerdict::kAccepted);
  EXPECT_EQ(r.Check(7), DedupVerdict::kAcceptedUnchecked);  // below 1500-1024
  EXPECT_FALSE(r.FromBlob("xyz").ok());
}

TEST(Dedup, PerDeviceAndBounded) {
  Dedup d(2);
  EXPECT_EQ(d.Check("a", true, 1), DedupVerdict::kAccepted);
  EXPECT_EQ(d.Check("b", true, 1), DedupVerdict::kAccepted);  // other device, own window
  EXPECT_EQ(d.Check("a", true, 1), DedupVerdict::kDuplicate);
  EXPECT_EQ(d.Check("a", false, 1), DedupVerdict::kAccepted);  // no seq: nothing to check
  EXPECT_EQ(d.Check("c", false, 0), DedupVerdict::kTooManyDevices);
  EXPECT_FALSE(d.Touch("c"));
  EXPECT_TRUE(d.Touch("a"));
  EXPECT_EQ(d.device_count(), 2u);
}

TEST(Dedup, CollectChangesAndRestore) {
  Dedup d(10);
  d.Check("a", true, 5);
  d.Check("b", false, 0);  // no seq: nothing to checkpoint
  d.Check("a", true, 6);
  std::vector<std::pair<std::string, std::string>> rows;
  d.CollectChanges([&](std::string_view dev, std::string_view blob) {
    rows.emplace_back(std::string(dev), std::string(blob));
  });
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].first, "a");
  int again = 0;
  d.CollectChanges([&](std::string_view, std::string_view) { ++again; });
  EXPECT_EQ(again, 0);

  Dedup restored(10);
  ASSERT_TRUE(restored.Restore(rows[0].first, rows[0].second).ok());
  EXPECT_EQ(restored.Check("a", true, 5), DedupVerdict::kDuplicate);
  EXPECT_EQ(restored.Check("a", true, 6), DedupVerdict::kDuplicate);
  EXPECT_EQ(restored.Check("a", true, 7), DedupVerdict::kAccepted);
}

}  // namespace
}  // namespace weir
