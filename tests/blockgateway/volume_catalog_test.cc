// VolumeCatalog against a 3-node ring in one process (tests/support/fake_ring.h): the catalog
// is a map record, so creates and removes that run at the same time all stay, and a catalog
// in the first format (a plain list) is read and carried into the map by the next edit, and a
// resize makes a new generation of the volume.
#include <gtest/gtest.h>

#include "blockgateway/chunk_store.h"
#include "blockgateway/volume.h"
#include "dht/lww_map.h"
#include "tests/support/fake_ring.h"

namespace ringstore::block {
namespace {

using testing::FakeTransport;
using testing::Ring;

class VolumeCatalogTest : public ::testing::Test {
 protected:
  VolumeCatalogTest() : ring_(3, 7) {}

  void SetUp() override {
    ring_.Pump(std::chrono::seconds(3));
    ASSERT_TRUE(ring_.Converged());
    for (int i = 0; i < 2; ++i) {
      randoms_.push_back(std::make_unique<SeededRandom>(100 + i));
      clients_.push_back(std::make_unique<ClusterClient>(ClusterClientOptions{}, ring_.clock, *randoms_.back(),
                                                         [this] { return std::make_unique<FakeTransport>(ring_.net, ""); }));
      std::optional<Status> s;
      clients_.back()->Connect({"node0:7400"}, [&](Status st) { s = st; });
      ring_.Pump(std::chrono::milliseconds(50));
      ASSERT_TRUE(s.has_value() && s->ok()) << (s ? s->ToString() : "no answer");
      catalogs_.push_back(std::make_unique<VolumeCatalog>(*clients_.back(), Quorum{3, 2, 2}, ring_.clock));
    }
  }

  VolumeMeta Meta(const std::string& name) {
    VolumeMeta m;
    m.name = name;
    m.size = 1 << 20;
    m.uuid = std::string(16, static_cast<char>(name.size()));
    m.uuid[0] = name[0];
    return m;
  }
  // Runs the ring until every callback in *left has come back.
  void Until(const int& left) {
    for (int i = 0; i < 400 && left > 0; ++i) ring_.Pump(std::chrono::milliseconds(10));
    ASSERT_EQ(left, 0);
  }
  std::vector<std::string> Names(size_t via = 0) {
    std::optional<Result<std::vector<VolumeMeta>>> out;
    catalogs_[via]->List([&](Result<std::vector<VolumeMeta>> r) { out = std::move(r); });
    for (int i = 0; i < 400 && !out; ++i) ring_.Pump(std::chrono::milliseconds(10));
    EXPECT_TRUE(out.has_value() && out->ok()) << (out ? out->status().ToString() : "no answer");
    std::vector<std::string> names;
    if (out && out->ok()) {
      for (const auto& m : **out) names.push_back(m.name);
    }
    return names;
  }

  Ring ring_;
  std::vector<std::unique_ptr<SeededRandom>> randoms_;
  std::vector<std::unique_ptr<ClusterClient>> clients_;
  std::vector<std::unique_ptr<VolumeCatalog>> catalogs_;
};

TEST_F(VolumeCatalogTest, CreatesAndRemovesFromTwoClientsAtOnceAllStay) {
  int left = 0;
  std::vector<Status> results;
  const auto done = [&](Status s) {
    results.push_back(s);
    --left;
  };
  // Twenty creates at once, alternating between two clients: a read-modify-write catalog
  // would lose some of them.
  for (int i = 0; i < 20; ++i) {
    ++left;
    catalogs_[i % 2]->Create(Meta("vol" + std::to_string(100 + i)), done);
  }
  Until(left);
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) want.push_back("vol" + std::to_string(100 + i));
  EXPECT_EQ(Names(0), want);
  EXPECT_EQ(Names(1), want);
  // Half of them removed at once, while two more are created.
  results.clear();
  for (int i = 0; i < 20; i += 2) {
    ++left;
    catalogs_[i % 4 == 0 ? 0 : 1]->Remove("vol" + std::to_string(100 + i), false, nullptr, done);
  }
  left += 2;
  catalogs_[0]->Create(Meta("new-a"), done);
  catalogs_[1]->Create(Meta("new-b"), done);
  Until(left);
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  want = {"new-a", "new-b"};
  for (int i = 1; i < 20; i += 2) want.push_back("vol" + std::to_string(100 + i));
  EXPECT_EQ(Names(1), want);
}

TEST_F(VolumeCatalogTest, ACatalogInTheFirstFormatIsReadAndCarriedIntoTheMap) {
  // Two volumes whose catalog entry was written as a plain list, as before map records.
  int left = 0;
  const auto done = [&](Status s) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    --left;
  };
  left = 2;
  catalogs_[0]->Create(Meta("old-1"), done);
  catalogs_[0]->Create(Meta("old-2"), done);
  Until(left);
  std::optional<Result<Ack>> put;
  clients_[0]->Put(ObjectKey::Of(reserved::kVolumeCatalog, "all"), EncodeCatalog({"old-1", "old-2"}), Quorum{3, 3, 2},
                   [&](Result<Ack> a) { put = a; });
  for (int i = 0; i < 100 && !put; ++i) ring_.Pump(std::chrono::milliseconds(10));
  ASSERT_TRUE(put && put->ok());
  EXPECT_EQ(Names(), (std::vector<std::string>{"old-1", "old-2"}));
  // The next edit turns it into a map that still lists them.
  left = 1;
  catalogs_[1]->Create(Meta("fresh"), done);
  Until(left);
  std::optional<Result<Record>> got;
  clients_[0]->Get(ObjectKey::Of(reserved::kVolumeCatalog, "all"), Quorum{3, 2, 2}, [&](Result<Record> r) { got = r; });
  for (int i = 0; i < 100 && !got; ++i) ring_.Pump(std::chrono::milliseconds(10));
  ASSERT_TRUE(got && got->ok());
  EXPECT_TRUE(IsMapRecord((*got)->meta));
  EXPECT_EQ(Names(), (std::vector<std::string>{"fresh", "old-1", "old-2"}));
}

