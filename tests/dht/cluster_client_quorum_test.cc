// What counts toward the cluster client's W and R: each process once, a fallback's answer
// only when it holds a record, and a relayed record once, for the node it came from
// (docs/architecture.md §4.2).
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
  // node2's address also belongs to a down entry of another identity (as when the node
  // restarted there with a new one); the client's table has both.
  void AddGhostOfNode2() {
    ghost_.node_id = std::string(32, 'f');
    ghost_.address = "node2:7400";
    ghost_.ring_seed = 424242;
    ghost_.vnodes = 64;
    ghost_.incarnation = 1;
    ghost_.state = NodeState::kDown;
    ring_.nodes[1]->membership->MergeForTest(ghost_);
    ASSERT_NE(ring_.nodes[1]->membership->table().Find(ghost_.node_id), nullptr);
    ring_.Pump(std::chrono::seconds(2));  // gossip takes it to every member
    std::optional<Status> refreshed;
    client_.Refresh([&](Status s) { refreshed = s; });
    ring_.Pump(std::chrono::milliseconds(50));
    ASSERT_TRUE(refreshed && refreshed->ok());
    const NodeEntry* in_table = client_.table().Find(ghost_.node_id);
    ASSERT_NE(in_table, nullptr);
    ASSERT_EQ(in_table->state, NodeState::kDown);
  }
  // A key whose placement (over n + 3 places) puts the ghost and node2's own entry where pick
  // wants them: pick(ghost's place, node2's place).
  ObjectId KeyWhere(const std::function<bool(size_t, size_t)>& pick) {
    for (int i = 0;; ++i) {
      const ObjectId id = ObjectId::Of("quorum", "ghost " + std::to_string(i));
      auto order = PlaceReplicas(client_.table(), id, 3 + 3);
      size_t ghost_at = order.size(), node2_at = order.size();
      for (size_t k = 0; k < order.size(); ++k) {
        if (order[k]->node_id == ghost_.node_id) ghost_at = k;
        if (order[k]->address == ghost_.address && order[k]->node_id != ghost_.node_id) node2_at = k;
      }
      if (pick(ghost_at, node2_at)) return id;
    }
  }
  NodeEntry ghost_;
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
  // A fallback that holds a record does count: for another key with the same two replicas
  // dead, a write at W=2 lands on its third replica and a fallback, and reads back.
  const std::vector<std::string> dead = {placed[0]->address, placed[1]->address};
  ObjectId other;
  for (int i = 0;; ++i) {
    other = ObjectId::Of("quorum", "on a fallback " + std::to_string(i));
    size_t on_dead = 0;
    for (const NodeEntry* e : PlaceReplicas(client_.table(), other, 3)) {
      on_dead += std::find(dead.begin(), dead.end(), e->address) != dead.end() ? 1 : 0;
    }
    if (on_dead == 2) break;
  }
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(other, "held", q_, cb); }).ok());
  auto back = Call<Record>([&](auto cb) { client_.Get(other, q_, cb); });
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->value, "held");
}

TEST_F(ClusterClientQuorumTest, OneProcessNeverAcknowledgesAWriteTwice) {
  // For a key placed on the ghost before node2, node2's address came twice in the preference
  // list, and with the other nodes failing, a W=3 write was acknowledged by two processes,
  // node2 counted twice.
  ASSERT_NO_FATAL_FAILURE(AddGhostOfNode2());
  const ObjectId id = KeyWhere([](size_t ghost, size_t node2) { return ghost < 3 && ghost < node2; });
  // Everyone but node2 and one other node dies.
  std::string keep;
  for (const NodeEntry* e : PlaceReplicas(client_.table(), id, 3)) {
    if (e->address != ghost_.address) keep = e->address;
  }
  ASSERT_FALSE(keep.empty());
  for (auto& n : ring_.nodes) {
    if (n->address != keep && n->address != ghost_.address) Kill(n->address);
  }
  auto a = Call<Ack>([&](auto cb) { client_.Put(id, "w3", Quorum{3, 3, 1}, cb); });
  EXPECT_EQ(Copies(id, "w3"), 2);
  ASSERT_FALSE(a.ok()) << "a W=3 write was acknowledged with two processes holding it";
  EXPECT_EQ(a.status().code(), Code::kUnavailable) << a.status().ToString();
}

TEST_F(ClusterClientQuorumTest, TwoEntriesOfOneAddressLeaveASlotForAFallback) {
  // node2 first, then the ghost at the same address: the ghost's place among the three was
  // dropped with nothing in its stead, and a W=3 write on a healthy ring failed.
  ASSERT_NO_FATAL_FAILURE(AddGhostOfNode2());
  const ObjectId id = KeyWhere([](size_t ghost, size_t node2) { return ghost < 3 && node2 < ghost; });
  auto a = Call<Ack>([&](auto cb) { client_.Put(id, "three", Quorum{3, 3, 1}, cb); });
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Copies(id, "three"), 3);
}

