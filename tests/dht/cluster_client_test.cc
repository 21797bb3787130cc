// The cluster client against a whole ring in one process: real NodeCores, MemoryStores,
// PeerLinks and Membership over the fake network, driven by one fake clock. Seeded.
#include "dht/cluster_client.h"

#include <gtest/gtest.h>

#include "dht/sync_messages.h"
#include "node/anti_entropy.h"
#include "routing/placement.h"
#include "tests/dht/cluster_client_fixture.h"
#include "tests/support/fake_ring.h"

namespace ringstore {
namespace {

using testing::FakeClock;
using testing::FakeNetwork;
using testing::FakeTransport;

using testing::NullLog;
using testing::Ring;

using testing::ClusterClientTest;

TEST_F(ClusterClientTest, WritesLandOnTheNPlacementNodesAndReadsComeBack) {
  for (int k = 0; k < 100; ++k) {
    const ObjectId id = ObjectId::Of("c", std::to_string(k));
    const std::string v = "value-" + std::to_string(k);
    ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(id, v, q_, cb); }).ok()) << k;
  }
  ring_.Pump(std::chrono::milliseconds(100));  // the third copy of each write lands too
  for (int k = 0; k < 100; ++k) {
    const ObjectId id = ObjectId::Of("c", std::to_string(k));
    const std::string v = "value-" + std::to_string(k);
    ASSERT_EQ(Copies(id, v), 3) << "key " << k;
    for (const NodeEntry* e : PlaceReplicas(client_.table(), id, 3)) {
      ASSERT_NE(ring_.ByAddress(e->address)->store->MutableRecordForTest(id), nullptr)
          << "key " << k << " missing on placement node " << e->address;
    }
    auto r = Call<Record>([&](auto cb) { client_.Get(id, q_, cb); });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->value, v);
  }
  EXPECT_TRUE(Call<Record>([&](auto cb) { client_.Get(ObjectId::Of("c", "none"), q_, cb); }).status().IsNotFound());
}

TEST_F(ClusterClientTest, WritesAndReadsGoOnWithOneNodeDead) {
  for (int k = 0; k < 50; ++k) {
    ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(ObjectId::Of("d", std::to_string(k)), "before", q_, cb); }).ok());
  }
  ring_.nodes[2]->transport->Crash();
  ring_.nodes[2]->membership->Stop();
  for (int k = 50; k < 100; ++k) {
    auto a = Call<Ack>([&](auto cb) { client_.Put(ObjectId::Of("d", std::to_string(k)), "after", q_, cb); });
    ASSERT_TRUE(a.ok()) << "write " << k << " with one node dead: " << a.status().ToString();
  }
  for (int k = 0; k < 100; ++k) {
    auto r = Call<Record>([&](auto cb) { client_.Get(ObjectId::Of("d", std::to_string(k)), q_, cb); });
    ASSERT_TRUE(r.ok()) << "read " << k << " with one node dead: " << r.status().ToString();
    EXPECT_EQ(r->value, k < 50 ? "before" : "after");
  }
}

TEST_F(ClusterClientTest, ReadsReturnTheNewestOfTheReplies) {
  const ObjectId id = ObjectId::Of("n", "k");
  ASSERT_NO_FATAL_FAILURE(OldEverywhereNewOnTheThirdReplica(id));
  auto r = Call<Record>([&](auto cb) { client_.Get(id, Quorum{3, 2, 3}, cb); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "new");
}

TEST_F(ClusterClientTest, AQuorumReadTakesTheValueFromOneReplicaAndMetadataFromTheOthers) {
  const ObjectId id = ObjectId::Of("one", "k");
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(id, "value", q_, cb); }).ok());
  const auto gets = [&] {
    uint64_t n = 0;
    for (auto& node : ring_.nodes) n += node->core->stats().gets;
    return n;
  };
  const uint64_t before = gets();
  auto r = Call<Record>([&](auto cb) { client_.Get(id, Quorum{3, 2, 3}, cb); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "value");
  EXPECT_EQ(gets() - before, 1u);
  // When a STAT shows a newer version, its value is fetched from that replica: one more GET.
  ASSERT_NO_FATAL_FAILURE(OldEverywhereNewOnTheThirdReplica(id));
  const uint64_t again = gets();
  r = Call<Record>([&](auto cb) { client_.Get(id, Quorum{3, 2, 3}, cb); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "new");
  EXPECT_EQ(gets() - again, 2u);
  // A STAT fetches no value at all.
  const uint64_t stats = gets();
  auto m = Call<RecordMeta>([&](auto cb) { client_.Stat(id, Quorum{3, 2, 3}, cb); });
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->size, 3u);
  EXPECT_EQ(gets(), stats);
}

