// VolumeCache over the fake ChunkStore: zero-filled holes, read-modify-write, arrival order
// behind a pending load, Flush and FUA durability (with failed stores), holes from
// whole-chunk zeroing, timed writeback, clean-chunk eviction, load failures, and callbacks
// that issue more operations (also one that drops and reloads a chunk). (Which chunks are
// holes: volume_cache_holes_test.cc; the dirty limit, the replies it holds while stores fail,
// and zeroes in slices: volume_cache_limits_test.cc.)
#include <malloc.h>

#include "tests/blockgateway/volume_cache_test_support.h"

namespace ringstore::block {
namespace {

using namespace ringstore::block::cachetest;
using namespace std::chrono_literals;

TEST_F(VolumeCacheTest, UnwrittenChunksReadAsZeros) {
  Make();
  EXPECT_EQ(Diff(ReadNow(100, 3 * kChunk), std::string(3 * kChunk, '\0')), "");
  EXPECT_EQ(store_.load_log, (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(ReadNow(0, 1), std::string(1, '\0'));
  EXPECT_EQ(store_.load_log.size(), 4u) << "chunk 0 is cached now";
  Got g;
  cache_->Read(5, 0, IntoData(g));
  EXPECT_TRUE(g.ok());
  EXPECT_TRUE(g.data.empty());
}

TEST_F(VolumeCacheTest, WriteThenReadBackAcrossChunkBoundaries) {
  Make();
  std::string model(16 * kChunk, '\0');
  const std::string a = Pattern(9000, 1);
  ASSERT_TRUE(WriteNow(4000, a).ok());
  model.replace(4000, a.size(), a);
  const std::string b = Pattern(3, 2);
  ASSERT_TRUE(WriteNow(kChunk - 1, b).ok());  // straddles chunks 0 and 1
  model.replace(kChunk - 1, b.size(), b);
  EXPECT_EQ(Diff(ReadNow(0, 16 * kChunk), model), "");
  EXPECT_EQ(ReadNow(4090, 20), model.substr(4090, 20));
  EXPECT_EQ(Diff(ReadNow(2 * kChunk - 3, kChunk + 6), model.substr(2 * kChunk - 3, kChunk + 6)), "");
  // And durable the same way.
  store_.CompleteAll();
  ASSERT_TRUE(FlushNow().ok());
  for (uint64_t i = 0; i < 16; ++i) EXPECT_EQ(Diff(store_.Chunk(i), model.substr(i * kChunk, kChunk)), "") << i;
}

TEST_F(VolumeCacheTest, PartialWriteLoadsTheChunkFirstAndKeepsItsOldBytes) {
  Make();
  store_.data[1] = std::string(kChunk, 'a');
  store_.hold_loads = true;
  Got w;
  cache_->Write(kChunk + 100, "XYZ", false, Into(w));
  EXPECT_EQ(store_.load_log, std::vector<uint64_t>{1});
  EXPECT_EQ(w.calls, 0) << "answered before the old bytes were there";
  store_.CompleteLoadOf(1);
  EXPECT_TRUE(w.ok());
  std::string expect(kChunk, 'a');
  expect.replace(100, 3, "XYZ");
  EXPECT_EQ(Diff(ReadNow(kChunk, kChunk), expect), "");
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data[1], expect), "");
}

TEST_F(VolumeCacheTest, WholeChunkWriteDoesNotLoad) {
  Make();
  store_.data[2] = std::string(kChunk, 'a');
  store_.data[3] = std::string(kChunk, 'b');
  store_.hold_loads = true;
  const std::string whole = Pattern(kChunk, 3);
  Got w;
  cache_->Write(2 * kChunk, whole, false, Into(w));
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE(store_.load_log.empty());
  // Whole chunk 2 and the start of chunk 3: only chunk 3 loads.
  Got w2;
  cache_->Write(2 * kChunk, whole + "cc", false, Into(w2));
  EXPECT_EQ(store_.load_log, std::vector<uint64_t>{3});
  store_.CompleteAll();
  EXPECT_TRUE(w2.ok());
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data[2], whole), "");
  EXPECT_EQ(Diff(store_.data[3], "cc" + std::string(kChunk - 2, 'b')), "");
}