TEST_F(VolumeCatalogTest, AResizeIsANewGenerationEvenBackToTheSameSize) {
  // A gateway that kept the volume's chunks must not reuse them after a shrink and a grow
  // back: the shrink deleted chunks the cache may still hold.
  int left = 1;
  Status st;
  catalogs_[0]->Create(Meta("v"), [&](Status s) { st = s, --left; });
  Until(left);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto open = [&] {
    std::optional<Result<VolumeMeta>> out;
    catalogs_[1]->Open("v", [&](Result<VolumeMeta> m) { out = std::move(m); });
    for (int i = 0; i < 400 && !out; ++i) ring_.Pump(std::chrono::milliseconds(10));
    EXPECT_TRUE(out.has_value() && out->ok());
    return out && out->ok() ? **out : VolumeMeta{};
  };
  const VolumeMeta before = open();
  EXPECT_TRUE(SameVolume(before, open()));
  for (uint64_t size : {uint64_t{1} << 19, uint64_t{1} << 20}) {
    left = 1;
    catalogs_[0]->Resize("v", size, false, {}, [&](Status s) { st = s, --left; });
    Until(left);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  const VolumeMeta after = open();
  EXPECT_EQ(after.size, before.size);
  EXPECT_EQ(after.generation, before.generation + 2);
  EXPECT_FALSE(SameVolume(before, after));
  VolumeMeta other = before;
  other.uuid[1] ^= 1;
  EXPECT_FALSE(SameVolume(before, other)) << "removed and created again";
  // Metadata written before holds (volume_lease.h) reads as no hold, and before generations
  // were counted as generation 0.
  std::string old = EncodeVolumeMeta(before);
  ASSERT_EQ(static_cast<unsigned char>(old[0]), 0x9d);  // fixarray of 13
  ASSERT_EQ(static_cast<unsigned char>(old[old.size() - 3]), 0xa0);  // no hold: an empty fixstr,
  ASSERT_EQ(static_cast<unsigned char>(old[old.size() - 2]), 0xc2);  // not forced,
  ASSERT_EQ(static_cast<unsigned char>(old.back()), 0x00);           // begun at 0
  old[0] = static_cast<char>(0x9a);
  old.resize(old.size() - 3);
  VolumeMeta held = before;
  held.hold = VolumeMeta::Hold{"volume rm v", 1'800'000'000'000'000, true};
  auto decoded = DecodeVolumeMeta(EncodeVolumeMeta(held));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->hold, held.hold);
  decoded = DecodeVolumeMeta(old);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(decoded->hold.empty());
  EXPECT_FALSE(decoded->hold.forced);
  EXPECT_EQ(decoded->generation, before.generation);
  old[0] = static_cast<char>(0x99);
  old.resize(old.size() - 1);  // the generation, a positive fixint
  decoded = DecodeVolumeMeta(old);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->generation, 0u);
  EXPECT_EQ(decoded->size, before.size);
}

TEST_F(VolumeCatalogTest, AVolumesChunksGetItsQuorumOnceTheRingHasGrown) {
  // A gateway that opened a volume while it knew a smaller ring (here: none yet) stores with
  // the volume's own W once it knows the ring, not with what fitted when it opened it.
  SeededRandom random(9);
  ClusterClient late(ClusterClientOptions{}, ring_.clock, random, [this] { return std::make_unique<FakeTransport>(ring_.net, ""); });
  VolumeMeta m = Meta("q");
  m.quorum = Quorum{3, 2, 2};
  ClusterChunkStore store(m, late, ring_.clock, RetryPolicy{});
  EXPECT_EQ(store.quorum().w, 0u);
  std::optional<Status> s;
  late.Connect({"node0:7400"}, [&](Status st) { s = st; });
  ring_.Pump(std::chrono::milliseconds(50));
  ASSERT_TRUE(s.has_value() && s->ok());
  EXPECT_EQ(store.quorum().n, 3u);
  EXPECT_EQ(store.quorum().w, 2u);
  EXPECT_EQ(store.quorum().r, 2u);
}

}  // namespace
}  // namespace ringstore::block