TEST_F(ClusterClientTest, TheClientLearnsOfANewNodeByItself) {
  ring_.AddNode(5);
  ring_.Pump(std::chrono::seconds(3));
  ASSERT_TRUE(ring_.Converged());
  EXPECT_EQ(client_.table().size(), 5u);  // not yet: the refresh is periodic
  ring_.Pump(std::chrono::seconds(11));
  EXPECT_EQ(client_.table().size(), 6u);
}

TEST_F(ClusterClientTest, RefusalsThatComeBackAtOnceEndEachRequestExactlyOnce) {
  // Connections that take one request at a time: most sends are refused (Busy) inside the
  // call itself, and the client must walk its preference list without running off its end.
  ClusterClientOptions o;
  o.connection.max_in_flight = 1;
  ClusterClient tight(o, ring_.clock, random_, [this] { return std::make_unique<FakeTransport>(ring_.net, ""); });
  std::optional<Status> connected;
  tight.Connect({"node0:7400"}, [&](Status s) { connected = s; });
  ring_.Pump(std::chrono::milliseconds(50));
  ASSERT_TRUE(connected && connected->ok());
  std::vector<int> calls(40, 0);
  int ok = 0;
  for (int k = 0; k < 40; ++k) {
    auto cb = [&, k](Result<Ack> r) {
      ++calls[k];
      ok += r.ok();
    };
    tight.Put(ObjectId::Of("busy", std::to_string(k)), "v", Quorum{3, 3, 3}, cb);
  }
  ring_.Pump(std::chrono::seconds(2));
  for (int k = 0; k < 40; ++k) EXPECT_EQ(calls[k], 1) << "request " << k;
  EXPECT_LT(ok, 40);  // some were refused for lack of room
}

TEST_F(ClusterClientTest, AQuorumLargerThanTheRingFailsInsteadOfHanging) {
  // Five nodes, all healthy, N=W=R=6: every node answers, and that is still not enough.
  auto a = Call<Ack>([&](auto cb) { client_.Put(ObjectId::Of("q", "k"), "v", Quorum{6, 6, 6}, cb); });
  EXPECT_EQ(a.status().code(), Code::kUnavailable) << a.status().ToString();
  auto r = Call<Record>([&](auto cb) { client_.Get(ObjectId::Of("q", "k"), Quorum{6, 6, 6}, cb); });
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
}

TEST_F(ClusterClientTest, AWriteFailsWhenFewerThanWReplicasCanBeReached) {
  for (auto& n : ring_.nodes) {
    if (n->address != "node0:7400") n->transport->Crash();
  }
  auto a = Call<Ack>([&](auto cb) { client_.Put(ObjectId::Of("f", "k"), "v", q_, cb); });
  EXPECT_EQ(a.status().code(), Code::kUnavailable) << a.status().ToString();
  EXPECT_NE(a.status().message().find("of the 2 acknowledgements"), std::string::npos) << a.status().ToString();
}


// ---- routing by a stale table: NotMine and forwarding --------------------------------------

