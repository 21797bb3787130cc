// AntiEntropy over a whole ring in one process (tests/support/fake_ring.h): a node that joins a
// loaded ring fills itself from its peers, compared at the same time, asks each record of one
// peer only, and gets every record of leaves too dense for one listing (a leaf too large for
// one is listed in parts, and a delete in a later part is not collected over an older value).

#include "tests/node/anti_entropy_fixture.h"

#include <gtest/gtest.h>

#include "node/placement_history.h"
#include "storage/range_digest.h"

namespace ringstore {
namespace {

using testing::Ring;

TEST_F(AntiEntropyTest, AJoinerPullsEachRecordOnceFromPeersComparedAtOnce) {
  std::vector<ObjectId> ids;
  for (int i = 0; i < 400; ++i) ids.push_back(ObjectId::Of("ae", std::to_string(i)));
  JoinAfter(ids);
  const size_t placed = CheckJoinerHoldsItsShare(ids);
  ASSERT_GT(placed, 200u);  // about three quarters
  EXPECT_EQ(repair_.back()->status().pulled_records, placed) << "a record was pulled from more than one peer";
  // Every node reports its first sync once, and only once: later rounds do not call again.
  ring_.Pump(std::chrono::seconds(2));
  for (auto& r : repair_) EXPECT_EQ(first_syncs_[r.get()], 1);
}

TEST_F(AntiEntropyTest, ANodeStillCatchingUpDeclinesHandoffOffers) {
  // An old holder's handoff would push what the joiner is pulling: the joiner says come back.
  AntiEntropyOptions o;
  o.replicas = 3;
  AntiEntropy fresh(o, ring_.nodes[0]->membership->self().node_id, ring_.clock, *ring_.nodes[0]->store,
                    *ring_.nodes[0]->peers, *ring_.nodes[0]->membership, testing::NullLog());
  Frame refused = Offer(ring_, fresh, {ObjectId::Of("ae", "x")});
  ASSERT_EQ(refused.header.kind, static_cast<uint16_t>(Kind::kError));
  EXPECT_EQ(DecodeError(refused.body)->ToStatus().code(), Code::kUnavailable);

  std::vector<ObjectId> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(ObjectId::Of("ae", std::to_string(i)));
  JoinAfter(ids);  // the joiner has caught up: it answers
  Frame answered = Offer(ring_, *repair_.back(), ids);
  ASSERT_EQ(answered.header.kind, static_cast<uint16_t>(Kind::kSyncHaveReply));
  EXPECT_EQ(DecodeSyncHaveReply(answered.body)->have.size(), ids.size());
}

TEST_F(AntiEntropyTest, AnOfferIsAnsweredHaveOnlyOnceTheCopiesAreDurable) {
  // The offerer purges what the answer says is held. A store shows a write a moment before
  // its WAL fsync, so the answer waits for a barrier (an empty Apply); when that fails (the
  // WAL cannot be synced), the answer is an error and the offerer keeps its copies.
  faulty_node_ = 3;  // the joiner
  std::vector<ObjectId> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(ObjectId::Of("ae", std::to_string(i)));
  JoinAfter(ids);
  std::vector<ObjectId> held;
  for (const ObjectId& id : ids) {
    if (ring_.nodes[3]->store->MutableRecordForTest(id) != nullptr) held.push_back(id);
  }
  ASSERT_FALSE(held.empty());
  Frame answered = Offer(ring_, *repair_.back(), held);
  ASSERT_EQ(answered.header.kind, static_cast<uint16_t>(Kind::kSyncHaveReply));
  auto have = DecodeSyncHaveReply(answered.body);
  ASSERT_TRUE(have.ok());
  EXPECT_EQ(std::count(have->have.begin(), have->have.end(), true), static_cast<long>(held.size()));
  faulty_->FailNextWrites(1);
  Frame refused = Offer(ring_, *repair_.back(), held);
  ASSERT_EQ(refused.header.kind, static_cast<uint16_t>(Kind::kError)) << "answered 'have' with its copies not durable";
  EXPECT_EQ(DecodeError(refused.body)->ToStatus().code(), Code::kIOError);
  EXPECT_EQ(faulty_->injected(), 1u);
}

TEST_F(AntiEntropyTest, ATombstonePastGraceIsListedOnlyOnceItIsDurable) {
  // A peer's listing of a tombstone past its grace confirms it for the asker's collection,
  // so the listing waits for the store barrier, and fails if it does.
  faulty_node_ = 3;  // the joiner
  std::vector<ObjectId> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(ObjectId::Of("ae", std::to_string(i)));
  JoinAfter(ids);
  const std::string asker = ring_.nodes[0]->membership->self().node_id;
  const RouteTable& table = ring_.nodes[3]->membership->table();
  ObjectId id;
  for (int i = 0;; ++i) {
    ASSERT_LT(i, 10000);
    id = ObjectId::Of("ae-dead", std::to_string(i));
    size_t on = 0;
    for (const NodeEntry* e : PlaceReplicas(table, id, 3)) {
      on += e->node_id == asker || e->node_id == ring_.nodes[3]->membership->self().node_id ? 1 : 0;
    }
    if (on == 2) break;
  }
  Record dead = Record::Tombstone(MakeTimestamp(1000, 0));  // long past the grace
  dead.meta.set_replicas(3);
  ring_.nodes[3]->store->Apply({WriteOp{id, dead}}, [](Status s) { ASSERT_TRUE(s.ok()); });
  ring_.Pump(std::chrono::milliseconds(10));
  SyncKeysRequest req;
  req.scope = SyncScope{table.RingDigest(), 3, asker};
  req.leaves = {RangeDigest::LeafOf(id)};
  Frame listed = Ask(ring_, *repair_.back(), EncodeSyncKeysRequest(9, req));
  ASSERT_EQ(listed.header.kind, static_cast<uint16_t>(Kind::kSyncKeysReply));
  auto keys = DecodeSyncKeysReply(listed.body);
  ASSERT_TRUE(keys.ok());
  ASSERT_TRUE(std::any_of(keys->entries.begin(), keys->entries.end(), [&](const KeyVersion& v) { return v.id == id; }));
  faulty_->FailNextWrites(1);
  Frame refused = Ask(ring_, *repair_.back(), EncodeSyncKeysRequest(10, req));
  ASSERT_EQ(refused.header.kind, static_cast<uint16_t>(Kind::kError)) << "listed a tombstone not durable";
  EXPECT_EQ(DecodeError(refused.body)->ToStatus().code(), Code::kIOError);
  // A listing without such a tombstone needs no barrier.
  req.leaves = {RangeDigest::LeafOf(ids[0])};
  if (req.leaves[0] != RangeDigest::LeafOf(id)) {
    faulty_->FailNextWrites(1);
    Frame plain = Ask(ring_, *repair_.back(), EncodeSyncKeysRequest(11, req));
    EXPECT_EQ(plain.header.kind, static_cast<uint16_t>(Kind::kSyncKeysReply));
    faulty_->FailNextWrites(0);
  }
}

TEST_F(AntiEntropyTest, AHandoffCutShortByARingChangeIsTakenUpByTheNextRound) {
  // N=1 records move only by handoff. A fourth node joins, the old holders push to it (slowly:
  // a low repair rate), and a fifth joins while pushes are in flight. The next round's handoff
  // must not wait for the earlier round's pushes for ever.
  ring_.Pump(std::chrono::seconds(3));
  ASSERT_TRUE(ring_.Converged());
  std::vector<ObjectId> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(ObjectId::Of("n1", std::to_string(i)));
  // Written now, so that only the handoff is tested here (an old version moves on its holder's
  // word, which OldRecordsTest below covers).
  const int64_t now_ms = ring_.clock.WallMicros() / 1000;
  for (size_t i = 0; i < ids.size(); ++i) {
    Record r = Record::Value(MakeTimestamp(now_ms + static_cast<int64_t>(i), 0), std::string(1024, 'v'));
    r.meta.set_replicas(1);
    Owner(ids[i])->store->Apply({WriteOp{ids[i], r}}, [](Status s) { ASSERT_TRUE(s.ok()); });
  }
  const AntiEntropyOptions o = QuickN1(20 << 10);
  for (size_t i = 0; i < 3; ++i) AddRepair(i, o);
  ring_.Pump(std::chrono::seconds(2));
  ring_.AddNode(3);
  AddRepair(3, o);
  auto pushed = [&] {
    uint64_t p = 0;
    for (auto& r : repair_) p += r->status().pushed_records;
    return p;
  };
  for (int i = 0; i < 200 && pushed() == 0; ++i) ring_.Pump(std::chrono::milliseconds(50));
  ASSERT_GT(pushed(), 0u) << "no handoff began";
  ring_.AddNode(4);
  AddRepair(4, o);
  ring_.Pump(std::chrono::seconds(60));
  ASSERT_TRUE(ring_.Converged());
  ExpectEachOnItsOwner(ids);
}

// n ids in one leaf of the digest (random within it).
std::vector<ObjectId> IdsInLeaf(uint32_t leaf, int n) {
  std::vector<ObjectId> ids;
  for (int i = 0; i < n; ++i) {
    std::string raw(ObjectId::Of("dense", std::to_string(leaf) + "/" + std::to_string(i)).AsStringView());
    raw[0] = static_cast<char>(leaf >> 4);
    raw[1] = static_cast<char>(((leaf & 0xf) << 4) | (static_cast<uint8_t>(raw[1]) & 0x0f));
    ids.push_back(*ObjectId::FromBytes(raw));
  }
  return ids;
}

TEST_F(AntiEntropyTest, LeavesTooDenseForOneListingComeWhole) {
  // 3,000 records in each of two neighbouring leaves: a listing (4,096 entries at most) takes
  // the first whole and must not count the second as read when its scan was cut short in it.
  std::vector<ObjectId> ids = IdsInLeaf(7, 3000), next = IdsInLeaf(8, 3000);
  ids.insert(ids.end(), next.begin(), next.end());
  JoinAfter(ids);
  EXPECT_GT(CheckJoinerHoldsItsShare(ids), 3000u);
}

TEST_F(AntiEntropyTest, ALeafTooLargeForOneListingIsListedInParts) {
  // 10,000 records in one leaf: more than two listings' worth (4,096 entries each). The
  // joiner gets every one placed on it, not only those of the first listing.
  const std::vector<ObjectId> ids = IdsInLeaf(9, 10000);
  for (const ObjectId& id : ids) ASSERT_EQ(RangeDigest::LeafOf(id), 9u);
  JoinAfter(ids);
  EXPECT_GT(CheckJoinerHoldsItsShare(ids), 5000u);
  // The id a listing starts from must lie in the first leaf asked for.
  SyncKeysRequest req;
  req.scope = SyncScope{ring_.nodes[3]->membership->table().RingDigest(), 3, ring_.nodes[0]->membership->self().node_id};
  req.leaves = {10};
  req.start = ids.front();
  Frame refused = Ask(ring_, *repair_.back(), EncodeSyncKeysRequest(9, req));
  ASSERT_EQ(refused.header.kind, static_cast<uint16_t>(Kind::kError));
  EXPECT_EQ(DecodeError(refused.body)->ToStatus().code(), Code::kInvalidArgument);
}

TEST_F(AntiEntropyTest, ATombstonePastTheFirstListingOfALargeLeafIsNotCollectedOverAnOlderValue) {
  // Every key on all three nodes (N=3). One leaf holds 6,000 records, and its last key, past
  // the first listing of the leaf, was deleted long ago on nodes 0 and 1, while node 2 still
  // holds the value the delete removed. While node 2 cannot take the delete (its repair's
  // writes fail), 0 and 1 must keep it: a value left on node 2 alone would come back. Once
  // node 2 takes it, it is collected everywhere.
  faulty_node_ = 2;
  ring_.Pump(std::chrono::seconds(3));
  ASSERT_TRUE(ring_.Converged());
  std::vector<ObjectId> ids = IdsInLeaf(11, 6000);
  std::string raw(ObjectId::kSize, '\xff');  // the last id of leaf 11
  raw[0] = static_cast<char>(11 >> 4);
  raw[1] = static_cast<char>(((11 & 0xf) << 4) | 0x0f);
  const ObjectId deleted = *ObjectId::FromBytes(raw);
  ASSERT_EQ(RangeDigest::LeafOf(deleted), 11u);
  StoreN3(ids);
  Record value = Record::Value(MakeTimestamp(500, 0), "deleted value"), dead = Record::Tombstone(MakeTimestamp(600, 0));
  value.meta.set_replicas(3);
  dead.meta.set_replicas(3);
  for (size_t i = 0; i < 3; ++i) {
    ring_.nodes[i]->store->Apply({WriteOp{deleted, i == 2 ? value : dead}}, [](Status s) { ASSERT_TRUE(s.ok()); });
  }
  ring_.Pump(std::chrono::milliseconds(10));
  for (size_t i = 0; i < 3; ++i) AddRepair(i, QuickN3());
  faulty_->FailNextWrites(1 << 30);
  ring_.Pump(std::chrono::seconds(10));
  ASSERT_NE(ring_.nodes[2]->store->MutableRecordForTest(deleted), nullptr);
  ASSERT_FALSE(ring_.nodes[2]->store->MutableRecordForTest(deleted)->meta.tombstone());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NE(ring_.nodes[i]->store->MutableRecordForTest(deleted), nullptr)
        << ring_.nodes[i]->address << " collected the tombstone while node 2 held an older value";
  }
  faulty_->FailNextWrites(0);
  ring_.Pump(std::chrono::seconds(10));
  for (auto& n : ring_.nodes) {
    EXPECT_EQ(n->store->MutableRecordForTest(deleted), nullptr) << n->address << " still holds the key";
  }
}

TEST_F(AntiEntropyTest, ALeafComparedInPartsPullsNothingTheAskerHolds) {
  // Node 0 holds 10,000 records of one leaf, nodes 1 and 2 every other one of them. Their
  // listings of 4,096 entries span about 8,192 of node 0's records, more than its own read of
  // the leaf: node 0 must compare only what it read, or it pulls what it holds already.
  ring_.Pump(std::chrono::seconds(3));
  ASSERT_TRUE(ring_.Converged());
  std::vector<ObjectId> ids = IdsInLeaf(13, 10000);
  std::sort(ids.begin(), ids.end());
  StoreN3(ids, [](size_t i, size_t n) { return n == 0 || i % 2 == 0; });
  ring_.Pump(std::chrono::milliseconds(10));
  for (size_t i = 0; i < 3; ++i) AddRepair(i, QuickN3());
  ring_.Pump(std::chrono::seconds(10));
  for (auto& n : ring_.nodes) {
    for (const ObjectId& id : ids) ASSERT_NE(n->store->MutableRecordForTest(id), nullptr) << n->address;
  }
  EXPECT_EQ(repair_[0]->status().pulled_records, 0u);
  EXPECT_GE(repair_[1]->status().pulled_records + repair_[2]->status().pulled_records, 10000u);
}

// N=1 records written long before the tombstone grace, each on its one owner of a 3-node ring
// (the owners' repair started, so that their rounds are in step with every peer).
class OldRecordsTest : public AntiEntropyTest {
 protected:
  void SetUp() override {
    ring_.Pump(std::chrono::seconds(3));
    ASSERT_TRUE(ring_.Converged());
    for (int i = 0; i < 300; ++i) ids_.push_back(ObjectId::Of("old", std::to_string(i)));
    for (size_t i = 0; i < ids_.size(); ++i) {
      Record r = Record::Value(MakeTimestamp(1000 + static_cast<int64_t>(i), 0), "old " + std::to_string(i));
      r.meta.set_replicas(1);
      Owner(ids_[i])->store->Apply({WriteOp{ids_[i], r}}, [](Status s) { ASSERT_TRUE(s.ok()); });
    }
  }

