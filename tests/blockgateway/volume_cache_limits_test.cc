// VolumeCache over the fake ChunkStore: the dirty limit, which holds the replies of writes
// and zeroes until writeback catches up, and stores that fail (not retried in a loop; held
// replies answered EIO rather than never); a zero of many chunks, applied in slices so that
// it too stays within the limit.
#include <pthread.h>

#include <cstdlib>

#include "tests/blockgateway/volume_cache_test_support.h"

namespace ringstore::block {
namespace {

using namespace ringstore::block::cachetest;
using namespace std::chrono_literals;

class DirtyLimitTest : public VolumeCacheTest {
 protected:
  // A limit of two chunks, stores held, and a write to each of three chunks ("a", "b", "c"
  // at byte 10): the third write's reply is held, into w.
  void HoldAWrite(Got& w) {
    CacheLimits limits = Limits();
    limits.dirty_bytes = 2 * kChunk;
    Make(limits);
    store_.hold_stores = true;
    ASSERT_TRUE(WriteNow(10, "a").ok());
    ASSERT_TRUE(WriteNow(kChunk + 10, "b").ok());
    cache_->Write(2 * kChunk + 10, "c", false, Into(w));
    ASSERT_EQ(w.calls, 0) << "over the dirty limit";
  }
};

TEST_F(DirtyLimitTest, DirtyLimitHoldsWriteRepliesUntilStoresComplete) {
  Got w;
  ASSERT_NO_FATAL_FAILURE(HoldAWrite(w));
  EXPECT_EQ(cache_->stats().throttled, 1u);
  EXPECT_GE(store_.pending_stores(), 1u) << "writeback starts under pressure";
  EXPECT_EQ(ReadNow(2 * kChunk + 10, 1), "c") << "the write is applied, only its reply waits";
  ASSERT_TRUE(store_.CompleteStoreOf(store_.StorePending(0) ? 0 : 1));
  EXPECT_TRUE(w.ok());
  store_.CompleteAll();
  store_.hold_stores = false;
  ASSERT_TRUE(FlushNow().ok());
  EXPECT_EQ(store_.data[2].substr(10, 1), "c");
}

TEST_F(VolumeCacheTest, AStoreThatFailsAtOnceIsNotTriedAgainAtOnce) {
  // Two whole chunks, over half the dirty limit: memory pressure sends them to the store, and
  // the store refuses at once (as a node refuses a client without the right role). The cache
  // tries each again a second later, not in a loop.
  CacheLimits limits = Limits();
  limits.dirty_bytes = 3 * kChunk;
  Make(limits);
  store_.fail_stores = true;
  ASSERT_TRUE(WriteNow(0, Pattern(kChunk, 1)).ok());
  ASSERT_TRUE(WriteNow(kChunk, Pattern(kChunk, 2)).ok());
  EXPECT_LE(store_.store_log.size(), 4u);
  const size_t tried = store_.store_log.size();
  clock_.Advance(500ms);
  EXPECT_EQ(store_.store_log.size(), tried) << "within the delay";
  store_.fail_stores = false;
  clock_.Advance(1s);
  EXPECT_EQ(store_.Chunk(0), Pattern(kChunk, 1));
  EXPECT_EQ(store_.Chunk(1), Pattern(kChunk, 2));
  ASSERT_TRUE(FlushNow().ok());
}

TEST_F(DirtyLimitTest, HeldRepliesFailWhenStoresFailAndTheBytesStay) {
  // The cluster has lost quorum: every store fails (after the chunk store's retries). A write
  // held by the dirty limit is answered EIO, not left waiting for the cluster to come back;
  // its bytes stay in the cache and are written back once stores work again.
  Got w;
  ASSERT_NO_FATAL_FAILURE(HoldAWrite(w));
  ASSERT_GE(store_.pending_stores(), 1u);
  store_.fail_stores = true;
  store_.CompleteAll();
  EXPECT_EQ(w.calls, 1) << "a held write is answered once a store has failed";
  EXPECT_EQ(w.status.code(), Code::kIOError) << w.status.ToString();
  EXPECT_EQ(ReadNow(2 * kChunk + 10, 1), "c");
  // Until a store succeeds, writes and zeroes that find the limit passed are refused before
  // they are applied, so a client writing through the errors cannot grow dirty memory.
  Got refused, refused_zero;
  cache_->Write(3 * kChunk + 10, "d", false, Into(refused));
  EXPECT_EQ(refused.calls, 1);
  EXPECT_EQ(refused.status.code(), Code::kIOError) << refused.status.ToString();
  cache_->Zero(0, kChunk, false, Into(refused_zero));
  EXPECT_EQ(refused_zero.status.code(), Code::kIOError) << refused_zero.status.ToString();
  EXPECT_EQ(ReadNow(3 * kChunk + 10, 1), std::string(1, '\0')) << "a refused write is not applied";
  EXPECT_EQ(ReadNow(10, 1), "a") << "nor a refused zero";
  EXPECT_EQ(cache_->dirty_bytes(), 3 * kChunk);
  // The cluster comes back: the next writeback stores every byte.
  store_.fail_stores = false;
  store_.hold_stores = false;
  clock_.Advance(2s);
  EXPECT_EQ(cache_->dirty_bytes(), 0u);
  EXPECT_EQ(store_.data[0].substr(10, 1), "a");
  EXPECT_EQ(store_.data[1].substr(10, 1), "b");
  EXPECT_EQ(store_.data[2].substr(10, 1), "c");
}

TEST_F(DirtyLimitTest, APartialOutageStillBoundsDirtyData) {
  // Chunk 0 cannot be stored (its replicas are down) while chunk 1 can: a store that works
  // in between must not reopen the door while dirty data is over the limit.
  Got held;
  ASSERT_NO_FATAL_FAILURE(HoldAWrite(held));
  Got fourth;
  cache_->Write(3 * kChunk + 10, "d", false, Into(fourth));
  ASSERT_TRUE(store_.StorePending(0) && store_.StorePending(1));
  ASSERT_TRUE(store_.CompleteStoreOf(0, true));
  ASSERT_TRUE(store_.CompleteStoreOf(1, false));
  ASSERT_GT(cache_->dirty_bytes(), 2 * kChunk);
  Got refused;
  cache_->Write(5 * kChunk + 10, "e", false, Into(refused));
  EXPECT_EQ(refused.calls, 1);
  EXPECT_EQ(refused.status.code(), Code::kIOError) << "a write was taken in with chunk 0 still failing";
  // Chunk 0 stored at last: writes are taken in again.
  store_.hold_stores = false;
  store_.CompleteAll();
  clock_.Advance(2s);
  EXPECT_EQ(cache_->dirty_bytes(), 0u);
  ASSERT_TRUE(WriteNow(5 * kChunk + 10, "e").ok());
  EXPECT_TRUE(cache_->Admit().ok());
}

TEST_F(VolumeCacheTest, ZeroRepliesAreHeldByTheDirtyLimitToo) {
  // A TRIM of many whole chunks makes as many chunks to delete: its reply waits, as a
  // write's does, until writeback has brought the dirty bytes under the limit.
  CacheLimits limits = Limits();
  limits.dirty_bytes = 2 * kChunk;
  Make(limits);
  store_.hold_stores = true;
  Got z;
  cache_->Zero(0, 8 * kChunk, false, Into(z));
  EXPECT_EQ(z.calls, 0) << "eight chunks to delete, the limit is two";
  EXPECT_EQ(cache_->stats().throttled, 1u);
  // Applied a slice (one chunk, half the limit) at a time: what arrives meanwhile waits.
  Got r;
  cache_->Read(0, 8 * kChunk, IntoData(r));
  EXPECT_EQ(r.calls, 0) << "a read waits behind the zero";
  while (z.calls == 0 && store_.pending_stores() > 0) store_.CompleteStore(0);
  EXPECT_TRUE(z.ok());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.data, std::string(8 * kChunk, '\0'));
  EXPECT_LE(cache_->dirty_bytes(), limits.dirty_bytes);
  // And when the deletes fail, the reply is EIO rather than never.
  Got z2;
  cache_->Zero(8 * kChunk, 8 * kChunk, false, Into(z2));
  ASSERT_EQ(z2.calls, 0);
  store_.fail_stores = true;
  store_.CompleteAll();
  EXPECT_EQ(z2.calls, 1);
  EXPECT_EQ(z2.status.code(), Code::kIOError);
  store_.fail_stores = false;
  store_.hold_stores = false;
  clock_.Advance(2s);
  ASSERT_TRUE(FlushNow().ok());
}

TEST_F(VolumeCacheTest, StoresThatFailInsideTheCallDoNotNestAChunkDeep) {
  // A store that fails before it returns (a gateway whose lease is gone refuses so) ends in
  // OnStored, whose Pump started the next store: one nesting per dirty chunk, 20,000 here,
  // deeper than a thread's stack allows. Run where an overflow shows as a crash of a child.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        constexpr uint64_t kMany = 20000;
        CacheLimits limits = Limits();
        limits.dirty_bytes = (kMany + 1) * kChunk;
        Make(limits, kMany);
        store_.hold_stores = true;
        const std::string bytes(kChunk, 'd');
        for (uint64_t i = 0; i < kMany; ++i) cache_->Write(i * kChunk, bytes, false, [](Status) {});
        store_.fail_stores = true;
        store_.hold_stores = false;
        // On a thread of 1 MiB of stack, so that the depth, not luck, decides.
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1u << 20);
        pthread_t t;
        auto run = [](void* self) -> void* {
          static_cast<FakeStore*>(self)->CompleteStore(0);
          return nullptr;
        };
        if (pthread_create(&t, &attr, run, &store_) != 0) std::_Exit(2);
        pthread_join(t, nullptr);
        // Every chunk was tried once: failed, or still held (those in flight before).
        std::_Exit(cache_->stats().store_failures + store_.pending_stores() == kMany ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

// A clock that moves on 100 ms each time it is read, and a store that holds its calls until
// told to refuse; from then on it refuses every store before it returns (until `limit`
// calls: past that it holds them again, so that a loop that would never end does end).
class SteppingClock final : public Clock {
 public:
  Duration Now() const override { return now_ += std::chrono::milliseconds(100); }
  int64_t WallMicros() const override { return 0; }
  TimerId Schedule(Duration, std::function<void()>) override { return ++timers_; }
  void Cancel(TimerId) override {}

 private:
  mutable Duration now_{std::chrono::seconds(1000)};
  TimerId timers_ = 0;
};
class RefusingStore final : public ChunkStore {
 public:
  explicit RefusingStore(size_t limit) : limit_(limit) {}
  bool refuse = false;
  size_t refused = 0;
  std::vector<std::function<void(Status)>> held;
  void Load(uint64_t, std::function<void(Result<std::string>)> done) override { done(std::string()); }
  void Store(uint64_t, std::string, std::function<void(Status)> done) override {
    if (!refuse || refused >= limit_) return held.push_back(std::move(done));
    ++refused;
    done(Status::IOError("refused"));
  }
  void Exists(uint64_t, std::function<void(Result<bool>)> done) override { done(false); }

 private:
  size_t limit_;
};

TEST(VolumeCachePumpTest, AStoreRefusedInsideTheCallIsNotTriedAgainInTheSameCall) {
  // Each chunk refused is due again a second later. A Pump that read the clock again each
  // round (found in review) came back to the first ones while still working through the
  // rest; with the clock moving (a slow pass on a real one) it never ended.
  constexpr uint64_t kMany = 2000;
  SteppingClock clock;
  RefusingStore store(20 * kMany);
  CacheLimits limits = Limits();
  limits.dirty_bytes = kMany * kChunk;  // all admitted; over half of it, the pressure scan runs
  VolumeCache cache(Meta(kMany), store, clock, limits);
  const std::string bytes(kChunk - 1, 'd');  // partial: no store asked for at once
  for (uint64_t i = 0; i < kMany; ++i) cache.Write(i * kChunk, bytes, false, [](Status) {});
  ASSERT_EQ(store.held.size(), limits.max_stores) << "stores in flight, held";
  store.refuse = true;
  auto first = std::move(store.held.front());
  store.held.erase(store.held.begin());
  first(Status::IOError("refused"));  // its Pump works through every dirty chunk in one call
  EXPECT_GE(store.refused, kMany - 2 * limits.max_stores);
  EXPECT_LE(store.refused, kMany) << "each dirty chunk tried once in the call, not again and again";
}

class ZeroSliceTest : public VolumeCacheTest {
 protected:
  static constexpr uint64_t kChunks = 64;
  // A volume of kChunks chunks, each written with its own pattern and stored; a dirty limit
  // of four chunks (slices of two); stores held from then on.
  void WriteAll() {
    CacheLimits limits = Limits();
    limits.dirty_bytes = 4 * kChunk;
    Make(limits, kChunks);
    for (uint64_t i = 0; i < kChunks; ++i) ASSERT_TRUE(WriteNow(i * kChunk, Pattern(kChunk, i)).ok());
    store_.CompleteAll();
    ASSERT_TRUE(FlushNow().ok());
    store_.hold_stores = true;
  }
  static constexpr uint64_t kBound = 4 * kChunk + 2 * kChunk;  // the limit, and one slice
};

TEST_F(ZeroSliceTest, AZeroOfAWholeVolumeHoldsNoMoreThanTheDirtyLimit) {
  // As mkfs's discard of a whole device: before slices, every chunk of the range became a
  // dirty entry at once (a million of them for 4 GiB of 4 KiB chunks).
  ASSERT_NO_FATAL_FAILURE(WriteAll());
  Got z;
  cache_->Zero(0, kChunks * kChunk, false, Into(z));
  EXPECT_EQ(z.calls, 0) << "held by the dirty limit";
  EXPECT_LE(cache_->dirty_bytes(), kBound);
  while (z.calls == 0 && store_.pending_stores() > 0) {
    store_.CompleteStore(0);
    EXPECT_LE(cache_->dirty_bytes(), kBound);
  }
  EXPECT_TRUE(z.ok());
  store_.hold_stores = false;
  store_.CompleteAll();
  ASSERT_TRUE(FlushNow().ok());
  for (uint64_t i = 0; i < kChunks; ++i) EXPECT_TRUE(store_.data[i].empty()) << "chunk " << i << " is a hole";
  EXPECT_EQ(Diff(ReadNow(0, kChunks * kChunk), std::string(kChunks * kChunk, '\0')), "");
}

TEST_F(ZeroSliceTest, AFuaZeroInSlicesAnswersOnceEverySliceIsStored) {
  ASSERT_NO_FATAL_FAILURE(WriteAll());
  Got z;
  // Partial first and last chunks: those are zeroed in part and kept.
  cache_->Zero(10, kChunks * kChunk - 20, true, Into(z));
  size_t stores = 0;
  while (z.calls == 0 && store_.pending_stores() > 0) {
    store_.CompleteStore(0);
    ++stores;
    EXPECT_LE(cache_->dirty_bytes(), kBound);
  }
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(stores, kChunks);
  std::string first = Pattern(kChunk, 0);
  first.replace(10, kChunk - 10, kChunk - 10, '\0');
  std::string last = Pattern(kChunk, kChunks - 1);
  last.replace(0, kChunk - 10, kChunk - 10, '\0');
  EXPECT_EQ(Diff(store_.Chunk(0), first), "");
  EXPECT_EQ(Diff(store_.Chunk(kChunks - 1), last), "");
  for (uint64_t i = 1; i + 1 < kChunks; ++i) EXPECT_TRUE(store_.data[i].empty()) << "chunk " << i << " is a hole";
}

TEST_F(ZeroSliceTest, AZeroInSlicesIsAppliedWholeEvenWhenASliceFails) {
  // As a failed write is: applied, answered with the failure, written back later.
  ASSERT_NO_FATAL_FAILURE(WriteAll());
  Got z;
  cache_->Zero(0, kChunks * kChunk, true, Into(z));
  Got w;
  const uint64_t at = (kChunks - 1) * kChunk + 5;
  cache_->Write(at, "w", false, Into(w));  // a chunk the zero has not reached: applied after it
  EXPECT_EQ(w.calls, 0);
  store_.fail_stores = true;
  store_.CompleteAll();
  ASSERT_EQ(z.calls, 1);
  EXPECT_EQ(z.status.code(), Code::kIOError);
  EXPECT_EQ(w.calls, 1);
  store_.fail_stores = false;
  store_.hold_stores = false;
  clock_.Advance(2s);
  ASSERT_TRUE(FlushNow().ok());
  std::string want(kChunks * kChunk, '\0');
  want[at] = 'w';
  EXPECT_EQ(Diff(ReadNow(0, kChunks * kChunk), want), "");
  for (uint64_t i = 0; i + 1 < kChunks; ++i) EXPECT_TRUE(store_.data[i].empty()) << "chunk " << i << " is a hole";
  EXPECT_EQ(Diff(store_.Chunk(kChunks - 1), want.substr(at - 5, kChunk)), "");
}

TEST_F(ZeroSliceTest, OnlyWhatSharesAChunkWithTheRestOfAZeroWaitsForIt) {
  ASSERT_NO_FATAL_FAILURE(WriteAll());
  Got z;
  cache_->Zero(0, 48 * kChunk, false, Into(z));  // chunks 0-47; the first slices go at once
  ASSERT_EQ(z.calls, 0);
  // Past the zero: served meanwhile.
  Got far;
  cache_->Read(60 * kChunk, 10, IntoData(far));
  EXPECT_TRUE(far.ok());
  EXPECT_EQ(far.data, Pattern(kChunk, 60).substr(0, 10));
  Got fw;  // applied at once (its reply waits on the dirty limit, as any write's)
  cache_->Write(50 * kChunk + 1, "F", false, Into(fw));
  EXPECT_EQ(ReadNow(50 * kChunk, 2), Pattern(kChunk, 50).substr(0, 1) + "F");
  // Inside what it has not reached: waits, and so does what shares a chunk with a waiting one.
  Got w, r;
  cache_->Write(40 * kChunk + 7, "X", false, Into(w));
  cache_->Read(40 * kChunk, 8, IntoData(r));
  EXPECT_EQ(w.calls, 0);
  EXPECT_EQ(r.calls, 0);
  while ((z.calls == 0 || w.calls == 0 || fw.calls == 0) && store_.pending_stores() > 0) store_.CompleteStore(0);
  EXPECT_TRUE(z.ok());
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE(fw.ok());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.data, std::string(7, '\0') + "X") << "the zero, then the write, then the read";
}

TEST_F(ZeroSliceTest, AWaitingOperationDoesNotWaitForALaterLongZeroElsewhere) {
  // A long zero that waited for the first one starts when it ends; an operation that waited
  // for the first one and touches nothing of the second runs then too (found in review: it
  // used to wait for the second as well).
  ASSERT_NO_FATAL_FAILURE(WriteAll());
  Got z1, z2, w;
  cache_->Zero(0, 16 * kChunk, false, Into(z1));           // chunks 0-15
  cache_->Zero(40 * kChunk, 16 * kChunk, false, Into(z2));  // chunks 40-55: waits for z1
  cache_->Write(10 * kChunk + 3, "W", false, Into(w));      // in what z1 has not reached
  while (z1.calls == 0 && store_.pending_stores() > 0) store_.CompleteStore(0);
  ASSERT_TRUE(z1.ok());
  EXPECT_EQ(z2.calls, 0) << "the second zero runs now, held by the dirty limit";
  Got r;
  cache_->Read(10 * kChunk, 4, IntoData(r));
  EXPECT_TRUE(r.ok()) << "the write ran once z1 was done, and nothing holds this read";
  EXPECT_EQ(r.data, std::string(3, '\0') + "W");
  while ((z2.calls == 0 || w.calls == 0) && store_.pending_stores() > 0) store_.CompleteStore(0);
  EXPECT_TRUE(z2.ok());
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(ReadNow(40 * kChunk, 4), std::string(4, '\0'));
}

}  // namespace
}  // namespace ringstore::block