TEST_F(VolumeCacheTest, OperationsBehindAPendingLoadApplyInArrivalOrder) {
  Make();
  std::string model(16 * kChunk, '\0');
  store_.data[0] = Pattern(kChunk, 10);
  store_.data[1] = Pattern(kChunk, 11);
  model.replace(0, kChunk, store_.data[0]);
  model.replace(kChunk, kChunk, store_.data[1]);
  store_.hold_loads = true;

  std::vector<std::string> order;  // callbacks, in the order they ran
  std::vector<std::pair<std::string, std::string>> reads;  // (got, expected)
  reads.reserve(16);
  auto write = [&](const std::string& name, uint64_t off, const std::string& bytes) {
    model.replace(off, bytes.size(), bytes);
    cache_->Write(off, bytes, false, [&order, name](Status s) {
      EXPECT_TRUE(s.ok()) << name;
      order.push_back(name);
    });
  };
  auto zero = [&](const std::string& name, uint64_t off, uint64_t len) {
    model.replace(off, len, std::string(len, '\0'));
    cache_->Zero(off, len, false, [&order, name](Status s) {
      EXPECT_TRUE(s.ok()) << name;
      order.push_back(name);
    });
  };
  auto read = [&](const std::string& name, uint64_t off, uint64_t len) {
    reads.emplace_back("", model.substr(off, len));
    const size_t slot = reads.size() - 1;
    cache_->Read(off, len, [&order, &reads, slot, name](Result<std::string> r) {
      ASSERT_TRUE(r.ok()) << name;
      reads[slot].first = *r;
      order.push_back(name);
    });
  };
  write("w1", 100, std::string(800, 'x'));
  read("r1", 0, kChunk);
  write("w2", 0, std::string(kChunk, 'y'));  // whole chunk: still waits its turn
  write("w3", 50, std::string(100, 'z'));
  zero("z1", 200, 100);
  read("r2", 0, 2 * kChunk);
  write("w4", kChunk - 100, std::string(300, 'q'));  // chunks 0 and 1
  read("r3", kChunk - 200, 400);
  zero("z2", 0, kChunk);  // whole chunk: a hole, after everything above
  read("r4", 0, kChunk + 10);
  EXPECT_TRUE(order.empty()) << "something ran before the loads";
  EXPECT_EQ(store_.load_log, (std::vector<uint64_t>{0, 1}));
  store_.CompleteLoadOf(1);
  EXPECT_TRUE(order.empty()) << "chunk 0 is still loading";
  store_.CompleteLoadOf(0);
  EXPECT_EQ(order, (std::vector<std::string>{"w1", "r1", "w2", "w3", "z1", "r2", "w4", "r3", "z2", "r4"}));
  for (size_t i = 0; i < reads.size(); ++i) EXPECT_EQ(reads[i].first, reads[i].second) << "read " << i + 1;
  store_.hold_loads = false;
  EXPECT_EQ(Diff(ReadNow(0, 16 * kChunk), model), "");
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(store_.data[0], "") << "zeroed whole last: a hole";
  EXPECT_EQ(Diff(store_.Chunk(1), model.substr(kChunk, kChunk)), "");
}

TEST_F(VolumeCacheTest, FlushWaitsForEveryChunkDirtyAtFlushTime) {
  Make();
  store_.hold_stores = true;
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(WriteNow(i * kChunk + 10, Pattern(100, i)).ok());
  EXPECT_EQ(store_.pending_stores(), 0u) << "partial writes wait for writeback";
  Got f;
  cache_->Flush(Into(f));
  EXPECT_EQ(store_.pending_stores(), 3u);
  ASSERT_TRUE(WriteNow(3 * kChunk + 10, "later").ok());  // dirty after the flush was called
  store_.CompleteStoreOf(1);
  store_.CompleteStoreOf(0);
  EXPECT_EQ(f.calls, 0);
  store_.CompleteStoreOf(2);
  EXPECT_TRUE(f.ok());
  EXPECT_EQ(cache_->dirty_bytes(), kChunk) << "chunk 3 is not the flush's business";
  EXPECT_FALSE(store_.StorePending(3));
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(store_.data[i].substr(10, 100), Pattern(100, i));
  // Nothing dirty: a flush answers at once.
  store_.hold_stores = false;
  ASSERT_TRUE(FlushNow().ok());
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_TRUE(cache_->Idle());
}