TEST_F(ClusterClientTest, AStaleClientIsToldNotMineAndWritesToTheReplicasOfAFreshTable) {
  for (int i = 5; i < 15; ++i) ring_.AddNode(i);
  ring_.Pump(std::chrono::seconds(4));
  ASSERT_TRUE(ring_.Converged());
  ASSERT_EQ(client_.table().size(), 5u);  // stale: the periodic refresh has not run yet
  const Quorum one{1, 1, 1};
  for (int k = 0; k < 60; ++k) {
    const ObjectId id = ObjectId::Of("t", "stale" + std::to_string(k));
    auto r = Call<Ack>([&](auto cb) { client_.Put(id, "v" + std::to_string(k), one, cb); });
    ASSERT_TRUE(r.ok()) << k << ": " << r.status().ToString();
  }
  uint64_t refused = 0;
  for (auto& n : ring_.nodes) refused += n->core->stats().not_mine;
  EXPECT_GT(refused, 0u) << "no write reached a node outside its key's window: the test proves nothing";
  EXPECT_EQ(client_.table().size(), 15u) << "a NotMine answer must make the client fetch the table";
  // Every value sits on a node that owns it by the fresh table.
  const RouteTable& table = ring_.nodes[0]->membership->table();
  for (int k = 0; k < 60; ++k) {
    const ObjectId id = ObjectId::Of("t", "stale" + std::to_string(k));
    int owned = 0;
    for (const NodeEntry* e : PlaceReplicas(table, id, 1 + kRouteSlack)) {
      Record* rec = ring_.ByAddress(e->address)->store->MutableRecordForTest(id);
      if (rec != nullptr && rec->value == "v" + std::to_string(k)) ++owned;
    }
    EXPECT_GE(owned, 1) << "key " << k;
  }
}

TEST_F(ClusterClientTest, AReadOfAKeyANodeDoesNotHoldIsForwardedToItsReplica) {
  const Quorum one{1, 1, 1};
  const ObjectId id = ObjectId::Of("t", "forward-me");
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(id, "payload", one, cb); }).ok());
  // With N=1 the window is 1 + kRouteSlack = 4 of the 5 nodes: one node is outside it.
  const RouteTable& table = ring_.nodes[0]->membership->table();
  Ring::Node* outsider = nullptr;
  for (auto& n : ring_.nodes) {
    const std::string nid = n->membership->self().node_id;
    if (!InPreferenceWindow(table, id, nid, 1 + kRouteSlack)) outsider = n.get();
  }
  ASSERT_NE(outsider, nullptr);
  ASSERT_EQ(outsider->store->MutableRecordForTest(id), nullptr);

  auto direct = ConnectDirect(outsider->address);
  ASSERT_NE(direct, nullptr);
  Client& c = direct->client;

  ExpectReadWithRoute(c, id, "payload");
  EXPECT_EQ(outsider->core->stats().forwarded, 2u);
  // Without route_n the node answers from its own store only.
  auto local = Call<Record>([&](auto cb) { c.Get(id, cb); });
  EXPECT_TRUE(local.status().IsNotFound()) << local.status().ToString();
  // A write carrying route_n is refused by the outsider.
  Txn txn;
  txn.route_n = 1;
  txn.ops.push_back(TxnOp{TxnOpType::kPut, id, "x", {}});
  auto w = Call<Ack>([&](auto cb) { c.Commit(txn, cb); });
  EXPECT_EQ(w.status().code(), Code::kNotMine) << w.status().ToString();
}

