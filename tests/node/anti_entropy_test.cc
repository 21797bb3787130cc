// AntiEntropy over a whole ring in one process (tests/support/fake_ring.h): a node that joins a
// loaded ring fills itself from its peers, compared at the same time, and asks each record
// of one peer only.
#include "node/anti_entropy.h"

#include <gtest/gtest.h>

#include "routing/placement.h"
#include "tests/support/fake_ring.h"

namespace ringstore {
namespace {

using testing::Ring;

TEST(AntiEntropyTest, AJoinerPullsEachRecordOnceFromPeersComparedAtOnce) {
  Ring ring(3, 11);
  ring.Pump(std::chrono::seconds(3));
  ASSERT_TRUE(ring.Converged());
  // 400 records at N=3: on all three nodes.
  std::vector<ObjectId> ids;
  for (int i = 0; i < 400; ++i) {
    ids.push_back(ObjectId::Of("ae", std::to_string(i)));
    Record r = Record::Value(MakeTimestamp(1000 + static_cast<uint64_t>(i), 0), "value " + std::to_string(i));
    r.meta.set_replicas(3);
    for (auto& n : ring.nodes) n->store->Apply({WriteOp{ids.back(), r}}, [](Status s) { ASSERT_TRUE(s.ok()); });
  }
  ring.Pump(std::chrono::milliseconds(10));
  ring.AddNode(3);
  ring.Pump(std::chrono::seconds(3));
  ASSERT_TRUE(ring.Converged());

  AntiEntropyOptions o;
  o.replicas = 3;
  o.first_round = o.ring_settle = o.busy_pause = std::chrono::milliseconds(200);
  o.interval = std::chrono::seconds(60);
  o.scrub_bytes_per_s = 0;
  o.rate_bytes_per_s = 0;
  o.max_in_flight = 4;  // pulls stay in flight long enough for the peers' listings to overlap
  std::vector<std::unique_ptr<AntiEntropy>> repair;
  for (auto& n : ring.nodes) {
    repair.push_back(std::make_unique<AntiEntropy>(o, n->membership->self().node_id, ring.clock, *n->store, *n->peers,
                                                   *n->membership, testing::NullLog()));
    n->core->AttachRepair(repair.back().get());
    repair.back()->Start();
  }
  AntiEntropy& joiner = *repair.back();
  for (int i = 0; i < 100 && !joiner.synced(); ++i) ring.Pump(std::chrono::milliseconds(100));
  ASSERT_TRUE(joiner.synced());

  const std::string self = ring.nodes[3]->membership->self().node_id;
  size_t placed = 0;
  for (const ObjectId& id : ids) {
    bool here = false;
    for (const NodeEntry* e : PlaceReplicas(ring.nodes[3]->membership->table(), id, 3)) here |= e->node_id == self;
    placed += here ? 1 : 0;
    EXPECT_EQ(ring.nodes[3]->store->MutableRecordForTest(id) != nullptr, here) << id.Hex();
  }
  ASSERT_GT(placed, 200u);  // about three quarters
  EXPECT_EQ(joiner.status().pulled_records, placed) << "a record was pulled from more than one peer";
  for (auto& n : ring.nodes) n->core->AttachRepair(nullptr);
}

}  // namespace
}  // namespace ringstore