TEST_F(VolumeCacheTest, FlushCoversAWriteMadeWhileTheChunkWasBeingStored) {
  Make();
  store_.hold_stores = true;
  ASSERT_TRUE(WriteNow(10, "one").ok());
  Got f1;
  cache_->Flush(Into(f1));
  ASSERT_TRUE(store_.StorePending(0));
  ASSERT_TRUE(WriteNow(10, "two").ok());
  Got f2;
  cache_->Flush(Into(f2));
  EXPECT_EQ(store_.pending_stores(), 1u) << "one store per chunk at a time";
  store_.CompleteStoreOf(0);
  EXPECT_TRUE(f1.ok());
  EXPECT_EQ(f2.calls, 0) << "the stored version predates the second write";
  EXPECT_EQ(store_.data[0].substr(10, 3), "one");
  ASSERT_TRUE(store_.StorePending(0));
  store_.CompleteStoreOf(0);
  EXPECT_TRUE(f2.ok());
  EXPECT_EQ(store_.data[0].substr(10, 3), "two");
}

TEST_F(VolumeCacheTest, FailedStoresFailTheFlushKeepTheDataAndALaterFlushSucceeds) {
  CacheLimits limits = Limits();
  limits.cache_bytes = 2 * kChunk;
  Make(limits);
  std::string model(16 * kChunk, '\0');
  for (uint64_t i = 0; i < 4; ++i) {
    const std::string p = Pattern(500, i);
    ASSERT_TRUE(WriteNow(i * kChunk + 7, p).ok());
    model.replace(i * kChunk + 7, p.size(), p);
  }
  store_.fail_stores = true;
  Got f;
  cache_->Flush(Into(f));
  EXPECT_EQ(f.calls, 1);
  EXPECT_EQ(f.status.code(), Code::kIOError) << f.status.ToString();
  EXPECT_EQ(cache_->dirty_bytes(), 4 * kChunk) << "nothing is dropped";
  EXPECT_TRUE(store_.data.empty());
  // Clean chunks come and go; the dirty ones stay, whatever the cache size.
  for (uint64_t i = 8; i < 16; ++i) ReadNow(i * kChunk, kChunk);
  EXPECT_EQ(Diff(ReadNow(0, 16 * kChunk), model), "");
  store_.fail_stores = false;
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(cache_->dirty_bytes(), 0u);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(Diff(store_.Chunk(i), model.substr(i * kChunk, kChunk)), "");
  EXPECT_GE(cache_->stats().store_failures, 4u);
}

TEST_F(VolumeCacheTest, OneFailedStoreFailsTheFlushAndOnlyThatChunkStaysDirty) {
  Make();
  store_.hold_stores = true;
  ASSERT_TRUE(WriteNow(10, "a").ok());
  ASSERT_TRUE(WriteNow(kChunk + 10, "b").ok());
  Got f;
  cache_->Flush(Into(f));
  store_.CompleteStoreOf(0, /*fail=*/true);
  store_.CompleteStoreOf(1);
  EXPECT_EQ(f.calls, 1) << "answered once";
  EXPECT_EQ(f.status.code(), Code::kIOError);
  EXPECT_EQ(cache_->dirty_bytes(), kChunk);
  Got f2;
  cache_->Flush(Into(f2));
  store_.CompleteAll();
  EXPECT_TRUE(f2.ok());
  EXPECT_EQ(store_.data[0].substr(10, 1), "a");
}

