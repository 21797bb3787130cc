#include "storage/range_digest.h"

#include <gtest/gtest.h>

#include <random>

namespace ringstore {
namespace {

ObjectId Key(int i) { return ObjectId::Of("digest-test", std::to_string(i)); }
RecordMeta Meta(uint64_t ts) { return Record::Value(ts, "v" + std::to_string(ts)).meta; }

TEST(RangeDigestTest, LeavesCoverTheIdSpaceInOrder) {
  EXPECT_EQ(RangeDigest::LeafOf(ObjectId::Min()), 0u);
  EXPECT_EQ(RangeDigest::LeafOf(ObjectId::Max()), RangeDigest::kLeaves - 1);
  for (uint32_t leaf : {0u, 1u, 77u, 4094u}) {
    EXPECT_EQ(RangeDigest::LeafOf(RangeDigest::LeafBegin(leaf)), leaf);
    EXPECT_EQ(RangeDigest::LeafEnd(leaf), RangeDigest::LeafBegin(leaf + 1));
    EXPECT_LT(RangeDigest::LeafBegin(leaf), RangeDigest::LeafEnd(leaf));
  }
  for (int i = 0; i < 1000; ++i) {
    const ObjectId id = Key(i);
    const uint32_t leaf = RangeDigest::LeafOf(id);
    EXPECT_LE(RangeDigest::LeafBegin(leaf), id);
    EXPECT_LT(id, RangeDigest::LeafEnd(leaf));
  }
}

TEST(RangeDigestTest, EqualSetsGiveEqualTreesInAnyOrderAndOneChangeIsFoundByDescent) {
  std::vector<int> order(2000);
  for (int i = 0; i < 2000; ++i) order[i] = i;
  RangeDigest a, b;
  for (int i : order) a.Add(Key(i), Meta(10));
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  for (int i : order) b.Add(Key(i), Meta(10));
  a.Finish();
  b.Finish();
  EXPECT_EQ(a.Root(), b.Root());

  // One newer version: the descent from the root finds exactly its leaf.
  RangeDigest c;
  for (int i = 0; i < 2000; ++i) c.Add(Key(i), Meta(i == 1234 ? 11 : 10));
  c.Finish();
  EXPECT_NE(a.Root(), c.Root());
  std::vector<uint32_t> frontier = {0};
  for (uint32_t level = 0; level < RangeDigest::kDepth; ++level) {
    std::vector<uint32_t> next;
    for (uint32_t idx : frontier) {
      const auto x = a.Children(level, idx), y = c.Children(level, idx);
      for (uint32_t k = 0; k < RangeDigest::kFanout; ++k) {
        if (x[k] != y[k]) next.push_back(idx * RangeDigest::kFanout + k);
      }
    }
    ASSERT_EQ(next.size(), 1u) << "level " << level;
    frontier = next;
  }
  EXPECT_EQ(frontier[0], RangeDigest::LeafOf(Key(1234)));
  // A missing record differs too; the empty tree is a fixed value.
  RangeDigest d, e1, e2;
  for (int i = 0; i < 1999; ++i) d.Add(Key(i), Meta(10));
  d.Finish();
  e1.Finish();
  e2.Finish();
  EXPECT_NE(d.Root(), a.Root());
  EXPECT_EQ(e1.Root(), e2.Root());
  EXPECT_NE(e1.Root(), a.Root());
}

}  // namespace
}  // namespace ringstore
