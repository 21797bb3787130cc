// VolumeCache::Holes over the fake ChunkStore, for NBD's block status: answers from memory,
// from what the cache saw of chunks it dropped, else from the store's metadata; a write that
// overtakes a metadata read wins; holes are never remembered; metadata reads are bounded;
// zeroing without holes (NBD's NO_HOLE) leaves chunks stored.
#include "tests/blockgateway/volume_cache_test_support.h"

namespace ringstore::block {
namespace {

using namespace ringstore::block::cachetest;

TEST_F(VolumeCacheTest, HolesComeFromMemoryWhereTheChunkIsThereElseFromTheStore) {
  Make();
  store_.data[1] = std::string(kChunk, 'a');  // stored, not in memory
  store_.data[4] = std::string(kChunk, 'b');  // stored, and zeroed in memory below
  store_.hold_stores = true;
  ASSERT_TRUE(WriteNow(3 * kChunk, std::string(kChunk, 'c')).ok());  // in memory only
  Got z;
  cache_->Zero(4 * kChunk, kChunk, false, Into(z));
  ASSERT_TRUE(z.ok());
  std::vector<bool> holes;
  int calls = 0;
  auto into = [&](std::vector<bool> h) {
    holes = std::move(h);
    ++calls;
  };
  cache_->Holes(10, 6 * kChunk - 20, 64, into);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(holes, (std::vector<bool>{true, false, true, false, true, true}));
  EXPECT_EQ(store_.exists_log, (std::vector<uint64_t>{0, 1, 2, 5}));

  // "Stored" answers are remembered, holes not (another writer could fill one): asking
  // again reads the metadata of the holes only.
  cache_->Holes(0, 6 * kChunk, 64, into);
  EXPECT_EQ(holes, (std::vector<bool>{true, false, true, false, true, true}));
  EXPECT_EQ(store_.exists_log, (std::vector<uint64_t>{0, 1, 2, 5, 0, 2, 5}));
  store_.exists_log.resize(4);

  // At most max_chunks; a metadata read that fails says "not a hole", and is not remembered.
  store_.fail_exists = true;
  cache_->Holes(7 * kChunk, 3 * kChunk, 2, into);
  EXPECT_EQ(holes, (std::vector<bool>{false, false}));
  store_.fail_exists = false;
  cache_->Holes(7 * kChunk, kChunk, 64, into);
  EXPECT_EQ(holes, std::vector<bool>{true});
  EXPECT_EQ(store_.exists_log, (std::vector<uint64_t>{0, 1, 2, 5, 7, 8, 7}));

  // The store's answer is older than a write that came while it was on its way.
  store_.hold_exists = true;
  cache_->Holes(10 * kChunk, kChunk, 64, into);
  ASSERT_TRUE(WriteNow(10 * kChunk, std::string(kChunk, 'd')).ok());
  store_.ReleaseExists();
  EXPECT_EQ(holes, std::vector<bool>{false});
  store_.CompleteAll();
}

TEST_F(VolumeCacheTest, HolesReadsAtMostMaxLoadsMetadataAtOnce) {
  CacheLimits limits = Limits();
  limits.max_loads = 4;
  Make(limits, 64);
  for (uint64_t i = 0; i < 64; i += 3) store_.data[i] = std::string(kChunk, 'x');
  store_.hold_exists = true;
  std::vector<bool> a, b;
  cache_->Holes(0, 40 * kChunk, 64, [&](std::vector<bool> h) { a = std::move(h); });
  cache_->Holes(40 * kChunk, 24 * kChunk, 64, [&](std::vector<bool> h) { b = std::move(h); });
  size_t rounds = 0;
  while (store_.held_exists() > 0) {
    EXPECT_LE(store_.held_exists(), 4u);
    store_.ReleaseExists();
    ++rounds;
  }
  EXPECT_EQ(rounds, 16u);
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 24u);
  for (uint64_t i = 0; i < 64; ++i) EXPECT_EQ(i < 40 ? a[i] : b[i - 40], i % 3 != 0) << i;
}

TEST_F(VolumeCacheTest, AChunkDroppedFromMemoryIsRememberedAsStored) {
  CacheLimits limits = Limits();
  limits.cache_bytes = kChunk + VolumeCache::kEntryBytes;  // room for one chunk
  Make(limits);
  ASSERT_TRUE(WriteNow(0, std::string(kChunk, 'a')).ok());
  ASSERT_TRUE(WriteNow(kChunk, std::string(kChunk, 'b')).ok());
  ASSERT_TRUE(FlushNow().ok());
  // Chunk 0 left memory when chunk 1 was stored (the fake store answers at once).
  EXPECT_EQ(cache_->resident_bytes(), kChunk);
  EXPECT_EQ(ReadNow(2 * kChunk, 1), std::string(1, '\0'));  // a hole, loaded: in memory
  std::vector<bool> holes;
  cache_->Holes(0, 3 * kChunk, 64, [&](std::vector<bool> h) { holes = std::move(h); });
  EXPECT_EQ(holes, (std::vector<bool>{false, false, true}));
  EXPECT_TRUE(store_.exists_log.empty()) << "all three were known";
}

TEST_F(VolumeCacheTest, ZeroWithoutHolesStoresZerosAndNoChunkBecomesAHole) {
  // NBD's WRITE_ZEROES with NO_HOLE: chunk 1 zeroed whole, chunk 3 (a hole) and chunk 4
  // (stored) zeroed in part. All three end stored, as zeros where zeroed, and block status
  // calls none of them a hole; chunk 1's zeros take no memory while they wait.
  Make();
  store_.data[1] = std::string(kChunk, 'a');
  store_.data[4] = std::string(kChunk, 'b');
  store_.hold_stores = true;
  Got z;
  cache_->Zero(kChunk, kChunk, false, /*allocate=*/true, Into(z));
  ASSERT_TRUE(z.ok());
  Got z3, z4;
  cache_->Zero(3 * kChunk + 100, 200, false, true, Into(z3));
  cache_->Zero(4 * kChunk + 100, 200, false, true, Into(z4));
  ASSERT_TRUE(z3.ok() && z4.ok());
  EXPECT_EQ(cache_->resident_bytes(), kChunk) << "only chunk 4 holds bytes";
  std::vector<bool> holes;
  cache_->Holes(kChunk, 4 * kChunk, 64, [&](std::vector<bool> h) { holes = std::move(h); });
  EXPECT_EQ(holes, (std::vector<bool>{false, true, false, false})) << "chunks 1..4";
  EXPECT_EQ(Diff(ReadNow(kChunk, kChunk), std::string(kChunk, '\0')), "");
  store_.CompleteAll();
  store_.hold_stores = false;
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data.at(1), std::string(kChunk, '\0')), "") << "stored as zeros, not deleted";
  EXPECT_EQ(Diff(store_.data.at(3), std::string(kChunk, '\0')), "");
  const std::string chunk4 = std::string(100, 'b') + std::string(200, '\0') + std::string(kChunk - 300, 'b');
  EXPECT_EQ(Diff(store_.data.at(4), chunk4), "");
  EXPECT_EQ(store_.data.count(2), 0u);
  // A later write into the stored zeros keeps the rest zero; a TRIM still punches a hole.
  ASSERT_TRUE(WriteNow(kChunk + 10, "x").ok());
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data.at(1), std::string(10, '\0') + "x" + std::string(kChunk - 11, '\0')), "");
  Got t;
  cache_->Zero(kChunk, kChunk, false, Into(t));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(store_.data.at(1), "") << "a hole";
}

}  // namespace
}  // namespace ringstore::block