TEST_F(VolumeCacheTest, FuaWriteWaitsForItsOwnChunksOnly) {
  Make();
  store_.hold_stores = true;
  ASSERT_TRUE(WriteNow(10, "plain").ok());  // chunk 0, dirty
  Got fua;
  cache_->Write(2 * kChunk + 10, "forced", true, Into(fua));
  EXPECT_EQ(fua.calls, 0);
  EXPECT_TRUE(store_.StorePending(2));
  EXPECT_FALSE(store_.StorePending(0)) << "a FUA write does not flush the others";
  store_.CompleteStoreOf(2);
  EXPECT_TRUE(fua.ok());
  EXPECT_EQ(store_.data[2].substr(10, 6), "forced");
  EXPECT_EQ(cache_->dirty_bytes(), kChunk);
  // A FUA write spanning two chunks waits for both; a failure shows.
  Got fua2;
  cache_->Write(4 * kChunk - 2, "abcd", true, Into(fua2));
  EXPECT_TRUE(store_.StorePending(3));
  EXPECT_TRUE(store_.StorePending(4));
  store_.CompleteStoreOf(3);
  EXPECT_EQ(fua2.calls, 0);
  store_.CompleteStoreOf(4, /*fail=*/true);
  EXPECT_EQ(fua2.calls, 1);
  EXPECT_EQ(fua2.status.code(), Code::kIOError);
  EXPECT_EQ(ReadNow(4 * kChunk - 2, 4), "abcd") << "the data stays, dirty";
}

TEST_F(VolumeCacheTest, FuaZeroWaitsForItsChunk) {
  Make();
  store_.hold_stores = true;
  store_.data[1] = std::string(kChunk, 'a');
  Got z;
  cache_->Zero(kChunk, kChunk, true, Into(z));
  EXPECT_EQ(z.calls, 0);
  store_.CompleteStoreOf(1);
  EXPECT_TRUE(z.ok());
  EXPECT_EQ(store_.data[1], "");
}

TEST_F(VolumeCacheTest, HolesReadOrZeroedLeaveMemoryLikeChunksDo) {
  // A cache of 64 entries' worth: reading a thin volume of 4,096 chunks, then zeroing it
  // whole (as mkfs's discard does), keeps no more than that many clean entries.
  CacheLimits limits = Limits();
  limits.cache_bytes = 64 * VolumeCache::kEntryBytes;
  Make(limits, 4096);
  for (uint64_t i = 0; i < 4096; i += 64) EXPECT_EQ(Diff(ReadNow(i * kChunk, 64 * kChunk), std::string(64 * kChunk, '\0')), "");
  EXPECT_LE(cache_->entries(), 64u);
  // (Stores held and completed one at a time: this fake store answers inside the call, and
  // 4,096 stores that each start the next would nest 4,096 deep.)
  store_.hold_stores = true;
  Got z;
  cache_->Zero(0, 4096 * kChunk, false, Into(z));
  EXPECT_TRUE(z.ok());
  Got f;
  cache_->Flush(Into(f));
  store_.CompleteAll();
  EXPECT_TRUE(f.ok());
  store_.hold_stores = false;
  EXPECT_LE(cache_->entries(), 64u);
  EXPECT_EQ(Diff(ReadNow(100 * kChunk, kChunk), std::string(kChunk, '\0')), "");
}

