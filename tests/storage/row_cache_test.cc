#include "storage/row_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace ringstore {
namespace {

ObjectId Id(int i) { return ObjectId::Of("t", std::to_string(i)); }

TEST(RowCacheTest, FindsWhatWasInsertedAndForgetsWhatWasErased) {
  RowCache c(1 << 20, 1024);
  EXPECT_EQ(c.Find(Id(1)), nullptr);
  c.Insert(Id(1), Record::Value(7, "one"));
  const Record* r = c.Find(Id(1));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->value, "one");
  EXPECT_EQ(r->meta.ts, 7u);
  c.Insert(Id(1), Record::Value(8, "uno"));  // replaces
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.Find(Id(1))->value, "uno");
  EXPECT_EQ(c.bytes(), 3 + RowCache::kEntryOverheadBytes);
  c.Erase(Id(1));
  EXPECT_EQ(c.Find(Id(1)), nullptr);
  EXPECT_EQ(c.bytes(), 0u);
  c.Erase(Id(1));  // erasing a missing id is harmless
}

TEST(RowCacheTest, EvictsTheLeastRecentlyUsedToStayWithinBudget) {
  const std::string v(100, 'x');
  const size_t cost = v.size() + RowCache::kEntryOverheadBytes;
  RowCache c(3 * cost, 1024);
  for (int i = 0; i < 3; ++i) c.Insert(Id(i), Record::Value(1, v));
  ASSERT_NE(c.Find(Id(0)), nullptr);  // 0 is now the most recent; 1 the least
  c.Insert(Id(3), Record::Value(1, v));
  EXPECT_EQ(c.Find(Id(1)), nullptr);
  EXPECT_NE(c.Find(Id(0)), nullptr);
  EXPECT_NE(c.Find(Id(2)), nullptr);
  EXPECT_NE(c.Find(Id(3)), nullptr);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.bytes(), 3 * cost);
}

TEST(RowCacheTest, LeavesOutLargeValuesAndKeepsTombstones) {
  RowCache c(1 << 20, 16);
  c.Insert(Id(1), Record::Value(1, std::string(17, 'x')));
  EXPECT_EQ(c.Find(Id(1)), nullptr);
  c.Insert(Id(1), Record::Value(1, std::string(16, 'x')));
  EXPECT_NE(c.Find(Id(1)), nullptr);
  c.Insert(Id(1), Record::Value(2, std::string(17, 'x')));  // a large newer value drops the old
  EXPECT_EQ(c.Find(Id(1)), nullptr);
  c.Insert(Id(2), Record::Tombstone(3));
  ASSERT_NE(c.Find(Id(2)), nullptr);
  EXPECT_TRUE(c.Find(Id(2))->meta.tombstone());
  RowCache off(0, 16);  // a zero budget caches nothing
  off.Insert(Id(1), Record::Value(1, "x"));
  EXPECT_EQ(off.Find(Id(1)), nullptr);
  c.Clear();
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.bytes(), 0u);
}

}  // namespace
}  // namespace ringstore
