// VolumeCache: the block gateway's view of one volume. It turns byte-range reads, writes and
// zeroing into whole-chunk loads and stores, and keeps chunks in memory between them:
//  - a partial write loads the chunk first (read-modify-write); a write that covers a whole
//    chunk does not;
//  - operations on one chunk apply in the order they arrived, also while a load is pending,
//    so overlapping writes end as they would on a local file;
//  - writes are acknowledged once applied in memory (a volatile write cache, as a disk has)
//    and written back whole in the background, in volume order: any dirty chunk after
//    writeback_delay, and the lowest ones when dirty memory passes half of dirty_bytes (a
//    chunk zeroed whole is still stored at once: a delete, no bytes to gather). (Not
//    each chunk as soon as a write reached its end: with several writers at once, that put
//    their chunks into the nodes' logs interleaved, and a sequential read then read each log
//    out of order; docs/blockgateway.md, Performance.) Above dirty_bytes, writes and zeroes
//    wait for writeback before they are answered;
//  - Flush answers once every chunk dirty at the time it was called is durable at W
//    replicas; a FUA write or zero answers once its own chunks are;
//  - a read that follows the chunk before it prefetches the next readahead_chunks;
//  - clean chunks beyond cache_bytes are dropped, least recently used first, each counted
//    as its bytes and kEntryBytes (so that holes, which hold no bytes, are dropped too);
//  - Holes tells which chunks of a range are holes, for NBD's block status: from memory where
//    the chunk is there, else "not a hole" if the cache has seen it hold data, else from the
//    store's metadata. Holes are never remembered: if another gateway wrote the volume, a
//    stale answer can only say "data", which is always safe.
// A failed store leaves the chunk dirty (nothing is dropped) and fails the flushes waiting
// on it, and the replies the dirty limit holds if it is still over it; a later Flush tries
// again. While a dirty chunk's last store failed, writes and zeroes that find the dirty data
// over the limit are refused with IOError before they are applied. A failed load fails the operations
// waiting on it.
//
// Every connection to a volume shares its one VolumeCache, so a Flush on one connection
// covers writes made on all of them (what NBD's CAN_MULTI_CONN promises).
// Thread-safety: strand-confined. The ChunkStore and Clock must outlive it. Callbacks may
// run before the call returns (cached data) or later on the strand.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "blockgateway/chunk_store.h"
#include "blockgateway/rerun.h"
#include "blockgateway/volume.h"
#include "dht/clock.h"

namespace ringstore::block {

struct CacheLimits {
  uint64_t cache_bytes = 256ull << 20;  // clean chunks kept for reads
  uint64_t dirty_bytes = 256ull << 20;  // write and zero replies wait above this much
                                        // unwritten data (refused while stores fail)
  uint32_t max_stores = 32;             // chunk stores in flight
  uint32_t max_loads = 64;              // chunk loads in flight for read-ahead; and
                                        // metadata reads in flight for Holes
  uint32_t readahead_chunks = 8;
  Clock::Duration writeback_delay = std::chrono::seconds(1);
};

struct CacheStats {
  uint64_t loads = 0, stores = 0, store_failures = 0, load_failures = 0;
  uint64_t hits = 0, misses = 0, readahead = 0, throttled = 0;
};

class VolumeCache {
 public:
  VolumeCache(VolumeMeta meta, ChunkStore& store, Clock& clock, CacheLimits limits = {});
  ~VolumeCache();
  VolumeCache(const VolumeCache&) = delete;
  VolumeCache& operator=(const VolumeCache&) = delete;

  // Ranges must lie inside the volume (the caller checks).
  void Read(uint64_t offset, uint64_t length, std::function<void(Result<std::string>)> done);
  void Write(uint64_t offset, std::string data, bool fua, std::function<void(Status)> done);
  // Zeroes a range; whole chunks become holes (their objects are deleted).
  void Zero(uint64_t offset, uint64_t length, bool fua, std::function<void(Status)> done) {
    Zero(offset, length, fua, /*allocate=*/false, std::move(done));
  }
  // With allocate (NBD's NO_HOLE), every chunk of the range is left stored, as zeros where
  // it was a hole or is zeroed whole: none becomes a hole.
  // A range over more than one slice (half of dirty_bytes, in whole chunks, aligned) is
  // applied a slice at a time, each after the one before was answered (held by the dirty
  // limit, or for FUA stored), so that one zero of a whole volume holds no more in memory
  // than the dirty limit allows while writeback keeps up. Reads, writes, zeroes and Holes
  // that arrive meanwhile and touch a chunk it has not applied yet wait behind it, and so do
  // those that share a chunk with one waiting (so operations on a chunk keep their order;
  // writes and zeroes are admitted, or refused, when they arrive); the rest of the volume is
  // served meanwhile, but for another zero in slices, which waits for this one. A Flush
  // never waits: it covers only what was answered before it. A slice answered with a failure
  // does not end it: like a failed write, all of it is applied, and the first failure is its
  // answer. (So while stores fail, the slices go on as fast as the held replies fail: the
  // bound is then the range, as it was before slices.)
  void Zero(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done);
  void Flush(std::function<void(Status)> done);
  // For each chunk of [offset, offset + length), up to max_chunks from the first: true if it
  // is known to be a hole (reads as zeros, stores nothing). A chunk being loaded or changed,
  // or whose metadata could not be read, counts as not a hole.
  void Holes(uint64_t offset, uint64_t length, uint32_t max_chunks, std::function<void(std::vector<bool>)> done);