#if !defined(__SANITIZE_ADDRESS__)
TEST_F(VolumeCacheTest, AHoleEntryTakesAboutTheMemoryTheCacheCountsForIt) {
  // cache_bytes counts kEntryBytes for an entry that holds no bytes; the entries of a thin
  // volume's holes must really take about that much, or the bound is a fiction. (With an
  // std::deque for the queue of each entry they took about 900 bytes against 256 counted: a
  // gateway that read or zeroed a thin volume grew to about 1 GB against --cache-mb 256.)
  constexpr uint64_t kHoles = 20000;
  CacheLimits limits = Limits();
  limits.cache_bytes = kHoles * VolumeCache::kEntryBytes;
  Make(limits, kHoles);
  const size_t before = mallinfo2().uordblks;
  for (uint64_t i = 0; i < kHoles; i += 64) ReadNow(i * kChunk, 64 * kChunk);
  const size_t after = mallinfo2().uordblks;
  ASSERT_EQ(cache_->entries(), kHoles);
  const double per_entry = static_cast<double>(after - before) / kHoles;
  EXPECT_LT(per_entry, 1.25 * VolumeCache::kEntryBytes) << per_entry << " bytes per hole";
}
#else
TEST_F(VolumeCacheTest, AHoleEntryTakesAboutTheMemoryTheCacheCountsForIt) {
  GTEST_SKIP() << "ASan replaces malloc, so mallinfo2 does not see the cache's memory";
}
#endif

TEST_F(VolumeCacheTest, ZeroOfAWholeChunkStoresAHoleWithoutLoading) {
  Make();
  store_.data[1] = std::string(kChunk, 'a');
  store_.data[2] = std::string(kChunk, 'b');
  store_.hold_loads = true;
  Got z;
  cache_->Zero(kChunk, 2 * kChunk, false, Into(z));
  EXPECT_TRUE(z.ok());
  EXPECT_TRUE(store_.load_log.empty());
  EXPECT_EQ(Diff(ReadNow(kChunk, 2 * kChunk), std::string(2 * kChunk, '\0')), "");
  EXPECT_EQ(cache_->resident_bytes(), 0u) << "holes take no memory";
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(store_.data[1], "");
  EXPECT_EQ(store_.data[2], "");
}

TEST_F(VolumeCacheTest, PartialZeroReadsModifiesAndWrites) {
  Make();
  store_.data[2] = std::string(kChunk, 'b');
  store_.hold_loads = true;
  Got z;
  cache_->Zero(2 * kChunk + 10, 20, false, Into(z));
  EXPECT_EQ(store_.load_log, std::vector<uint64_t>{2});
  EXPECT_EQ(z.calls, 0);
  store_.CompleteAll();
  EXPECT_TRUE(z.ok());
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data[2], std::string(10, 'b') + std::string(20, '\0') + std::string(kChunk - 30, 'b')), "");
  // A partial zero of a hole changes nothing and stores nothing.
  store_.hold_loads = false;
  Got z2;
  cache_->Zero(5 * kChunk + 1, 10, false, Into(z2));
  EXPECT_TRUE(z2.ok());
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(store_.data.count(5), 0u);
}

TEST_F(VolumeCacheTest, DirtyChunkIsWrittenBackAfterTheDelay) {
  Make();
  ASSERT_TRUE(WriteNow(10, "lazy").ok());
  EXPECT_TRUE(store_.store_log.empty());
  clock_.Advance(800ms);
  EXPECT_TRUE(store_.store_log.empty()) << "before writeback_delay";
  clock_.Advance(400ms);
  EXPECT_EQ(store_.store_log, std::vector<uint64_t>{0});
  EXPECT_EQ(store_.data[0].substr(10, 4), "lazy");
  EXPECT_EQ(cache_->dirty_bytes(), 0u);
  EXPECT_EQ(clock_.pending_timers(), 0u) << "nothing dirty, no timer";
}

TEST_F(VolumeCacheTest, ChunksAreWrittenBackInVolumeOrderNotInTheOrderWritten) {
  // Two sequential writers in different places, their writes interleaved (as nbdcopy's
  // threads write their parts of a disk): the chunks reach the store in volume order, so that
  // a node's log holds them in the order a sequential read asks for them. (Each chunk used to
  // be stored as soon as a write reached its end, in the order written.)
  Make();
  for (uint64_t k = 0; k < 3; ++k) {
    ASSERT_TRUE(WriteNow((8 + k) * kChunk, Pattern(kChunk, 8 + k)).ok());
    ASSERT_TRUE(WriteNow(k * kChunk, Pattern(kChunk, k)).ok());
  }
  EXPECT_TRUE(store_.store_log.empty()) << "stored as written";
  clock_.Advance(1200ms);
  EXPECT_EQ(store_.store_log, (std::vector<uint64_t>{0, 1, 2, 8, 9, 10}));
  for (uint64_t i : {0, 1, 2, 8, 9, 10}) EXPECT_EQ(Diff(store_.Chunk(i), Pattern(kChunk, i)), "") << i;
}

