// Volume leases (blockgateway/volume_lease.h) against a 3-node ring in one process
// (tests/support/fake_ring.h): `volume rm` and a shrink are refused while a gateway holds a
// lease, go on once it is let go or has run out, and a gateway neither attaches a volume in
// the middle of a remove nor writes to one that was removed while it was cut off.
#include <gtest/gtest.h>

#include "blockgateway/chunk_store.h"
#include "blockgateway/volume.h"
#include "blockgateway/volume_lease.h"
#include "tests/support/fake_ring.h"

namespace ringstore::block {
namespace {

using namespace std::chrono_literals;
using testing::FakeTransport;
using testing::Ring;

constexpr Quorum kMetaQuorum{3, 2, 2};

// A client transport whose sends are dropped while *cut: the gateway's side of a partition.
class CuttableTransport final : public Transport {
 public:
  CuttableTransport(testing::FakeNetwork& net, const bool& cut) : inner_(net, ""), cut_(cut) {}
  void SetHandler(TransportHandler* h) override { inner_.SetHandler(h); }
  ConnId Connect(const std::string& address) override { return inner_.Connect(address); }
  void Send(ConnId conn, std::string frame) override {
    if (!cut_) inner_.Send(conn, std::move(frame));
  }
  void Close(ConnId conn) override { inner_.Close(conn); }
  void StopAccepting() override {}
  void SetFrameLimit(ConnId conn, size_t max) override { inner_.SetFrameLimit(conn, max); }

 private:
  FakeTransport inner_;
  const bool& cut_;
};

class VolumeLeaseTest : public ::testing::Test {
 protected:
  VolumeLeaseTest() : ring_(3, 11) {}

  void SetUp() override {
    ring_.clock.SetWallMicros(1'800'000'000'000'000);  // 2027: wall times are real dates
    ring_.Pump(3s);
    ASSERT_TRUE(ring_.Converged());
    // Client 0 is the admin's, client 1 the gateway's; the gateway's network can be cut.
    for (int i = 0; i < 2; ++i) {
      randoms_.push_back(std::make_unique<SeededRandom>(200 + i));
      ClusterClientOptions o;
      o.connection.request_timeout = 2s;
      clients_.push_back(std::make_unique<ClusterClient>(o, ring_.clock, *randoms_.back(), [this, i] {
        return std::make_unique<CuttableTransport>(ring_.net, i == 1 ? cut_ : never_cut_);
      }));
      std::optional<Status> s;
      clients_.back()->Connect({"node0:7400"}, [&](Status st) { s = st; });
      ring_.Pump(50ms);
      ASSERT_TRUE(s.has_value() && s->ok()) << (s ? s->ToString() : "no answer");
      catalogs_.push_back(std::make_unique<VolumeCatalog>(*clients_.back(), kMetaQuorum, ring_.clock));
    }
    meta_.name = "v";
    meta_.size = 4 << 20;
    meta_.chunk_size = 1 << 20;
    meta_.uuid = std::string(16, 'u');
    ASSERT_TRUE(Wait([&](auto cb) { catalogs_[0]->Create(meta_, cb); }).ok());
    ASSERT_TRUE(PutChunk(3).ok());
  }

  // Runs the ring until done has been called; its status.
  template <typename Start>
  Status Wait(Start start) {
    std::optional<Status> out;
    start([&](Status s) { out = s; });
    for (int i = 0; i < 2000 && !out; ++i) ring_.Pump(10ms);
    return out ? *out : Status::Timeout("no answer");
  }
  Status PutChunk(uint64_t index) {
    return Wait([&](auto cb) {
      clients_[0]->Put(meta_.ChunkId(index), std::string(meta_.chunk_size, 'x'), Quorum{3, 3, 2},
                       [cb](Result<Ack> a) { cb(a.ok() ? Status::Ok() : a.status()); });
    });
  }
  // Whether chunk index is stored (not a hole), read at R=3.
  bool ChunkThere(uint64_t index) {
    std::optional<bool> there;
    clients_[0]->Get(meta_.ChunkId(index), Quorum{3, 2, 3},
                     [&](Result<Record> r) { there = r.ok() && !r->meta.tombstone(); });
    for (int i = 0; i < 400 && !there; ++i) ring_.Pump(10ms);
    return there.value_or(false);
  }
  std::unique_ptr<VolumeLease> Lease(const std::string& holder) {
    LeaseOptions o;
    o.holder = holder;
    o.quorum = kMetaQuorum;
    return std::make_unique<VolumeLease>(*clients_[1], ring_.clock, *catalogs_[1], meta_, o);
  }
  // A lease the gateway holds (the test fails if it cannot acquire it).
  std::unique_ptr<VolumeLease> Acquired(const std::string& holder) {
    auto lease = Lease(holder);
    Status s = Wait([&](auto cb) { lease->Acquire(cb); });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return lease;
  }
  // A lease whose gateway has then been cut off from the ring for d (and still is).
  std::unique_ptr<VolumeLease> CutOffFor(Clock::Duration d) {
    auto lease = Acquired("gw-a");
    Cut(true);
    ring_.Pump(d);
    return lease;
  }
  Status Remove(bool force) { return Wait([&](auto cb) { catalogs_[0]->Remove("v", force, nullptr, cb); }); }
  Status Resize(uint64_t size, bool force = false) {
    return Wait([&](auto cb) { catalogs_[0]->Resize("v", size, force, nullptr, cb); });
  }
  Result<VolumeMeta> Open() {
    std::optional<Result<VolumeMeta>> out;
    catalogs_[0]->Open("v", [&](Result<VolumeMeta> m) { out = std::move(m); });
    for (int i = 0; i < 400 && !out; ++i) ring_.Pump(10ms);
    return out ? *out : Result<VolumeMeta>(Status::Timeout("no answer"));
  }
  void Cut(bool cut) { cut_ = cut; }
  // Writes the volume's metadata with this hold, as an admin command does.
  Status SetHold(const std::string& command, bool forced = false) {
    auto m = Open();
    if (!m.ok()) return m.status();
    m->hold = VolumeMeta::Hold{command, 1, forced};
    return Wait([&](auto cb) {
      clients_[0]->Put(VolumeMetaId("v"), EncodeVolumeMeta(*m), kMetaQuorum,
                       [cb](Result<Ack> a) { cb(a.ok() ? Status::Ok() : a.status()); });
    });
  }

  Ring ring_;
  std::vector<std::unique_ptr<SeededRandom>> randoms_;
  std::vector<std::unique_ptr<ClusterClient>> clients_;
  std::vector<std::unique_ptr<VolumeCatalog>> catalogs_;
  bool cut_ = false;  // the gateway's client is cut off from the ring
  const bool never_cut_ = false;
  VolumeMeta meta_;
};

TEST_F(VolumeLeaseTest, ARemoveIsRefusedWhileAGatewayHoldsALeaseAndGoesOnOnceItIsLetGo) {
  auto lease = Acquired("gw-a/127.0.0.1:10809");
  EXPECT_TRUE(lease->WriteGate().ok());

  Status s = Remove(false);
  EXPECT_EQ(s.code(), Code::kBusy) << s.ToString();
  EXPECT_NE(s.message().find("gw-a/127.0.0.1:10809"), std::string::npos) << s.message();
  EXPECT_TRUE(ChunkThere(3));  // nothing deleted
  auto m = Open();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->hold.empty());  // the refused command took its mark back
  // Renewals keep the lease past its first term.
  ring_.Pump(45s);
  EXPECT_TRUE(lease->WriteGate().ok()) << lease->WriteGate().ToString();
  EXPECT_EQ(Remove(false).code(), Code::kBusy);