// While every replica of a key is new (joins moved them all), its data is still on the former
// holders, further down the preference list: the forward goes on down the window until a
// node has it.
TEST_F(ClusterClientTest, AForwardedReadGoesDownTheWindowToANodeThatHasTheKey) {
  const ObjectId id = ObjectId::Of("t", "former-holder");
  const RouteTable& table = ring_.nodes[0]->membership->table();
  auto window = PlaceReplicas(table, id, 1 + kRouteSlack);
  ASSERT_EQ(window.size(), 4u);
  Ring::Node* outsider = nullptr;
  for (auto& n : ring_.nodes) {
    if (!InPreferenceWindow(table, id, n->membership->self().node_id, 1 + kRouteSlack)) outsider = n.get();
  }
  ASSERT_NE(outsider, nullptr);
  auto direct = ConnectDirect(outsider->address);
  ASSERT_NE(direct, nullptr);
  Client& c = direct->client;

  // No node has it: NotFound after asking the whole window.
  auto none = Call<Record>([&](auto cb) { c.Get(id, cb, /*route_n=*/1); });
  EXPECT_TRUE(none.status().IsNotFound()) << none.status().ToString();

  // Only the third node of the list has it, as a former holder would.
  Ring::Node* holder = ring_.ByAddress(window[2]->address);
  std::optional<Status> applied;
  holder->store->Apply({WriteOp{id, Record::Value(MakeTimestamp(1000, 0), "kept")}}, [&](Status s) { applied = s; });
  ring_.net.RunUntilIdle();
  ASSERT_TRUE(applied && applied->ok());
  ExpectReadWithRoute(c, id, "kept");
  EXPECT_EQ(outsider->core->stats().forwarded, 3u);
}

// ---- repair: read repair and hinted handoff ----------------------------------------------

TEST_F(ClusterClientTest, AReadRepairsStaleAndCorruptReplicas) {
  const ObjectId id = ObjectId::Of("rr", "k");
  ASSERT_NO_FATAL_FAILURE(OldEverywhereNewOnTheThirdReplica(id));
  auto placed = PlaceReplicas(client_.table(), id, 3);
  Record* first = ring_.ByAddress(placed[0]->address)->store->MutableRecordForTest(id);
  ASSERT_NE(first, nullptr);
  first->value[0] ^= 0x5a;  // the first replica's copy is now corrupt (and old)
  const uint64_t before = client_.read_repairs();
  // At R=3 the read fails: past the corrupt replica, only fallbacks are left to ask, and
  // their NotFound says nothing of the key. (The node reports the corrupt copy to its repair.)
  auto all = Call<Record>([&](auto cb) { client_.Get(id, Quorum{3, 2, 3}, cb); });
  EXPECT_EQ(all.status().code(), Code::kUnavailable) << all.status().ToString();
  // R=2: the corrupt first replica is replaced by the third.
  auto r = Call<Record>([&](auto cb) { client_.Get(id, Quorum{3, 2, 2}, cb); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "new");
  ring_.Pump(std::chrono::milliseconds(200));
  EXPECT_GE(client_.read_repairs() - before, 2u);
  for (const NodeEntry* e : placed) {
    Record* rec = ring_.ByAddress(e->address)->store->MutableRecordForTest(id);
    ASSERT_NE(rec, nullptr) << e->address;
    EXPECT_EQ(rec->value, "new") << e->address;
    EXPECT_TRUE(rec->Intact()) << e->address;
  }
}

TEST_F(ClusterClientTest, MapEntriesWrittenOnDifferentReplicasMergeOnReadAndRepair) {
  // Two writers' entries that each reached a different replica only (as if the rest missed
  // them): a read returns both, and read repair gives every replica the merged map.
  const ObjectId id = ObjectId::Of("map", "dir");
  LwwMap one;
  one["a"] = MapEntry{0, false, "1"};
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Merge(id, one, q_, cb); }).ok());
  ring_.Pump(std::chrono::milliseconds(100));
  auto placed = PlaceReplicas(client_.table(), id, 3);
  const Timestamp t = MakeTimestamp(static_cast<uint64_t>(ring_.clock.WallMicros() / 1000) + 10, 0);
  for (int i = 0; i < 2; ++i) {
    LwwMap m;
    m[i == 0 ? "b" : "c"] = MapEntry{t + i, false, "x"};
    std::optional<Status> applied;
    ring_.ByAddress(placed[i]->address)->store->Apply({WriteOp{id, MapRecord(m, 0)}}, [&](Status s) { applied = s; });
    ring_.net.RunUntilIdle();
    ASSERT_TRUE(applied && applied->ok());
  }
  auto r = Call<Record>([&](auto cb) { client_.Get(id, Quorum{3, 2, 3}, cb); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto m = DecodeLwwMap(r->value);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 3u);
  ring_.Pump(std::chrono::milliseconds(200));
  for (const NodeEntry* e : placed) {
    Record* rec = ring_.ByAddress(e->address)->store->MutableRecordForTest(id);
    ASSERT_NE(rec, nullptr) << e->address;
    EXPECT_EQ(rec->meta.checksum, r->meta.checksum) << e->address;
  }
}

