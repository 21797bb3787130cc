// RingLayout: the per-thread cache hands every table with the same ring members the same
// layout, tables built from it place keys as before, and a digest collision cannot hand
// out another ring's layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "routing/ring_layout.h"
#include "routing/route_table.h"

namespace ringstore {
namespace {

NodeEntry Entry(int i, uint32_t vnodes = 8) {
  NodeEntry e;
  e.node_id = std::string(31, '0') + std::to_string(i);
  e.address = "n" + std::to_string(i) + ":1";
  e.ring_seed = 1000 + static_cast<uint64_t>(i);
  e.vnodes = vnodes;
  return e;
}

TEST(RingLayoutTest, IsSortedByIdAndHoldsEveryMembersPoints) {
  const NodeEntry a = Entry(1), b = Entry(2, 3);
  const auto layout = LayoutOf({&a, &b}, 1);
  ASSERT_EQ(layout->points.size(), 11u);
  EXPECT_TRUE(std::is_sorted(layout->points.begin(), layout->points.end(),
                             [](const RingLayout::Point& x, const RingLayout::Point& y) { return x.id < y.id; }));
  for (uint32_t i = 0; i < a.vnodes; ++i) {
    const ObjectId id = a.RingId(i);
    EXPECT_TRUE(std::any_of(layout->points.begin(), layout->points.end(),
                            [&](const RingLayout::Point& p) { return p.id == id && p.member == 0; }));
  }
  EXPECT_EQ(std::count_if(layout->points.begin(), layout->points.end(),
                          [](const RingLayout::Point& p) { return p.member == 1; }),
            3);
}

TEST(RingLayoutTest, EqualMembersShareALayoutAndACollidingDigestDoesNot) {
  const NodeEntry a = Entry(1), b = Entry(2), c = Entry(3);
  const auto first = LayoutOf({&a, &b}, 77);
  EXPECT_EQ(LayoutOf({&a, &b}, 77), first);  // from the cache
  // The same digest for other members (a collision): built anew, with c's points.
  const auto other = LayoutOf({&a, &c}, 77);
  EXPECT_NE(other, first);
  const ObjectId c0 = c.RingId(0);
  EXPECT_TRUE(std::any_of(other->points.begin(), other->points.end(),
                          [&](const RingLayout::Point& p) { return p.id == c0 && p.member == 1; }));
  // A changed vnode count is another ring, too.
  const NodeEntry b4 = Entry(2, 4);
  EXPECT_EQ(LayoutOf({&a, &b4}, 77)->points.size(), 12u);
}

TEST(RingLayoutTest, TwoTablesWithTheSameMembersHoldEqualRings) {
  RouteTable t1, t2;
  for (int i = 1; i <= 5; ++i) t1.Merge(Entry(i));
  for (int i = 5; i >= 1; --i) t2.Merge(Entry(i));
  ASSERT_EQ(t1.ring().size(), 40u);
  ASSERT_EQ(t2.ring().size(), 40u);
  for (size_t i = 0; i < t1.ring().size(); ++i) {
    EXPECT_EQ(t1.ring()[i].id, t2.ring()[i].id);
    EXPECT_EQ(t1.ring()[i].node->node_id, t2.ring()[i].node->node_id);
    EXPECT_EQ(t2.ring()[i].node, t2.Find(t2.ring()[i].node->node_id));  // points into its own table
  }
  EXPECT_EQ(t1.RingDigest(), t2.RingDigest());
  EXPECT_EQ(t1.Digest(), t2.Digest());
}

}  // namespace
}  // namespace ringstore