  ASSERT_TRUE(Wait([&](auto cb) { lease->Release(cb); }).ok());
  s = Remove(false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(ChunkThere(3));
  EXPECT_TRUE(Open().status().IsNotFound());
  // The leases went with the volume.
  std::optional<Result<LwwMap>> leases;
  ReadLeases(*clients_[0], meta_, kMetaQuorum, [&](Result<LwwMap> r) { leases = std::move(r); });
  for (int i = 0; i < 400 && !leases; ++i) ring_.Pump(10ms);
  ASSERT_TRUE(leases && leases->ok());
  EXPECT_TRUE((*leases)->empty());
}

TEST_F(VolumeLeaseTest, ARemoveWaitsAWhileForALeaseToBeLetGo) {
  // A gateway lets go a moment after its last client leaves (once written back): a remove
  // run right after the disconnect waits for that rather than refusing.
  auto lease = Acquired("gw-a");
  std::optional<Status> removed;
  catalogs_[0]->Remove("v", false, nullptr, [&](Status s) { removed = s; });
  ring_.Pump(3s);
  EXPECT_FALSE(removed.has_value());
  EXPECT_TRUE(ChunkThere(3));
  lease->Release([](Status) {});
  for (int i = 0; i < 400 && !removed; ++i) ring_.Pump(10ms);
  ASSERT_TRUE(removed.has_value());
  EXPECT_TRUE(removed->ok()) << removed->ToString();
  EXPECT_FALSE(ChunkThere(3));
}

TEST_F(VolumeLeaseTest, AShrinkIsRefusedWhileLeasedAndAGrowIsNot) {
  auto lease = Acquired("gw-a");
  Status s = Resize(2 << 20);
  EXPECT_EQ(s.code(), Code::kBusy) << s.ToString();
  EXPECT_TRUE(ChunkThere(3));
  EXPECT_EQ(Open()->size, uint64_t{4} << 20);
  s = Resize(8 << 20);
  ASSERT_TRUE(s.ok()) << s.ToString();
  // The gateway goes on with the size it has; its renewals do not take the grow for a fence.
  ring_.Pump(25s);
  EXPECT_TRUE(lease->WriteGate().ok()) << lease->WriteGate().ToString();
}

TEST_F(VolumeLeaseTest, ALeaseNoLongerRenewedCountsUntilItsTermDrainAndSkewHavePassed) {
  auto lease = Acquired("gw-crashed");
  lease.reset();  // the gateway dies without letting go
  // Term 30 s, drain 40 s, skew allowance 15 s: live for 85 s after it was written. The
  // remove waits kDefaultLeaseWait (10 s) for it to go, then refuses.
  ring_.Pump(70s);
  EXPECT_EQ(Remove(false).code(), Code::kBusy);
  EXPECT_TRUE(ChunkThere(3));
  ring_.Pump(6s);
  Status s = Remove(false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(ChunkThere(3));
}

TEST_F(VolumeLeaseTest, AForcedRemoveGoesOnAndTheGatewayStopsWriting) {
  auto lease = Acquired("gw-a");
  Status s = Remove(true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(ChunkThere(3));
  // The next renewal reads the metadata and finds the volume gone.
  ring_.Pump(11s);
  EXPECT_EQ(lease->WriteGate().code(), Code::kIOError) << lease->WriteGate().ToString();
  // Through the chunk store: the write is refused at once, not retried into a removed volume.
  ClusterChunkStore store(meta_, *clients_[1], ring_.clock);
  store.SetWriteGate([&] { return lease->WriteGate(); });
  s = Wait([&](auto cb) { store.Store(1, std::string(meta_.chunk_size, 'y'), cb); });
  EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
  EXPECT_FALSE(ChunkThere(1));
}

TEST_F(VolumeLeaseTest, AForcedCommandUnderWayStopsTheGatewayBeforeItIsDone) {
  // A forced remove deletes chunks for a long while before the metadata goes: the gateway
  // stops when it sees the forced hold, not when the remove is done.
  auto lease = Acquired("gw-a");
  ASSERT_TRUE(SetHold("volume rm v --force", true).ok());
  ring_.Pump(12s);
  EXPECT_EQ(lease->WriteGate().code(), Code::kIOError) << lease->WriteGate().ToString();
  EXPECT_TRUE(Open().ok());  // the metadata is still there
}

TEST_F(VolumeLeaseTest, AGatewayCutOffPastItsLeaseWritesNothingToAVolumeRemovedMeanwhile) {
  auto lease = Acquired("gw-a");
  ClusterChunkStore store(meta_, *clients_[1], ring_.clock, RetryPolicy{100ms, 1s, 300s});
  store.SetWriteGate([&] { return lease->WriteGate(); });
  Cut(true);
  ring_.Pump(31s);
  EXPECT_EQ(lease->WriteGate().code(), Code::kUnavailable) << lease->WriteGate().ToString();
  // The admin waits out the lease (85 s from its last renewal) and removes the volume.
  ring_.Pump(60s);
  Status s = Remove(false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  // A write the gateway still has to do waits for the lease...
  std::optional<Status> stored;
  store.Store(2, std::string(meta_.chunk_size, 'z'), [&](Status st) { stored = st; });
  ring_.Pump(5s);
  EXPECT_FALSE(stored.has_value());
  // ...and once the gateway is back, the renewal finds the volume gone: the write fails and
  // nothing of it lands.
  Cut(false);
  ring_.Pump(10s);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->code(), Code::kIOError) << stored->ToString();
  EXPECT_FALSE(ChunkThere(2));
}

TEST_F(VolumeLeaseTest, ALapsedLeaseIsTakenBackWhenTheVolumeIsUnchanged) {
  auto lease = CutOffFor(35s);
  EXPECT_EQ(lease->WriteGate().code(), Code::kUnavailable);
  Cut(false);
  ring_.Pump(5s);
  EXPECT_TRUE(lease->WriteGate().ok()) << lease->WriteGate().ToString();
}

TEST_F(VolumeLeaseTest, ALapsedLeaseIsNotTakenBackWhileAnAdminCommandHoldsTheVolume) {
  // A remove that found the lease run out and is deleting chunks: its hold is on the volume.
  // The gateway, back, must not take its lease back (the remove did not see it), however
  // long the hold stays.
  auto lease = CutOffFor(90s);
  ASSERT_TRUE(SetHold("volume rm v").ok());
  Cut(false);
  ring_.Pump(30s);
  EXPECT_EQ(lease->WriteGate().code(), Code::kUnavailable) << lease->WriteGate().ToString();
  // Once the command is over (here: refused elsewhere, its hold taken back), it is.
  ASSERT_TRUE(SetHold("").ok());
  ring_.Pump(3s);
  EXPECT_TRUE(lease->WriteGate().ok()) << lease->WriteGate().ToString();
}

TEST_F(VolumeLeaseTest, AGatewayCutOffLosesAVolumeShrunkAndGrownBackMeanwhile) {
  // While the gateway is cut off past its lease, a shrink goes on (no --force needed) and a
  // grow restores the size: the gateway's cached chunks past the cut are stale all the same.
  auto lease = CutOffFor(100s);
  ASSERT_TRUE(Resize(2 << 20).ok());
  ASSERT_TRUE(Resize(4 << 20).ok());
  EXPECT_FALSE(ChunkThere(3));
  Cut(false);
  ring_.Pump(10s);
  EXPECT_EQ(lease->WriteGate().code(), Code::kIOError) << lease->WriteGate().ToString();
}

TEST_F(VolumeLeaseTest, ARefusedCommandLeavesAnotherCommandsHoldInPlace) {
  auto lease = Acquired("gw-a");
  std::optional<Status> removed;
  catalogs_[0]->Remove("v", false, nullptr, [&](Status s) { removed = s; });
  ring_.Pump(2s);
  auto m = Open();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->hold.command, "volume rm v");
  EXPECT_GT(m->hold.begun_us, 1u);
  ASSERT_TRUE(SetHold("volume rm v").ok());  // a second rm, under way (begun at another time)
  for (int i = 0; i < 1500 && !removed; ++i) ring_.Pump(10ms);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->code(), Code::kBusy) << removed->ToString();
  EXPECT_EQ(Open()->hold, (VolumeMeta::Hold{"volume rm v", 1, false}));
}

TEST_F(VolumeLeaseTest, AGatewayDoesNotAttachAVolumeAnUnfinishedRemoveMarked) {
  ASSERT_TRUE(SetHold("volume rm v").ok());
  auto lease = Lease("gw-a");
  Status s = Wait([&](auto cb) { lease->Acquire(cb); });
  EXPECT_EQ(s.code(), Code::kBusy) << s.ToString();
  EXPECT_NE(s.message().find("volume rm v"), std::string::npos) << s.message();
  EXPECT_FALSE(lease->WriteGate().ok());
  // A grow does not finish half of a remove.
  EXPECT_EQ(Resize(8 << 20).code(), Code::kBusy);
  // The refused gateway left no live lease behind: running the remove again finishes it.
  s = Remove(false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Open().status().IsNotFound());
}

TEST_F(VolumeLeaseTest, AnAttachRacingARemoveNeverBothGoOn) {
  // The gateway writes its lease then reads the hold; the remove writes the hold then reads
  // the leases: whatever the interleaving, at most one of them goes on. The attach starts
  // after the first `steps` deliveries of the remove's messages, for every step of it.
  int outcomes[2][2] = {};
  for (int steps = 0;; ++steps) {
    SCOPED_TRACE("attach after " + std::to_string(steps) + " steps of the remove");
    auto lease = Lease("gw-race");
    std::optional<Status> attached, removed;
    catalogs_[0]->Remove("v", false, nullptr, [&](Status s) { removed = s; });
    for (int i = 0; i < steps && !removed; ++i) ring_.net.RunOne();
    const bool remove_was_done = removed.has_value();
    lease->Acquire([&](Status s) { attached = s; });
    for (int i = 0; i < 3000 && !(attached && removed); ++i) ring_.Pump(10ms);
    ASSERT_TRUE(attached && removed);
    EXPECT_FALSE(attached->ok() && removed->ok()) << "both went on";
    ++outcomes[attached->ok()][removed->ok()];
    if (removed->ok()) {
      ASSERT_TRUE(Wait([&](auto cb) { catalogs_[0]->Create(meta_, cb); }).ok());
    } else if (attached->ok()) {
      ASSERT_TRUE(Wait([&](auto cb) { lease->Release(cb); }).ok());
    }
    auto m = Open();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_TRUE(m->hold.empty()) << "a refused remove left its mark: " << m->hold.command;
    if (remove_was_done) break;
  }
  // Both ways the race can go were seen. (Both refused does not happen: a refused attach
  // takes its lease back while the remove is still waiting for leases to go.)
  EXPECT_GT(outcomes[0][1], 0);
  EXPECT_GT(outcomes[1][0], 0);
}

}  // namespace
}  // namespace ringstore::block