  const VolumeMeta& meta() const { return meta_; }
  uint64_t dirty_bytes() const { return dirty_.size() * meta_.chunk_size; }
  uint64_t resident_bytes() const { return resident_bytes_; }
  // What a chunk's entry costs in memory besides its bytes, for the cache_bytes bound.
  static constexpr uint64_t kEntryBytes = 256;
  // Chunks in memory, clean or not (holes too).
  size_t entries() const { return chunks_.size(); }
  // Nothing dirty, loading or storing.
  bool Idle() const { return dirty_.empty() && Quiet(); }
  // Nothing loading or storing (dirty chunks may be left): the store may be destroyed.
  bool Quiet() const { return stores_in_flight_ == 0 && loads_in_flight_ == 0; }
  const CacheStats& stats() const { return stats_; }
  // OK, or why a write or zero is refused before it is applied: dirty data is over the limit
  // and some dirty chunk's last store failed (the memory bound while writeback cannot catch
  // up, also when only some chunks fail). Rewrites of chunks already dirty are refused too.
  Status Admit() const;

 private:
  enum class State { kAbsent, kLoading, kReady };
  struct Waiter {
    uint64_t version;
    std::function<void(Status)> done;
  };
  struct Chunk {
    State state = State::kAbsent;
    std::string data;          // kReady: chunk_size bytes, or empty for a hole (or zeros)
    bool zeros = false;        // kReady with data empty: zeros to store as bytes (NO_HOLE),
                               // not a hole; kept empty in memory all the same
    uint64_t version = 0;      // of the last change: numbers come from versions_, one count
                               // for the volume, so a chunk dropped and loaded again never
                               // reuses a number a FUA or flush may still be waiting for
    uint64_t durable = 0;      // the newest version known to be stored
    bool storing = false;
    bool store_failed = false;  // its last store failed (counted in failed_chunks_)
    bool urgent = false;       // queued in urgent_
    Clock::Duration dirtied_at{};
    // After a failed store: not stored again for memory pressure or age before this, so that
    // a store that fails at once (a refusal, not a timeout) is not retried in a loop. (A flush
    // or FUA asks again at once: one more try each, paced by the client.)
    Clock::Duration retry_at{};
    // Operations waiting for the load. A list, not a deque: an empty std::deque still holds
    // about 600 bytes, and most entries (clean chunks, holes) never queue anything.
    std::list<std::function<void(Status)>> queue;
    std::vector<Waiter> waiters;                    // flushes waiting for a version
    bool in_lru = false;
    std::list<uint64_t>::iterator lru;
  };
  // One chunk's part of an operation: [begin, end) within the chunk.
  struct Part {
    uint64_t index, begin, end, pos;  // pos: offset of the part within the operation
  };
  std::vector<Part> Split(uint64_t offset, uint64_t length) const;
  // Zero in slices: ZeroSlices applies the job's next slice with ZeroRange, which zeroes one
  // range in one go.
  struct ZeroJob;
  uint64_t ZeroSliceBytes() const;
  bool InSlices(uint64_t offset, uint64_t length) const;  // a zero of more than one slice
  void ZeroSlices(const std::shared_ptr<ZeroJob>& job);
  // Answers the job, then runs the operations held behind it.
  void FinishZero(const std::shared_ptr<ZeroJob>& job, Status s);
  // The operations themselves, once nothing holds them (see Zero). Write and Zero come here
  // after Admit: an operation held behind a zero was admitted on arrival.
  void ReadUnheld(uint64_t offset, uint64_t length, std::function<void(Result<std::string>)> done);
  void HolesUnheld(uint64_t offset, uint64_t length, uint32_t max_chunks, std::function<void(std::vector<bool>)> done);
  void WriteAdmitted(uint64_t offset, std::string data, bool fua, std::function<void(Status)> done);
  void ZeroAdmitted(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done);
  // Whether an operation on [offset, offset + length) must wait: it touches a chunk of what
  // a zero running in slices has not applied yet, or of an operation already waiting. Hold
  // queues it (op: the operation, to run unheld).
  bool MustWait(uint64_t offset, uint64_t length) const;
  void Hold(uint64_t offset, uint64_t length, std::function<void()> op, bool in_slices = false);
  struct Held;
  // Whether chunks [first, last] touch what the running zero has not reached, or an
  // operation held before held_end (MustWait and StaysHeld both ask it).
  bool Waits(uint64_t first, uint64_t last, std::list<Held>::const_iterator held_end) const;
  // Whether a held operation must go on waiting: for the zero running now (it touches a chunk
  // the zero has not reached, or is a long zero itself), or for one held before it that it
  // shares a chunk with.
  bool StaysHeld(std::list<Held>::const_iterator it) const;
  // Runs, in order, the held operations that need not wait any longer.
  void DrainHeld();
  void ZeroRange(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done);

