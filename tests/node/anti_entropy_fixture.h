// AntiEntropyTest: a whole ring in one process (tests/support/fake_ring.h), three nodes and
// a joiner, with an AntiEntropy per node, for tests/node/anti_entropy_test.cc and
// anti_entropy_pull_test.cc. Ask and Offer hand one request frame to a node's repair as a
// peer sends it. The fixture owns its ring and its repairs.
// Thread-safety: single-threaded, like the fake ring.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dht/frame.h"
#include "dht/messages.h"
#include "dht/sync_messages.h"
#include "node/anti_entropy.h"
#include "routing/placement.h"
#include "storage/fault_injecting_store.h"
#include "tests/support/fake_ring.h"

namespace ringstore {

class AntiEntropyTest : public ::testing::Test {
 protected:
  // Stores ids[i] as an N=3 value on each node n of the ring for which on(i, n) holds (all of
  // them when on is empty).
  void StoreN3(const std::vector<ObjectId>& ids, const std::function<bool(size_t i, size_t n)>& on = {}) {
    for (size_t i = 0; i < ids.size(); ++i) {
      Record r = Record::Value(MakeTimestamp(1000 + static_cast<int64_t>(i), 0),
                               value_bytes_ == 0 ? "value " + std::to_string(i) : std::string(value_bytes_, 'v'));
      r.meta.set_replicas(3);
      for (size_t n = 0; n < ring_.nodes.size(); ++n) {
        if (!on || on(i, n)) ring_.nodes[n]->store->Apply({WriteOp{ids[i], r}}, [](Status s) { ASSERT_TRUE(s.ok()); });
      }
    }
  }
  // Stores ids at N=3 on the three nodes of the ring, then a fourth node joins, every node
  // runs anti-entropy, and the joiner gets until it is synced.
  void JoinAfter(const std::vector<ObjectId>& ids, const std::function<void()>& once_started = {}) {
    ring_.Pump(std::chrono::seconds(3));
    ASSERT_TRUE(ring_.Converged());
    StoreN3(ids);
    ring_.Pump(std::chrono::milliseconds(10));
    ring_.AddNode(3);
    ring_.nodes[3]->transport->on_send = [this](std::string& frame) { asked_.Saw(frame); };
    ring_.Pump(std::chrono::seconds(3));
    ASSERT_TRUE(ring_.Converged());
    AntiEntropyOptions o = QuickN3();
    o.interval = std::chrono::seconds(60);
    o.max_in_flight = 4;  // pulls stay in flight long enough for the peers' listings to overlap
    o.rate_bytes_per_s = rate_;
    for (size_t i = 0; i < ring_.nodes.size(); ++i) {
      AntiEntropy* r = AddRepair(i, o, /*start=*/false);
      r->set_on_first_sync([this, r] {
        EXPECT_TRUE(r->synced());
        ++first_syncs_[r];
      });
      r->Start();
    }
    if (once_started) once_started();
    for (int i = 0; i < 100 && !repair_.back()->synced(); ++i) ring_.Pump(std::chrono::milliseconds(100));
    ASSERT_TRUE(repair_.back()->synced());
  }
  // An AntiEntropy for node i, attached to its core; started unless start is false.
  AntiEntropy* AddRepair(size_t i, const AntiEntropyOptions& o, bool start = true) {
    auto& n = ring_.nodes[i];
    if (faulty_node_ == i) faulty_ = std::make_unique<FaultInjectingStore>(*n->store);
    Store& store = faulty_node_ == i ? static_cast<Store&>(*faulty_) : *n->store;
    repair_.push_back(std::make_unique<AntiEntropy>(o, n->membership->self().node_id, ring_.clock, store,
                                                    *n->peers, *n->membership, testing::NullLog()));
    n->core->AttachRepair(repair_.back().get());
    if (start) repair_.back()->Start();
    return repair_.back().get();
  }
  // The node an N=1 record of id is placed on, under node 0's table.
  testing::Ring::Node* Owner(const ObjectId& id) {
    const std::string owner = PlaceReplicas(ring_.nodes[0]->membership->table(), id, 1).front()->node_id;
    for (auto& n : ring_.nodes) {
      if (n->membership->self().node_id == owner) return n.get();
    }
    return nullptr;
  }
  // Each of the N=1 records ids is on its owner of the current ring, and nowhere else.
  void ExpectEachOnItsOwner(const std::vector<ObjectId>& ids) {
    size_t misplaced = 0, lost = 0;
    for (const ObjectId& id : ids) {
      size_t copies = 0;
      for (auto& n : ring_.nodes) {
        const bool here = n->store->MutableRecordForTest(id) != nullptr;
        copies += here ? 1 : 0;
        misplaced += here && n.get() != Owner(id) ? 1 : 0;
      }
      lost += copies == 0 ? 1 : 0;
    }
    EXPECT_EQ(lost, 0u) << "records lost";
    EXPECT_EQ(misplaced, 0u) << "records not on their one node of the final ring";
  }
  // n ids: "ae"/"0", "ae"/"1", ...
  static std::vector<ObjectId> Ids(int n) {
    std::vector<ObjectId> ids;
    for (int i = 0; i < n; ++i) ids.push_back(ObjectId::Of("ae", std::to_string(i)));
    return ids;
  }
  // The GETs the three nodes of the ring before the join have answered.
  uint64_t HoldersGets() const {
    uint64_t gets = 0;
    for (size_t n = 0; n < 3; ++n) gets += ring_.nodes[n]->core->stats().gets;
    return gets;
  }
  // The frame that bytes (one whole frame, as given to a transport's Send) hold.
  static std::optional<Frame> OneFrame(const std::string& bytes) {
    FrameDecoder in;
    if (!in.Feed(bytes.data(), bytes.size()).ok() || !in.HasFrame()) return std::nullopt;
    return in.Next();
  }
  // Options for N=1 rings whose rounds come quickly: no scrub, repair at rate_bytes_per_s.
  static AntiEntropyOptions QuickN1(double rate_bytes_per_s) {
    AntiEntropyOptions o;
    o.replicas = 1;
    o.first_round = o.ring_settle = o.busy_pause = std::chrono::milliseconds(200);
    o.interval = std::chrono::seconds(1);
    o.scrub_bytes_per_s = 0;
    o.rate_bytes_per_s = rate_bytes_per_s;
    return o;
  }
  // Options for N=3 rounds that come quickly (on a ring of three, every key on every node),
  // unthrottled, without scrub.
  static AntiEntropyOptions QuickN3() {
    AntiEntropyOptions o = QuickN1(0);
    o.replicas = 3;
    return o;
  }
  // How many of ids are placed on the joiner; each must be in its store exactly then.
  size_t CheckJoinerHoldsItsShare(const std::vector<ObjectId>& ids) {
    const std::string self = ring_.nodes[3]->membership->self().node_id;
    size_t placed = 0, wrong = 0;
    for (const ObjectId& id : ids) {
      bool here = false;
      for (const NodeEntry* e : PlaceReplicas(ring_.nodes[3]->membership->table(), id, 3)) here |= e->node_id == self;
      placed += here ? 1 : 0;
      wrong += (ring_.nodes[3]->store->MutableRecordForTest(id) != nullptr) != here ? 1 : 0;
    }
    EXPECT_EQ(wrong, 0u) << "records missing on the joiner, or there without being placed there";
    return placed;
  }
  void TearDown() override {
    for (auto& n : ring_.nodes) n->core->AttachRepair(nullptr);
    repair_.clear();
  }