TEST_F(ClusterClientQuorumTest, AProcessAtAGhostsAddressIsAFallbackNotAReplica) {
  // The ghost is one of the key's replicas and node2 is not: node2's process is only a
  // fallback, and its NotFound must not stand in for the ghost's answer. v1 on replica A,
  // v2 on replica B, B dies: an R=2 read must not return v1.
  ASSERT_NO_FATAL_FAILURE(AddGhostOfNode2());
  const ObjectId id = KeyWhere([](size_t ghost, size_t node2) { return ghost < 3 && node2 >= 3 && node2 < 6; });
  std::vector<std::string> others;
  for (const NodeEntry* e : PlaceReplicas(client_.table(), id, 3)) {
    if (e->node_id != ghost_.node_id) others.push_back(e->address);
  }
  ASSERT_EQ(others.size(), 2u);
  const int64_t now_ms = ring_.clock.WallMicros() / 1000;
  ring_.ByAddress(others[0])->store->Apply({WriteOp{id, Record::Value(MakeTimestamp(now_ms, 0), "v1")}}, [](Status) {});
  ring_.ByAddress(others[1])->store->Apply({WriteOp{id, Record::Value(MakeTimestamp(now_ms + 10, 0), "v2")}}, [](Status) {});
  ring_.net.RunUntilIdle();
  Kill(others[1]);
  auto r = Call<Record>([&](auto cb) { client_.Get(id, q_, cb); });
  ASSERT_FALSE(r.ok()) << "returned '" << r->value << "' with v2 acknowledged";
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST_F(ClusterClientQuorumTest, ARelayedRecordCountsForTheNodeItCameFromOnce) {
  // Replica X's table has nodes the client's has not seen (joins X heard of first), which put
  // X outside the key's window: X lacks the key, so it forwards the read down the window and
  // relays the first record it finds, replica A's old v1. A answers the client with v1 too.
  // Counted as two answers, an R=2 read returned v1 although replica C holds the acknowledged
  // v2 (G3); counted as one, the read asks C.
  std::vector<NodeEntry> joiners;
  for (int k = 0; k < 8; ++k) {
    NodeEntry e;
    e.node_id = std::string(31, 'j') + static_cast<char>('a' + k);
    e.address = "joiner" + std::to_string(k) + ":7400";  // nothing listens there
    e.ring_seed = 9000 + static_cast<uint64_t>(k);
    e.vnodes = 256;
    e.incarnation = 1;
    e.state = NodeState::kUp;
    joiners.push_back(e);
  }
  // A key whose replicas in the client's table are A, X, C, and which X's table, with the
  // joiners, puts outside X's window (rank >= 3 + kRouteSlack) but with A inside it, before C.
  RouteTable wider = client_.table();
  for (const NodeEntry& e : joiners) wider.Merge(e);
  ObjectId id;
  std::string a, x, c;
  for (int i = 0;; ++i) {
    ASSERT_LT(i, 200000) << "no key fits";
    id = ObjectId::Of("quorum", "relayed " + std::to_string(i));
    auto placed = PlaceReplicas(client_.table(), id, 3);
    a = placed[0]->address, x = placed[1]->address, c = placed[2]->address;
    auto order = PlaceReplicas(wider, id, 3 + kRouteSlack);
    int a_at = -1, c_at = -1, x_at = -1;
    for (size_t k = 0; k < order.size(); ++k) {
      if (order[k]->address == a) a_at = static_cast<int>(k);
      if (order[k]->address == c) c_at = static_cast<int>(k);
      if (order[k]->address == x) x_at = static_cast<int>(k);
    }
    if (x_at < 0 && a_at >= 0 && (c_at < 0 || a_at < c_at)) break;
  }
  for (const NodeEntry& e : joiners) ring_.ByAddress(x)->membership->MergeForTest(e);
  const int64_t now_ms = ring_.clock.WallMicros() / 1000;
  ring_.ByAddress(a)->store->Apply({WriteOp{id, Record::Value(MakeTimestamp(now_ms, 0), "v1")}}, [](Status) {});
  ring_.ByAddress(c)->store->Apply({WriteOp{id, Record::Value(MakeTimestamp(now_ms + 10, 0), "v2")}}, [](Status) {});
  ring_.net.RunUntilIdle();
  // The STAT first: it repairs nothing, while the GET's read repair gives v2 to A and X.
  const uint64_t forwarded = ring_.ByAddress(x)->core->stats().forwarded;
  auto m = Call<RecordMeta>([&](auto cb) { client_.Stat(id, q_, cb); });
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->ts, MakeTimestamp(now_ms + 10, 0)) << "a STAT counted A twice, once relayed by X";
  EXPECT_EQ(ring_.ByAddress(x)->core->stats().forwarded, forwarded + 1) << "X did not relay: the test shows nothing";
  auto r = Call<Record>([&](auto cb) { client_.Get(id, q_, cb); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "v2") << "A's v1 counted twice, once relayed by X";
  EXPECT_EQ(ring_.ByAddress(x)->core->stats().forwarded, forwarded + 2);
}

}  // namespace
}  // namespace ringstore