  // Runs fn(chunk, status) once the chunk can be used, after the operations before it. With
  // need_data false (the operation replaces the whole chunk) no load is needed.
  void WithChunk(uint64_t index, bool need_data, std::function<void(Status)> fn);
  // The chunk's entry, created (as stored: durable up to now) when absent.
  Chunk& At(uint64_t index);
  void StartLoad(uint64_t index);
  void OnLoaded(uint64_t index, Result<std::string> r);
  void SetData(Chunk& c, std::string data);
  void MarkDirty(uint64_t index, Chunk& c);
  // Waits until every (chunk, version) is durable, then calls done with the first failure.
  void WaitDurable(std::vector<std::pair<uint64_t, uint64_t>> targets, std::function<void(Status)> done);
  void Urgent(uint64_t index);
  void Pump();
  void StartStore(uint64_t index);
  void OnStored(uint64_t index, uint64_t version, Status s);
  // Answers a write or zero applied in memory: at once, once durable (FUA), or once the
  // dirty limit allows.
  void Acknowledge(bool fua, std::vector<std::pair<uint64_t, uint64_t>> versions, std::function<void(Status)> done);
  void Touch(uint64_t index, Chunk& c);
  void Evict();
  void Readahead(uint64_t last_index);
  // Starts waiting metadata reads while fewer than max_loads are in flight.
  void PumpExists();
  // What memory says of chunk index: a hole or not, or nothing (ask the store).
  std::optional<bool> KnownHole(uint64_t index) const;
  // Notes what chunk index holds as stored, once it leaves memory or the store said: data
  // is remembered, a hole forgets what was.
  void Remember(uint64_t index, bool hole);
  void ArmTick();
  void Tick();

  const VolumeMeta meta_;
  ChunkStore& store_;
  Clock& clock_;
  const CacheLimits limits_;
  std::unordered_map<uint64_t, Chunk> chunks_;
  std::set<uint64_t> dirty_;            // chunks with version > durable
  std::deque<uint64_t> urgent_;         // chunks to store as soon as a slot frees
  std::list<uint64_t> lru_;             // clean resident chunks, least recent first
  std::deque<std::function<void(Status)>> throttled_;  // write and zero replies held by dirty_bytes
  std::shared_ptr<ZeroJob> zeroing_;                  // a zero running in slices
  struct Held {
    uint64_t first, last;  // the chunks it touches
    bool in_slices;        // a long zero: waits while another runs
    std::function<void()> op;
  };
  std::list<Held> held_ops_;  // operations that must wait, in arrival order
  Rerun draining_;            // DrainHeld
  uint64_t failed_chunks_ = 0;  // chunks whose last store failed (they stay dirty until stored)
  uint64_t resident_bytes_ = 0;
  uint32_t stores_in_flight_ = 0;
  uint32_t loads_in_flight_ = 0;
  uint64_t versions_ = 0;  // the last version number handed out
  // Chunks not in memory known to hold data (kData), one byte per chunk, made on first use;
  // a volume of more than kMaxKnownChunks chunks keeps none.
  enum Known : uint8_t { kUnknown = 0, kData = 1 };
  static constexpr uint64_t kMaxKnownChunks = 1ull << 26;  // 64 MiB of memory at most
  std::vector<uint8_t> known_;
  // Metadata reads for Holes: at most max_loads in flight, the rest wait in order.
  std::deque<std::pair<uint64_t, std::function<void(Result<bool>)>>> exists_waiting_;
  uint32_t exists_in_flight_ = 0;
  bool pumping_exists_ = false;
  Rerun pumping_;  // Pump
  Clock::TimerId tick_ = 0;
  bool tick_armed_ = false;
  CacheStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringstore::block