TEST_F(ClusterClientTest, NotificationsReachTheOtherWatchersOfAChannel) {
  ClusterClient other(ClusterClientOptions{}, ring_.clock, random_,
                      [this] { return std::make_unique<FakeTransport>(ring_.net, ""); });
  std::optional<Status> connected;
  other.Connect({"node2:7400"}, [&](Status s) { connected = s; });
  ring_.Pump(std::chrono::milliseconds(50));
  ASSERT_TRUE(connected && connected->ok());
  const ObjectId channel = ObjectId::Of("events", "fs");
  std::vector<std::string> got_here, got_there;
  client_.Watch(channel, [&](std::string p) { got_here.push_back(std::move(p)); });
  other.Watch(channel, [&](std::string p) { got_there.push_back(std::move(p)); });
  ring_.Pump(std::chrono::milliseconds(100));
  client_.Notify(channel, "from one");
  other.Notify(channel, "from two");
  other.Notify(ObjectId::Of("events", "another"), "not watched");
  ring_.Pump(std::chrono::milliseconds(100));
  EXPECT_EQ(got_there, std::vector<std::string>{"from one"});  // a publisher does not hear itself
  EXPECT_EQ(got_here, std::vector<std::string>{"from two"});
}

// Every node hands off its hints, with this tombstone grace (0: none).
void AttachHandoffs(Ring& ring, Clock::Duration grace) {
  HandoffOptions o;
  o.tombstone_grace = grace;
  for (auto& n : ring.nodes) {
    n->handoff = std::make_unique<HintedHandoff>(o, n->membership->self().node_id, ring.clock, *n->store, *n->peers,
                                                 *n->membership, NullLog());
    n->core->AttachHandoff(n->handoff.get());
  }
}

// id's replica at N=1, and a node past it but inside the window: a fallback.
std::pair<Ring::Node*, Ring::Node*> ReplicaAndFallback(Ring& ring, const ObjectId& id) {
  auto list = PlaceReplicas(ring.nodes[0]->membership->table(), id, 1 + kRouteSlack);
  return {ring.ByAddress(list[0]->address), ring.ByAddress(list[2]->address)};
}

class HintedHandoffTest : public ClusterClientTest {
 protected:
  // Writes value to id (N=1) straight to a node past its first replica but inside the window,
  // as a client whose replica failed would: a fallback. ts 0: the node's clock.
  Status WriteToFallback(const ObjectId& id, std::string value, Timestamp ts = 0) {
    fallback_ = ReplicaAndFallback(ring_, id).second;
    direct_ = ConnectDirect(fallback_->address);  // kept: the fake network may still hold its frames
    if (direct_ == nullptr) return Status::Unavailable("no connection");
    Txn txn;
    txn.route_n = 1;
    txn.ts = ts;
    txn.ops.push_back(TxnOp{TxnOpType::kPut, id, std::move(value), {}});
    auto ack = Call<Ack>([&](auto cb) { direct_->client.Commit(txn, cb); });
    return ack.ok() ? Status::Ok() : ack.status();
  }
  // The node's NODE_STATUS, asked over the direct connection.
  Result<RepairStatus> NodeStatus() {
    auto f = Call<Frame>([&](auto cb) { direct_->client.Request(Kind::kNodeStatus, std::string("\x90", 1), cb); });
    if (!f.ok()) return f.status();
    return DecodeRepairStatus(f->body);
  }
  // A new HintedHandoff over the fallback's store, as after a restart; started.
  void RestartHandoff(Ring::Node* n, Membership& membership) {
    n->core->AttachHandoff(nullptr);
    n->handoff = std::make_unique<HintedHandoff>(HandoffOptions{}, n->membership->self().node_id, ring_.clock,
                                                 *n->store, *n->peers, membership, NullLog());
    n->handoff->Start();
  }
  Ring::Node* fallback_ = nullptr;
  std::unique_ptr<Direct> direct_;
};

