#include "storage/record_format.h"

#include <gtest/gtest.h>

namespace ringstore {
namespace {

TEST(RecordFormatTest, RoundTripsValuesAndTombstones) {
  const Record v = Record::Value(MakeTimestamp(123, 4), "hello world");
  auto back = DecodeStoredRecord(EncodeStoredRecord(v));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->value, "hello world");
  EXPECT_EQ(back->meta.ts, v.meta.ts);
  EXPECT_EQ(back->meta.checksum, v.meta.checksum);
  EXPECT_FALSE(back->meta.tombstone());

  auto t = DecodeStoredRecord(EncodeStoredRecord(Record::Tombstone(77)));
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->meta.tombstone());
  EXPECT_EQ(t->meta.size, 0u);
  EXPECT_EQ(EncodeStoredRecord(v).size(), kRecordHeaderBytes + 11);
}

TEST(RecordFormatTest, TheReplicaCountSurvivesStorageAndIsPartOfTheVersion) {
  Record v = Record::Value(MakeTimestamp(123, 4), "hello");
  v.meta.set_replicas(2);
  EXPECT_TRUE(v.meta.flags & kRecordReplicasMask);
  auto back = DecodeStoredRecord(EncodeStoredRecord(v));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->meta.replicas(), 2u);
  EXPECT_EQ(back->meta.flags, v.meta.flags);
  Record t = Record::Tombstone(9);
  t.meta.set_replicas(16);
  auto tb = DecodeStoredRecord(EncodeStoredRecord(t));
  ASSERT_TRUE(tb.ok());
  EXPECT_TRUE(tb->meta.tombstone());
  EXPECT_EQ(tb->meta.replicas(), 16u);
  // A record written before the count existed (byte 3 zero) reads as "not recorded".
  EXPECT_EQ(DecodeStoredRecord(EncodeStoredRecord(Record::Value(1, "x")))->meta.replicas(), 0u);
}

TEST(RecordFormatTest, EverySingleBitFlipIsDetected) {
  const std::string good = EncodeStoredRecord(Record::Value(MakeTimestamp(99, 1), "0123456789abcdef"));
  for (size_t byte = 0; byte < good.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[byte] ^= static_cast<char>(1 << bit);
      auto r = DecodeStoredRecord(bad);
      ASSERT_FALSE(r.ok()) << "flip of byte " << byte << " bit " << bit << " went unnoticed";
      EXPECT_TRUE(r.status().IsCorruption());
    }
  }
}

TEST(RecordFormatTest, TruncationAndExtensionAreDetected) {
  const std::string good = EncodeStoredRecord(Record::Value(5, "value"));
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_FALSE(DecodeStoredRecord(good.substr(0, len)).ok()) << "truncated to " << len;
  }
  EXPECT_FALSE(DecodeStoredRecord(good + "x").ok());
}

TEST(RecordFormatTest, LastWriterWinsOrderIsTotal) {
  const Record a = Record::Value(10, "a"), b = Record::Value(11, "b"), c = Record::Value(10, "c");
  EXPECT_TRUE(Supersedes(b.meta, a.meta));
  EXPECT_FALSE(Supersedes(a.meta, b.meta));
  // Same timestamp: exactly one of the two wins, on every replica.
  EXPECT_NE(Supersedes(a.meta, c.meta), Supersedes(c.meta, a.meta));
  EXPECT_FALSE(Supersedes(a.meta, a.meta));
}

}  // namespace
}  // namespace ringstore