TEST_F(VolumeCacheTest, CleanChunksAreEvictedAndReloaded) {
  CacheLimits limits = Limits();
  limits.cache_bytes = 3 * kChunk;
  Make(limits);
  for (uint64_t i = 0; i < 10; ++i) store_.data[i] = Pattern(kChunk, i);
  for (uint64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(Diff(ReadNow(i * kChunk, kChunk), store_.data[i]), "");
    EXPECT_LE(cache_->resident_bytes(), limits.cache_bytes) << i;
  }
  EXPECT_EQ(store_.load_log.size(), 10u);
  EXPECT_EQ(Diff(ReadNow(9 * kChunk, kChunk), store_.data[9]), "");
  EXPECT_EQ(store_.load_log.size(), 10u) << "the latest chunk is still cached";
  EXPECT_EQ(Diff(ReadNow(0, kChunk), store_.data[0]), "");
  EXPECT_EQ(store_.load_log.size(), 11u) << "chunk 0 was evicted and is loaded again";
  // Cached now: 8, 9, 0. Least recently used goes first: touch 8, then read 1; 9 goes.
  EXPECT_EQ(ReadNow(8 * kChunk, 1), store_.data[8].substr(0, 1));
  EXPECT_EQ(ReadNow(1 * kChunk, 1), store_.data[1].substr(0, 1));
  const size_t loads = store_.load_log.size();
  EXPECT_EQ(ReadNow(8 * kChunk, 1), store_.data[8].substr(0, 1));
  EXPECT_EQ(store_.load_log.size(), loads) << "8 was used recently and stayed";
  EXPECT_EQ(ReadNow(9 * kChunk, 1), store_.data[9].substr(0, 1));
  EXPECT_EQ(store_.load_log.size(), loads + 1) << "9 was the least recently used";
  // A written chunk, once clean, can be evicted and reloads with the write.
  ASSERT_TRUE(WriteNow(5 * kChunk + 3, "written").ok());
  ASSERT_TRUE(FlushNow().ok());
  for (uint64_t i = 0; i < 4; ++i) ReadNow(i * kChunk, kChunk);
  EXPECT_LE(cache_->resident_bytes(), limits.cache_bytes);
  const size_t before = store_.load_log.size();
  EXPECT_EQ(ReadNow(5 * kChunk, 10), store_.data[5].substr(0, 3) + "written");
  EXPECT_EQ(store_.load_log.size(), before + 1);
}

TEST_F(VolumeCacheTest, SequentialReadsPrefetch) {
  CacheLimits limits = Limits();
  limits.readahead_chunks = 2;
  Make(limits);
  store_.data[3] = Pattern(kChunk, 3);
  ReadNow(0, 10);
  EXPECT_EQ(store_.load_log, std::vector<uint64_t>{0});
  ReadNow(kChunk, 10);  // follows chunk 0
  EXPECT_EQ(store_.load_log, (std::vector<uint64_t>{0, 2, 3, 1}));
  EXPECT_EQ(cache_->stats().readahead, 2u);
  EXPECT_EQ(Diff(ReadNow(3 * kChunk, kChunk), store_.data[3]), "");
  EXPECT_EQ(std::count(store_.load_log.begin(), store_.load_log.end(), 3u), 1) << "chunk 3 came from read-ahead";
}

