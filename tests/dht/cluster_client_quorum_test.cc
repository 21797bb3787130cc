// What counts toward the cluster client's W and R: each process once, and a fallback's answer
// only when it holds a record (docs/architecture.md §4.2).
#include <gtest/gtest.h>

#include "routing/placement.h"
#include "tests/dht/cluster_client_fixture.h"

namespace ringstore {
namespace {

using testing::ClusterClientTest;
using testing::Ring;

class ClusterClientQuorumTest : public ClusterClientTest {
 protected:
  void Kill(const std::string& address) {
    Ring::Node* n = ring_.ByAddress(address);
    n->transport->Crash();
    n->membership->Stop();
  }
};

TEST_F(ClusterClientQuorumTest, AFallbackThatHoldsNothingDoesNotCompleteAReadQuorum) {
  // v1 on the three replicas, then v2 on the first two only (a W=2 write). With those two
  // dead, an R=2 read has one replica left: C's v1 and a fallback's "nothing here" (or its
  // relay of C's v1) must not make two answers, or the read returns v1 although v2 was
  // acknowledged (G3). It fails instead.
  const ObjectId id = ObjectId::Of("quorum", "fallback");
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(id, "v1", q_, cb); }).ok());
  ring_.Pump(std::chrono::milliseconds(100));
  auto placed = PlaceReplicas(client_.table(), id, 3);
  const Timestamp newer = MakeTimestamp(static_cast<uint64_t>(ring_.clock.WallMicros() / 1000) + 10, 0);
  for (int i = 0; i < 2; ++i) {
    ring_.ByAddress(placed[i]->address)->store->Apply({WriteOp{id, Record::Value(newer, "v2")}}, [](Status) {});
  }
  ring_.net.RunUntilIdle();
  Kill(placed[0]->address);
  Kill(placed[1]->address);
  ring_.Pump(std::chrono::seconds(3));  // the ring marks them down: a fallback forwards to C alone
  auto r = Call<Record>([&](auto cb) { client_.Get(id, q_, cb); });
  ASSERT_FALSE(r.ok()) << "an R=2 read with one replica alive returned '" << r->value << "'";
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  auto m = Call<RecordMeta>([&](auto cb) { client_.Stat(id, q_, cb); });
  EXPECT_EQ(m.status().code(), Code::kUnavailable) << "a STAT counted a fallback too";
  // A fallback that holds a record does count: the third replica down as well, a write at
  // W=2 lands on fallbacks, and reads back from them.
  const ObjectId other = ObjectId::Of("quorum", "on fallbacks");
  auto other_placed = PlaceReplicas(client_.table(), other, 3);
  std::vector<std::string> dead = {placed[0]->address, placed[1]->address};
  size_t alive_replicas = 0;
  for (const NodeEntry* e : other_placed) {
    alive_replicas += std::find(dead.begin(), dead.end(), e->address) == dead.end() ? 1 : 0;
  }
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(other, "held", q_, cb); }).ok());
  auto back = Call<Record>([&](auto cb) { client_.Get(other, q_, cb); });
  ASSERT_TRUE(back.ok()) << back.status().ToString() << " (" << alive_replicas << " replicas alive)";
  EXPECT_EQ(back->value, "held");
}

TEST_F(ClusterClientQuorumTest, OneProcessNeverAcknowledgesAWriteTwice) {
  // node2's address also belongs to a down entry of another identity (the node restarted
  // there with a new one). For a key placed on that ghost before node2, the address came
  // twice in the preference list, and with the other nodes failing, a W=3 write was
  // acknowledged by two processes, node2 counted twice.
  NodeEntry ghost;
  ghost.node_id = std::string(32, 'f');
  ghost.address = "node2:7400";
  ghost.ring_seed = 424242;
  ghost.vnodes = 64;
  ghost.incarnation = 1;
  ghost.state = NodeState::kDown;
  ring_.nodes[1]->membership->MergeForTest(ghost);
  ASSERT_NE(ring_.nodes[1]->membership->table().Find(ghost.node_id), nullptr);
  ring_.Pump(std::chrono::seconds(2));  // gossip takes it to every member
  std::optional<Status> refreshed;
  client_.Refresh([&](Status s) { refreshed = s; });
  ring_.Pump(std::chrono::milliseconds(50));
  ASSERT_TRUE(refreshed && refreshed->ok());
  const NodeEntry* in_table = client_.table().Find(ghost.node_id);
  ASSERT_NE(in_table, nullptr);
  ASSERT_EQ(in_table->state, NodeState::kDown);
  // A key whose first three places hold the ghost, ahead of node2's own entry.
  ObjectId id;
  for (int i = 0;; ++i) {
    id = ObjectId::Of("quorum", "ghost " + std::to_string(i));
    auto order = PlaceReplicas(client_.table(), id, 3 + 3);
    size_t ghost_at = order.size(), node2_at = order.size();
    for (size_t k = 0; k < order.size(); ++k) {
      if (order[k]->node_id == ghost.node_id) ghost_at = k;
      if (order[k]->address == ghost.address && order[k]->node_id != ghost.node_id) node2_at = k;
    }
    if (ghost_at < 3 && ghost_at < node2_at) break;
  }
  // Everyone but node2 and one other node dies.
  std::string keep;
  for (const NodeEntry* e : PlaceReplicas(client_.table(), id, 3)) {
    if (e->address != ghost.address) keep = e->address;
  }
  ASSERT_FALSE(keep.empty());
  for (auto& n : ring_.nodes) {
    if (n->address != keep && n->address != ghost.address) Kill(n->address);
  }
  auto a = Call<Ack>([&](auto cb) { client_.Put(id, "w3", Quorum{3, 3, 1}, cb); });
  EXPECT_EQ(Copies(id, "w3"), 2);
  ASSERT_FALSE(a.ok()) << "a W=3 write was acknowledged with two processes holding it";
  EXPECT_EQ(a.status().code(), Code::kUnavailable) << a.status().ToString();
}

}  // namespace
}  // namespace ringstore
