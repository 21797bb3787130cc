// VolumeCache::Holes over the fake ChunkStore, for NBD's block status: answers from memory,
// from what the cache saw of chunks it dropped, else from the store's metadata; a write that
// overtakes a metadata read wins; holes are never remembered; metadata reads are bounded.
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

}  // namespace
}  // namespace ringstore::block