  testing::Ring ring_{3, 11};
  size_t value_bytes_ = 0;  // StoreN3's values: this many bytes, or "value i" when 0
  double rate_ = 0;         // JoinAfter's repair rate, bytes/s (0: unthrottled)
  // The joiner's SYNC_GET requests (JoinAfter): how many, and the most ids one asked for.
  struct Asked {
    size_t requests = 0, most = 0;
    void Saw(const std::string& frame) {
      std::optional<Frame> f = OneFrame(frame);
      if (!f || f->header.kind != static_cast<uint16_t>(Kind::kSyncGet)) return;
      auto m = DecodeSyncGetRequest(f->body);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      ++requests;
      most = std::max(most, m->ids.size());
    }
  } asked_;
  // Node faulty_node_'s repair goes through faulty_, a FaultInjectingStore over its store.
  size_t faulty_node_ = SIZE_MAX;
  std::unique_ptr<FaultInjectingStore> faulty_;
  std::vector<std::unique_ptr<AntiEntropy>> repair_;  // after faulty_: destroyed before it
  std::map<AntiEntropy*, int> first_syncs_;  // calls of each one's on_first_sync
};

// Hands repair one request frame, as a peer sends it; returns the reply frame (the ring is
// run a moment for the store's answers).
inline Frame Ask(testing::Ring& ring, AntiEntropy& repair, const std::string& bytes) {
  FrameDecoder in;
  EXPECT_TRUE(in.Feed(bytes.data(), bytes.size()).ok());
  std::string out;
  repair.OnRequest(in.Next(), [&](std::string reply) { out = std::move(reply); });
  ring.Pump(std::chrono::milliseconds(10));
  FrameDecoder back;
  EXPECT_TRUE(back.Feed(out.data(), out.size()).ok());
  EXPECT_TRUE(back.HasFrame());
  return back.Next();
}

// A SYNC_HAVE offer of ids, as a peer's handoff sends it.
inline Frame Offer(testing::Ring& ring, AntiEntropy& repair, const std::vector<ObjectId>& ids) {
  SyncHaveRequest req;
  for (const ObjectId& id : ids) req.entries.push_back(KeyVersion{id, RecordMeta{}});
  return Ask(ring, repair, EncodeSyncHaveRequest(7, req));
}

}  // namespace ringstore