  std::vector<ObjectId> ids_;
  const AntiEntropyOptions options_ = QuickN1(0);
};

TEST_F(OldRecordsTest, OldRecordsOfOneReplicaMoveWholeToAJoiner) {
  // Their old owners were in step with the ring just before the join: their offers say so,
  // and the joiner takes versions far older than the grace (it declined them, and they were lost).
  for (size_t i = 0; i < 3; ++i) AddRepair(i, options_);
  ring_.Pump(std::chrono::seconds(2));
  ring_.AddNode(3);
  AddRepair(3, options_);
  ring_.Pump(std::chrono::seconds(30));
  ASSERT_TRUE(ring_.Converged());
  size_t on_joiner = 0;
  for (const ObjectId& id : ids_) on_joiner += Owner(id) == ring_.nodes[3].get() ? 1 : 0;
  ASSERT_GT(on_joiner, 30u);
  ExpectEachOnItsOwner(ids_);
}

TEST_F(OldRecordsTest, AnOldCopyNeverPlacedHereIsDeclinedAndDropped) {
  // A copy outside the replicas (a fallback's) past the grace: its key may have been deleted
  // and the tombstone collected. The owner declines it, and the holder drops it.
  const ObjectId stray = ObjectId::Of("old", "stray");
  Record r = Record::Value(MakeTimestamp(5, 0), "stray");
  r.meta.set_replicas(1);
  testing::Ring::Node* holder = Owner(stray) == ring_.nodes[0].get() ? ring_.nodes[1].get() : ring_.nodes[0].get();
  holder->store->Apply({WriteOp{stray, r}}, [](Status s) { ASSERT_TRUE(s.ok()); });
  for (size_t i = 0; i < 3; ++i) AddRepair(i, options_);
  ring_.Pump(std::chrono::seconds(10));
  for (auto& n : ring_.nodes) EXPECT_EQ(n->store->MutableRecordForTest(stray), nullptr) << n->address;
  ExpectEachOnItsOwner(ids_);
}

TEST_F(OldRecordsTest, AnOldCopyLastInStepLongAgoIsDeclined) {
  // Node 0 last compared, as their owner, keys that a later ring gave to node 1 or 2, 13 hours
  // ago (the horizon is about 11.9 h): it may have missed a delete since. Its history says so through
  // the bytes a restart loads (DIR/PLACEMENT_HISTORY), and its copies are declined. Given a
  // history of one hour ago, the same copies move.
  RouteTable alone;  // a ring of node 0 only: it placed everything there
  alone.Merge(ring_.nodes[0]->membership->self());
  const std::string self0 = ring_.nodes[0]->membership->self().node_id;
  for (int hours : {13, 1}) {
    std::vector<ObjectId> moved;  // placed on node 1 or 2 now, held by node 0 only
    for (int i = 0; moved.size() < 100; ++i) {
      const ObjectId id = ObjectId::Of("moved" + std::to_string(hours), std::to_string(i));
      if (Owner(id) == ring_.nodes[0].get()) continue;
      moved.push_back(id);
      Record r = Record::Value(MakeTimestamp(1000, 0), "kept on node 0");
      r.meta.set_replicas(1);
      ring_.nodes[0]->store->Apply({WriteOp{id, r}}, [](Status s) { ASSERT_TRUE(s.ok()); });
    }
    ring_.Pump(std::chrono::milliseconds(10));
    for (const ObjectId& id : moved) ASSERT_EQ(Owner(id)->store->MutableRecordForTest(id), nullptr);
    PlacementHistory h;
    h.Note(alone, ring_.clock.WallMicros() / 1000 - int64_t{hours} * 3600 * 1000);
    ASSERT_TRUE(h.PlacedSince(moved.front(), 1, self0, 0));
    AntiEntropyOptions o = options_;
    o.placement_history = h.Encode();
    for (size_t i = 0; i < 3; ++i) AddRepair(i, i == 0 ? o : options_);
    ring_.Pump(std::chrono::seconds(10));
    size_t arrived = 0;
    for (const ObjectId& id : moved) arrived += Owner(id)->store->MutableRecordForTest(id) != nullptr ? 1 : 0;
    if (hours == 13) {
      EXPECT_EQ(arrived, 0u) << "copies last in step 13 hours ago were taken";
    } else {
      EXPECT_EQ(arrived, moved.size()) << "copies in step an hour ago were declined";
    }
    for (const ObjectId& id : moved) EXPECT_EQ(ring_.nodes[0]->store->MutableRecordForTest(id), nullptr);
    TearDown();
  }
}

}  // namespace
}  // namespace ringstore
