// PlacementHistory: which rings placed a key here, noted when, and the bytes kept across
// restarts.
#include "node/placement_history.h"

#include <gtest/gtest.h>

#include "routing/placement.h"

namespace ringstore {
namespace {

NodeEntry Node(int i) {
  NodeEntry e;
  char id[33];
  std::snprintf(id, sizeof id, "%032d", i);
  e.node_id = id;
  e.address = "node" + std::to_string(i) + ":7400";
  e.ring_seed = 77 + static_cast<uint64_t>(i);
  e.vnodes = 16;
  return e;
}

RouteTable TableOf(std::initializer_list<int> nodes) {
  RouteTable t;
  for (int i : nodes) t.Merge(Node(i));
  return t;
}

// A key the first table places on node 0 and the second does not.
ObjectId MovedAway(const RouteTable& before, const RouteTable& after) {
  for (int i = 0;; ++i) {
    const ObjectId id = ObjectId::Of("ph", std::to_string(i));
    if (PlaceReplicas(before, id, 1).front()->node_id == Node(0).node_id &&
        PlaceReplicas(after, id, 1).front()->node_id != Node(0).node_id) {
      return id;
    }
  }
}

TEST(PlacementHistoryTest, APlacementCountsOnlySinceTheGivenTime) {
  const RouteTable two = TableOf({0, 1}), three = TableOf({0, 1, 2});
  const ObjectId id = MovedAway(two, three);
  PlacementHistory h;
  EXPECT_FALSE(h.PlacedSince(id, 1, Node(0).node_id, 0));
  h.Note(two, 1000);
  h.Note(three, 2000);
  EXPECT_TRUE(h.PlacedSince(id, 1, Node(0).node_id, 1000));
  EXPECT_FALSE(h.PlacedSince(id, 1, Node(0).node_id, 1001)) << "a ring noted before the time counted";
  const std::string now_owner = PlaceReplicas(three, id, 1).front()->node_id;
  const std::string never = now_owner == Node(1).node_id ? Node(2).node_id : Node(1).node_id;
  EXPECT_TRUE(h.PlacedSince(id, 1, now_owner, 0));
  EXPECT_FALSE(h.PlacedSince(id, 1, never, 0)) << "a node no ring placed it on counted";
  // Noting a ring again moves its time, not its place in the count.
  h.Note(two, 3000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(h.PlacedSince(id, 1, Node(0).node_id, 2500));
  // At N=3 on three nodes every key is on node 0.
  EXPECT_TRUE(h.PlacedSince(id, 3, Node(0).node_id, 2000));
}

TEST(PlacementHistoryTest, KeepsTheMostRecentRings) {
  PlacementHistory h;
  const RouteTable first = TableOf({0});
  const RouteTable second = TableOf({0, 1});
  const ObjectId id = MovedAway(first, second);
  h.Note(first, 10);
  for (int i = 1; i <= static_cast<int>(PlacementHistory::kMaxRings); ++i) h.Note(TableOf({1, i + 1}), 10 + i);
  EXPECT_EQ(h.size(), PlacementHistory::kMaxRings);
  EXPECT_FALSE(h.PlacedSince(id, 1, Node(0).node_id, 0)) << "the oldest ring was kept past the bound";
}

TEST(PlacementHistoryTest, RingsTooOldToVouchMakeRoomBeforeTheBoundDoes) {
  // Ten ring changes within the horizon keep the first ring; rings noted before the time to
  // forget go, however few they are.
  const RouteTable first = TableOf({0}), second = TableOf({0, 1});
  const ObjectId id = MovedAway(first, second);
  PlacementHistory h;
  h.Note(first, 1000, 0);
  for (int i = 1; i <= 10; ++i) h.Note(TableOf({1, i + 1}), 1000 + i, 0);
  EXPECT_TRUE(h.PlacedSince(id, 1, Node(0).node_id, 1000)) << "a ring inside the horizon was dropped";
  h.Note(second, 5000, 1001);
  EXPECT_FALSE(h.PlacedSince(id, 1, Node(0).node_id, 0)) << "a ring before the time to forget was kept";
  EXPECT_EQ(h.size(), 11u);
}

TEST(PlacementHistoryTest, BytesRoundTripAndDamagedBytesGiveNothing) {
  const RouteTable two = TableOf({0, 1}), three = TableOf({0, 1, 2});
  const ObjectId id = MovedAway(two, three);
  PlacementHistory h;
  h.Note(two, 1'700'000'000'000);
  h.Note(three, 1'700'000'060'000);
  const std::string bytes = h.Encode();
  PlacementHistory back = PlacementHistory::Decode(bytes);
  EXPECT_EQ(back.size(), 2u);
  EXPECT_TRUE(back.PlacedSince(id, 1, Node(0).node_id, 1'700'000'000'000));
  EXPECT_FALSE(back.PlacedSince(id, 1, Node(0).node_id, 1'700'000'000'001));
  const std::string now_owner = PlaceReplicas(three, id, 1).front()->node_id;
  EXPECT_TRUE(back.PlacedSince(id, 1, now_owner, 1'700'000'060'000)) << "the newer ring lost its time";
  EXPECT_EQ(PlacementHistory::Decode("").size(), 0u);
  EXPECT_EQ(PlacementHistory::Decode(bytes.substr(0, bytes.size() - 1)).size(), 0u) << "a cut file was used";
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  EXPECT_EQ(PlacementHistory::Decode(flipped).size(), 0u) << "a damaged file was used";
  EXPECT_EQ(PlacementHistory::Decode("not a history at all").size(), 0u);
}

TEST(PlacementHistoryTest, APartialViewOfTheRingIsNotKnown) {
  // A node restarted without --join holds a table of itself: every key seems placed on it.
  PlacementHistory h;
  EXPECT_TRUE(h.Knows(TableOf({0}))) << "a first ring must be noted";
  h.Note(TableOf({0, 1, 2}), 1000);
  EXPECT_FALSE(h.Knows(TableOf({0})));
  EXPECT_FALSE(h.Knows(TableOf({0, 1})));
  EXPECT_TRUE(h.Knows(TableOf({0, 1, 2, 3}))) << "a join";
  RouteTable replaced = TableOf({0, 1, 3});
  NodeEntry left = Node(2);
  left.state = NodeState::kLeft;
  left.incarnation = 1;
  replaced.Merge(left);
  EXPECT_TRUE(h.Knows(replaced)) << "a node replaced (Left) is known";
}

TEST(PlacementHistoryTest, TimesAheadOfTheClockAreBroughtBack) {
  // Rings noted while the wall clock ran ahead must not vouch until real time catches up.
  const RouteTable two = TableOf({0, 1}), three = TableOf({0, 1, 2});
  const ObjectId id = MovedAway(two, three);
  PlacementHistory h;
  h.Note(two, 9'000'000);
  h.Note(three, 5'000);  // the clock was stepped back
  EXPECT_FALSE(h.PlacedSince(id, 1, Node(0).node_id, 5'001));
  EXPECT_TRUE(h.PlacedSince(id, 1, Node(0).node_id, 5'000));
  PlacementHistory loaded;
  loaded.Note(two, 9'000'000);
  PlacementHistory back = PlacementHistory::Decode(loaded.Encode());
  back.NotAfter(7'000);
  EXPECT_FALSE(back.PlacedSince(id, 1, Node(0).node_id, 7'001));
}

}  // namespace
}  // namespace ringstore