TEST_F(VolumeCacheTest, FailedLoadFailsTheQueuedOpsAndALaterReadRetries) {
  Make();
  store_.data[0] = std::string(kChunk, 'a');
  store_.hold_loads = true;
  Got r1, w, r2;
  cache_->Read(0, 10, IntoData(r1));
  cache_->Write(5, "XXXXX", false, Into(w));
  cache_->Read(0, 10, IntoData(r2));
  store_.fail_loads = true;
  store_.CompleteAll();
  for (Got* g : {&r1, &w, &r2}) {
    EXPECT_EQ(g->calls, 1);
    EXPECT_FALSE(g->status.ok());
  }
  EXPECT_EQ(cache_->stats().load_failures, 1u);
  EXPECT_EQ(cache_->dirty_bytes(), 0u) << "the failed write applied nothing";
  store_.fail_loads = false;
  Got r3;
  cache_->Read(0, 10, IntoData(r3));
  EXPECT_EQ(store_.load_log.size(), 2u) << "the read loads again";
  store_.CompleteAll();
  EXPECT_TRUE(r3.ok());
  EXPECT_EQ(r3.data, std::string(10, 'a'));
  EXPECT_TRUE(cache_->Idle());
}

// A callback may start another operation at once (the NBD session parses the next request
// when a reply goes out). One started by a failed load's callback is new: it loads again
// instead of inheriting the old failure.
TEST_F(VolumeCacheTest, ReadIssuedFromAFailedLoadsCallbackLoadsAgain) {
  Make();
  store_.data[0] = std::string(kChunk, 'a');
  store_.hold_loads = true;
  Got first, second;
  cache_->Read(0, 10, [&](Result<std::string> r) {
    ++first.calls;
    first.status = r.ok() ? Status::Ok() : r.status();
    cache_->Read(0, 10, IntoData(second));
  });
  store_.fail_loads = true;
  store_.CompleteLoadOf(0);
  EXPECT_EQ(first.calls, 1);
  EXPECT_FALSE(first.status.ok());
  store_.fail_loads = false;
  store_.CompleteAll();
  EXPECT_TRUE(second.ok()) << second.status.ToString();
  EXPECT_EQ(second.data, std::string(10, 'a'));
}

// A callback run while a loaded chunk's queue drains may touch other chunks and so evict
// clean ones; the chunk whose queue is draining must keep its loaded bytes for the
// operations still queued on it.
TEST_F(VolumeCacheTest, EvictionFromACallbackDoesNotDropAChunkStillInUse) {
  CacheLimits limits = Limits();
  limits.cache_bytes = kChunk + VolumeCache::kEntryBytes;  // room for one chunk
  Make(limits);
  store_.data[0] = std::string(kChunk, 'a');
  store_.data[1] = std::string(kChunk, 'b');
  EXPECT_EQ(ReadNow(kChunk, 1), "b");  // chunk 1 cached
  store_.hold_loads = true;
  Got r, w;
  cache_->Read(0, 4, [&](Result<std::string> got) {
    ++r.calls;
    if (got.ok()) r.data = *got;
    // The next request: a read of chunk 1, which makes it the most recently used.
    EXPECT_EQ(ReadNow(kChunk, 1), "b");
  });
  cache_->Write(10, "XY", false, Into(w));  // queued behind the load, after the read
  store_.CompleteLoadOf(0);
  EXPECT_EQ(r.data, "aaaa");
  EXPECT_TRUE(w.ok());
  std::string expect(kChunk, 'a');
  expect.replace(10, 2, "XY");
  store_.hold_loads = false;
  EXPECT_EQ(Diff(ReadNow(0, kChunk), expect), "");
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data[0], expect), "");
}

