// The value log under the RocksDB store: garbage collection, torn tails, damaged segments,
// async durability.
#include "tests/storage/store_test_fixture.h"

namespace ringstore {
namespace {

// The value log: garbage collection gives back the space of replaced large values, in this
// run and in segments an earlier run left behind, and never loses a live one.
class ValueLogStoreTest : public StoreTest {
 protected:
  void SetUp() override {
    segment_bytes_ = 1u << 20;
    StoreTest::SetUp();
  }
  // Number and total bytes of the segment files.
  std::pair<size_t, uint64_t> Segments() const {
    std::pair<size_t, uint64_t> out{0, 0};
    for (const auto& e : fs::directory_iterator(dir_ / "vlog")) {
      ++out.first;
      out.second += fs::file_size(e.path());
    }
    return out;
  }
  // 257 KiB: the sizes below (segments of 1 MiB hold four) do not follow the threshold.
  static constexpr size_t kBigBytes = (256u << 10) + 1000;
  static_assert(kBigBytes >= kExternalValueBytes, "Big values must go to the value log");
  static std::string Big(int key, int version) {
    std::string v(kBigBytes, static_cast<char>('a' + key % 26));
    v.replace(0, 16, "k" + std::to_string(key) + "v" + std::to_string(version) + "        ");
    return v;
  }
  static ObjectId Id(int key) { return ObjectId::Of("vlog", std::to_string(key)); }
  // The (last) segment file with anything in it.
  fs::path NonEmptySegment() const {
    fs::path seg;
    for (const auto& e : fs::directory_iterator(dir_ / "vlog")) {
      if (fs::file_size(e.path()) > 0) seg = e.path();
    }
    return seg;
  }
  void ExpectAll(int keys, const std::function<int(int)>& version) {
    for (int k = 0; k < keys; ++k) {
      auto r = Get(Id(k));
      ASSERT_TRUE(r.ok()) << k << ": " << r.status().ToString();
      EXPECT_TRUE(r->value == Big(k, version(k))) << "key " << k;
    }
  }
};

// Without fsyncs the values still reach the log file before their records point at them.
TEST_P(ValueLogStoreTest, WithAsyncDurabilityLoggedValuesReadBackAtOnce) {
  Close();
  durability_ = Durability::kAsync;
  Open();
  std::vector<WriteOp> ops;
  for (int k = 0; k < 3; ++k) ops.push_back(WriteOp{Id(k), Record::Value(10, Big(k, 1))});
  ASSERT_TRUE(Apply(std::move(ops)).ok());
  ExpectAll(3, [](int) { return 1; });
}

TEST_P(ValueLogStoreTest, ReplacedValuesAreCollectedAndLiveOnesMoved) {
  Close();
  garbage_ratio_ = 0.25;
  Open();
  constexpr int kKeys = 16;  // about 4 MiB of values: 5 segments of 1 MiB
  for (int k = 0; k < kKeys; ++k) ASSERT_TRUE(Put(Id(k), 10, Big(k, 1)).ok());
  const auto [files_before, bytes_before] = Segments();
  EXPECT_GE(files_before, 4u);
  // Replacing every value leaves the old segments all dead: each later group commit removes one.
  for (int k = 0; k < kKeys; ++k) ASSERT_TRUE(Put(Id(k), 20, Big(k, 2)).ok());
  for (int k = 0; k < 8; ++k) ASSERT_TRUE(Put(ObjectId::Of("small", std::to_string(k)), 1, "x").ok());
  auto [files, bytes] = Segments();
  EXPECT_LT(bytes, bytes_before * 3 / 2) << files << " segment files";
  ExpectAll(kKeys, [](int) { return 2; });
  // Replacing every other value leaves segments half dead, a third of the log: with a garbage
  // ratio of 0.25 their live values are moved (with the default 0.5, they would stay).
  for (int k = 0; k < kKeys; k += 2) ASSERT_TRUE(Put(Id(k), 30, Big(k, 3)).ok());
  for (int k = 0; k < 8; ++k) ASSERT_TRUE(Put(ObjectId::Of("small", std::to_string(k)), 2, "y").ok());
  std::tie(files, bytes) = Segments();
  EXPECT_LT(bytes, bytes_before * 3 / 2) << files << " segment files";
  const auto version = [](int k) { return k % 2 == 0 ? 3 : 2; };
  ExpectAll(kKeys, version);
  auto scan = Scan(ObjectId::Min(), ObjectId::Max(), 100, true);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  for (const auto& e : *scan) EXPECT_FALSE(e.corrupt);
  Reopen();
  ExpectAll(kKeys, version);
}

TEST_P(ValueLogStoreTest, HalfDeadSegmentsStayWhileGarbageIsUnderTheRatio) {
  // Every other value replaced: the old segments are half dead, but the dead bytes are a
  // third of the log, under the default ratio of 0.5, so nothing is moved; replacing the
  // rest makes the old segments all dead, and they go without a move.
  constexpr int kKeys = 16;
  for (int k = 0; k < kKeys; ++k) ASSERT_TRUE(Put(Id(k), 10, Big(k, 1)).ok());
  const fs::path first = NonEmptySegment();
  for (int k = 0; k < kKeys; k += 2) ASSERT_TRUE(Put(Id(k), 20, Big(k, 2)).ok());
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(Put(ObjectId::Of("small", std::to_string(k)), 1, "x").ok());
  const auto half = Segments();
  EXPECT_TRUE(fs::exists(first)) << "a half-dead segment was moved under the ratio";
  for (int k = 1; k < kKeys; k += 2) ASSERT_TRUE(Put(Id(k), 20, Big(k, 2)).ok());
  for (int k = 0; k < 8; ++k) ASSERT_TRUE(Put(ObjectId::Of("small", std::to_string(k)), 2, "y").ok());
  const auto after = Segments();
  EXPECT_LT(after.second, half.second + 4 * ValueLog::EntryBytes(Big(0, 1).size()))
      << "the all-dead old segments were not removed";
  ExpectAll(kKeys, [](int) { return 2; });
  EXPECT_FALSE(fs::exists(first));
}

TEST_P(ValueLogStoreTest, GarbageLeftByAnEarlierRunIsCollected) {
  // Three values in the active segment, replaced there: garbage nothing collects in this run.
  Close();
  segment_bytes_ = 8u << 20;  // all nine entries fit in one segment
  Open();
  // Two thirds of it dead: over the garbage ratio of 0.5.
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(Put(Id(k), 10, Big(k, 1)).ok());
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(Put(Id(k), 15, Big(k, 3)).ok());
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(Put(Id(k), 20, Big(k, 2)).ok());
  const auto before = Segments();
  Reopen();
  // The reopened store examines the old segments on its next commits and collects them.
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(Put(ObjectId::Of("small", std::to_string(k)), 1, "x").ok());
  const auto after = Segments();
  EXPECT_LT(after.second, before.second) << before.first << " -> " << after.first << " files";
  ExpectAll(3, [](int) { return 2; });
}

TEST_P(ValueLogStoreTest, ATornTailOfTheLogIsIgnored) {
  ASSERT_TRUE(Put(Id(0), 10, Big(0, 1)).ok());
  Close();
  // A crash in the middle of an append: part of an entry, never pointed at.
  const fs::path seg = NonEmptySegment();
  ASSERT_FALSE(seg.empty());
  {
    std::FILE* f = std::fopen(seg.c_str(), "ab");
    ASSERT_NE(f, nullptr);
    const std::string junk = "RSVL" + std::string(5000, 'j');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  Open();
  ExpectAll(1, [](int) { return 1; });
  // The first commit examines the segment and cuts the torn tail off. (It does so after the
  // commit is acknowledged; the writer takes the next write only after it.)
  ASSERT_TRUE(Put(Id(2), 20, "small").ok());
  ASSERT_TRUE(Put(Id(2), 21, "small").ok());
  EXPECT_EQ(fs::file_size(seg), ValueLog::EntryBytes(Big(0, 1).size()));
  // Replacing the value makes the segment all dead: it is removed.
  ASSERT_TRUE(Put(Id(0), 20, Big(0, 2)).ok());
  ASSERT_TRUE(Put(Id(1), 20, "small").ok());
  EXPECT_FALSE(fs::exists(seg));
  ExpectAll(1, [](int) { return 2; });
}

TEST_P(ValueLogStoreTest, ASegmentWithADamagedEntryIsNeverCollected) {
  // Key 0's entry header is damaged: a walk cannot see that key 0 still points there, so the
  // segment must stay although everything else in it is dead.
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(Put(Id(k), 10, Big(k, 1)).ok());
  Close();
  const fs::path seg = NonEmptySegment();
  ASSERT_FALSE(seg.empty());
  {
    std::FILE* f = std::fopen(seg.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fputc('X', f);
    std::fclose(f);
  }
  Open();
  ASSERT_TRUE(Put(Id(1), 20, Big(1, 2)).ok());
  ASSERT_TRUE(Put(Id(2), 20, Big(2, 2)).ok());
  for (int k = 0; k < 6; ++k) ASSERT_TRUE(Put(ObjectId::Of("small", std::to_string(k)), 1, "x").ok());
  EXPECT_TRUE(fs::exists(seg));
  ExpectAll(3, [](int k) { return k == 0 ? 1 : 2; });
}

INSTANTIATE_TEST_SUITE_P(RocksDb, ValueLogStoreTest, ::testing::Values("rocksdb"));

}  // namespace
}  // namespace ringstore