TEST_F(HintedHandoffTest, AFallbackHandsItsWriteToTheReplicas) {
  AttachHandoffs(ring_, Clock::Duration::zero());
  const ObjectId id = ObjectId::Of("hh", "k");
  ASSERT_TRUE(WriteToFallback(id, "hinted").ok());
  auto [replica, fallback] = ReplicaAndFallback(ring_, id);
  EXPECT_EQ(replica->store->MutableRecordForTest(id), nullptr);
  EXPECT_EQ(fallback->handoff->stats().pending, 1u);
  // NODE_STATUS (`ringstore status`) shows the hint waiting, then handed off.
  AntiEntropy repair(AntiEntropyOptions{}, fallback->membership->self().node_id, ring_.clock, *fallback->store,
                     *fallback->peers, *fallback->membership, NullLog());
  fallback->core->AttachRepair(&repair);
  auto before = NodeStatus();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->hints_pending, 1u);
  EXPECT_EQ(before->hints_handed_off, 0u);
  ring_.Pump(std::chrono::seconds(2));
  auto after = NodeStatus();
  fallback->core->AttachRepair(nullptr);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->hints_pending, 0u);
  EXPECT_EQ(after->hints_handed_off, 1u);
  Record* handed = replica->store->MutableRecordForTest(id);
  ASSERT_NE(handed, nullptr) << "the fallback did not hand the write to the replica";
  EXPECT_EQ(handed->value, "hinted");
  EXPECT_EQ(handed->meta.ts, fallback->store->MutableRecordForTest(id)->meta.ts);
  EXPECT_EQ(fallback->handoff->stats().pending, 0u);
  EXPECT_EQ(fallback->handoff->stats().handed_off, 1u);
}

TEST_F(HintedHandoffTest, AHintGoesOnceToEachLiveReplicaAndWaitsForTheDownOne) {
  // An N=2 write taken by a fallback while one of its replicas is dead: the live replica gets
  // the record at once (reads ask it), and only once; the hint then waits for the dead one
  // (or its replacement) instead of sending the record again at every pass.
  AttachHandoffs(ring_, Clock::Duration::zero());
  const ObjectId id = ObjectId::Of("hh", "down");
  auto list = PlaceReplicas(ring_.nodes[0]->membership->table(), id, 2 + kRouteSlack);
  Ring::Node* dead = ring_.ByAddress(list[0]->address);
  Ring::Node* live = ring_.ByAddress(list[1]->address);
  Ring::Node* fallback = ring_.ByAddress(list[2]->address);
  dead->transport->Crash();
  dead->membership->Stop();
  ring_.Pump(std::chrono::seconds(3));  // the others mark it down
  auto direct = ConnectDirect(fallback->address);
  ASSERT_NE(direct, nullptr);
  Txn txn;
  txn.route_n = 2;
  txn.ops.push_back(TxnOp{TxnOpType::kPut, id, "hinted", {}});
  ASSERT_TRUE(Call<Ack>([&](auto cb) { direct->client.Commit(txn, cb); }).ok());
  EXPECT_EQ(fallback->handoff->stats().pending, 1u);
  ring_.Pump(std::chrono::seconds(5));  // ten passes
  ASSERT_NE(live->store->MutableRecordForTest(id), nullptr) << "the live replica did not get the write";
  EXPECT_EQ(live->store->MutableRecordForTest(id)->value, "hinted");
  EXPECT_EQ(fallback->handoff->stats().copies_sent, 1u);
  EXPECT_EQ(fallback->handoff->stats().pending, 1u) << "the dead replica has not had it";
}