// A load's last callback reads the chunk (so that, clean and past the cache's size, it is
// dropped), then writes part of it (so that it is loaded again). Before the fix the first
// load went on to run that write on the new entry before its load had come back, and the
// load then replaced the written bytes with the stored ones: the write was lost.
TEST_F(VolumeCacheTest, AWriteQueuedOnAChunkLoadedAgainWaitsForThatLoad) {
  CacheLimits limits = Limits();
  limits.cache_bytes = 0;  // clean chunks go as soon as they are unused
  Make(limits);
  store_.data[0] = std::string(kChunk, 'a');
  store_.hold_loads = true;
  Got r, again, w;
  cache_->Read(0, 4, [&](Result<std::string> got) {
    ++r.calls;
    if (got.ok()) r.data = *got;
    cache_->Read(0, 1, IntoData(again));  // the chunk is ready: answered, then dropped
    cache_->Write(10, "XY", false, Into(w));  // a part: loads it again
  });
  store_.CompleteLoadOf(0);
  EXPECT_EQ(r.data, "aaaa");
  EXPECT_EQ(again.data, "a");
  EXPECT_EQ(w.calls, 0) << "waits for the second load";
  store_.hold_loads = false;
  store_.CompleteAll();
  EXPECT_TRUE(w.ok());
  std::string expect(kChunk, 'a');
  expect.replace(10, 2, "XY");
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(Diff(store_.data[0], expect), "");
  EXPECT_EQ(Diff(ReadNow(0, kChunk), expect), "");
}

// The last callback of a load may evict (and so forget) the very chunk just loaded. Before
// the fix the cache went on using the erased entry: a sanitizer build reports the
// use-after-free; an ordinary one left a stale index in the LRU list.
TEST_F(VolumeCacheTest, ReadCallbackThatEvictsTheChunkItReadIsSafe) {
  CacheLimits limits = Limits();
  limits.cache_bytes = kChunk + VolumeCache::kEntryBytes;  // room for one chunk
  Make(limits);
  store_.data[0] = std::string(kChunk, 'a');
  store_.data[1] = std::string(kChunk, 'b');
  EXPECT_EQ(ReadNow(kChunk, 1), "b");
  store_.hold_loads = true;
  Got r;
  cache_->Read(0, 4, [&](Result<std::string> got) {
    ++r.calls;
    if (got.ok()) r.data = *got;
    store_.hold_loads = false;
    EXPECT_EQ(ReadNow(kChunk, 1), "b");  // chunk 1 becomes the most recent: chunk 0 goes
  });
  store_.CompleteLoadOf(0);
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.data, "aaaa");
  EXPECT_LE(cache_->resident_bytes(), kChunk);
  const size_t loads = store_.load_log.size();
  EXPECT_EQ(ReadNow(0, 4), "aaaa");
  EXPECT_EQ(store_.load_log.size(), loads + 1);
  EXPECT_EQ(ReadNow(kChunk, 1), "b");
  EXPECT_LE(cache_->resident_bytes(), kChunk);
  EXPECT_TRUE(cache_->Idle());
}

// A FUA write over two chunks: the first part is applied (and stored by age), the second
// waits for a load. Meanwhile the first chunk is evicted and read back in. The write is still
// answered once both parts are durable (the reloaded chunk is as durable as it gets).
TEST_F(VolumeCacheTest, FuaWriteWhoseFirstChunkWasEvictedAndReloadedIsAnswered) {
  CacheLimits limits = Limits();
  limits.cache_bytes = kChunk + VolumeCache::kEntryBytes;  // room for one chunk
  Make(limits);
  store_.data[1] = std::string(kChunk, 'b');
  store_.data[2] = std::string(kChunk, 'c');
  store_.hold_loads = true;
  Got fua;
  cache_->Write(0, std::string(kChunk, 'x') + "yy", true, Into(fua));
  EXPECT_TRUE(store_.LoadPending(1));
  clock_.Advance(1200ms);
  EXPECT_EQ(store_.data[0], std::string(kChunk, 'x')) << "the whole chunk went out by age";
  store_.hold_loads = false;
  const size_t loads = store_.load_log.size();
  EXPECT_EQ(ReadNow(2 * kChunk, 1), "c");  // evicts chunk 0
  EXPECT_EQ(ReadNow(0, 2), "xx");          // and loads it again
  EXPECT_EQ(store_.load_log.size(), loads + 2);
  EXPECT_EQ(fua.calls, 0);
  store_.CompleteLoadOf(1);
  EXPECT_TRUE(fua.ok()) << fua.calls << " " << fua.status.ToString();
  EXPECT_EQ(store_.data[1].substr(0, 3), "yyb");
}


}  // namespace
}  // namespace ringstore::block