TEST_F(HintedHandoffTest, AFallbackThatRestartsStillHandsOffItsWrite) {
  // The hint is kept in the store with the write, so a restart (here: a new HintedHandoff over
  // the same store, before the first pass) still hands the write off, then forgets the hint.
  AttachHandoffs(ring_, Clock::Duration::zero());
  const ObjectId id = ObjectId::Of("hh", "restart");
  ASSERT_TRUE(WriteToFallback(id, "kept").ok());
  auto [replica, fallback] = ReplicaAndFallback(ring_, id);
  auto kept = [&] {
    std::vector<StoredHint> out;
    fallback->store->Hints(ObjectId::Min(), 10, [&](Result<std::vector<StoredHint>> r) {
      ASSERT_TRUE(r.ok());
      out = *r;
    });
    ring_.net.RunUntilIdle();
    return out;
  };
  ASSERT_EQ(kept().size(), 1u);
  RestartHandoff(fallback, *fallback->membership);
  fallback->core->AttachHandoff(fallback->handoff.get());
  ring_.Pump(std::chrono::seconds(2));
  EXPECT_EQ(fallback->handoff->stats().loaded, 1u);
  Record* handed = replica->store->MutableRecordForTest(id);
  ASSERT_NE(handed, nullptr) << "the restarted fallback did not hand the write off";
  EXPECT_EQ(handed->value, "kept");
  EXPECT_EQ(fallback->handoff->stats().handed_off, 1u);
  EXPECT_TRUE(kept().empty()) << "the hint outlived its handoff";
}

TEST_F(HintedHandoffTest, ARestartedFallbackKeepsItsHintsUntilItHearsFromTheRing) {
  // Until then its table holds itself alone, where every key looks placed on it: a hint ended
  // as "a replica now" would be lost. Both before it joins, and when it was started without
  // seeds (then it counts as joined at once, with a table of one).
  AttachHandoffs(ring_, Clock::Duration::zero());
  ASSERT_TRUE(WriteToFallback(ObjectId::Of("hh", "lonely"), "kept").ok());
  for (bool started : {false, true}) {
    SeededRandom random(7);
    Membership alone(MembershipOptions{}, fallback_->membership->self(), ring_.clock, random, *fallback_->peers,
                     NullLog());
    if (started) alone.Start({});
    ASSERT_EQ(alone.joined(), started);
    RestartHandoff(fallback_, alone);
    ring_.Pump(std::chrono::seconds(2));
    EXPECT_EQ(fallback_->handoff->stats().loaded, 1u) << started;
    EXPECT_EQ(fallback_->handoff->stats().pending, 1u) << "the hint ended before the ring was known: " << started;
    EXPECT_EQ(fallback_->handoff->stats().handed_off, 0u) << started;
    fallback_->handoff.reset();
    alone.Stop();
  }
}

TEST_F(HintedHandoffTest, AHintedCopyOlderThanTheTombstoneGraceIsNotHandedOff) {
  // Its key may have been deleted and the tombstone collected on the replicas meanwhile:
  // handing it off would bring the key back (a simulator run found exactly that).
  AttachHandoffs(ring_, std::chrono::seconds(10));
  const ObjectId id = ObjectId::Of("hh", "old");
  const auto old_ts = MakeTimestamp(static_cast<uint64_t>(ring_.clock.WallMicros() / 1000) - 11000, 0);  // 11 s old
  ASSERT_TRUE(WriteToFallback(id, "stale", old_ts).ok());
  auto [replica, fallback] = ReplicaAndFallback(ring_, id);
  ASSERT_NE(fallback->store->MutableRecordForTest(id), nullptr);
  EXPECT_EQ(fallback->handoff->stats().pending, 1u);
  ring_.Pump(std::chrono::seconds(2));
  EXPECT_EQ(replica->store->MutableRecordForTest(id), nullptr) << "a copy past the grace was handed off";
  EXPECT_EQ(fallback->handoff->stats().pending, 0u);
  EXPECT_EQ(fallback->handoff->stats().handed_off, 0u);
}

}  // namespace
}  // namespace ringstore
