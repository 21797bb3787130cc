// CommitLog: the store's write-ahead log, in place of RocksDB's WAL. The writer thread appends
// each batch it commits here (a record: the batch's bytes, numbered by a log sequence number,
// its lsn), then writes the batch to RocksDB with RocksDB's WAL off. After a crash the store
// replays the records RocksDB's tables do not hold yet. docs/storage-format.md §5a gives the
// layout and the reasons; in short, RocksDB's WAL appends to a file through the page cache,
// so each of its fsyncs also commits the file's new size to the file system's journal, and
// it checks records with a software CRC32C in Debian's build. Here segments are written once
// with zeros when created (only reserved, for a log that is never synced) and then
// overwritten in place, with O_DIRECT where the file system allows it (for sync
// durability): an fdatasync is then a flush of the disk's cache alone.
// Records are checked with XXH3.
//
// Segments are files DIR/NNNNNNNN.clog, of new_segment_bytes when created (larger for a
// record that needs it). A segment starts with a header block
// (the lsn of its first record and a random seed, new each time the segment is reused) and
// holds consecutive records, each on block boundaries. A record is valid only with the seed
// of its segment's header and the lsn that follows the one before it, so records of an
// earlier use of a segment, a torn write, or bytes of a value that happen to look like a record
// all end the log. Recovery walks from the segment holding the first record after what
// RocksDB has persisted and stops at the first record that is not valid. Appends never go on
// after a recovery: they start in a segment of their own, and every segment not on the walked
// chain loses its header first, so nothing written before a crash can follow them.
//
// A segment is reused once RocksDB's tables hold all its records (Release). Until then new
// segments are created, each written with zeros first (a moment of the writer's time; a log
// that is never synced only reserves the space, with fallocate). Free
// segments are deleted while all segments take more than max_bytes.
//
// Ownership: the RocksDbStore owns its CommitLog; segment files stay open while it lives.
// Thread-safety: Recover, Append, Release and the accessors are for one thread (the store's
// writer; Recover before any other call). Sync may be called from any thread, also while
// Append runs, and by several at once (they take turns): it returns once every record
// appended before the call is durable, or with the error of the first Sync that failed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dht/random.h"
#include "dht/status.h"
#include "storage/file_io.h"

namespace ringstore {

class CommitLog {
 public:
  static constexpr uint64_t kDefaultSegmentBytes = 32u << 20;
  static constexpr uint64_t kRecordHeaderBytes = 24;
  // The bytes a record of a payload this size takes, block padding included.
  static uint64_t RecordBytes(uint64_t payload) { return AlignToBlock(kRecordHeaderBytes + payload); }

  // Opens (creating it if missing) the log in dir. new_segment_bytes is the size of segments
  // created from now on (a larger one is made for a record that needs it); Release deletes
  // free segments while all of them take more than max_bytes. seed starts the generator of
  // the segments' seeds: it must differ from one Open of dir to the next (the store draws it
  // from the OS), so that a segment reused after a crash never gets a seed it had before.
  // direct: write with O_DIRECT where the file system allows it, for a store that syncs each
  // group (an fdatasync then waits for the disk's cache alone). Without it records go through
  // the page cache, for a store that does not sync them: an append is then a copy, and the
  // kernel writes it back later.
  static Result<std::unique_ptr<CommitLog>> Open(const std::string& dir, uint64_t new_segment_bytes,
                                                 uint64_t max_bytes, uint64_t seed, bool direct = true);
  ~CommitLog();
  CommitLog(const CommitLog&) = delete;
  CommitLog& operator=(const CommitLog&) = delete;

  // Calls apply(lsn, payload) for each record after `after`, in order, until the first that
  // is not valid; an error from apply, or any read error, stops it and is returned. Then
  // zeroes the headers of the segments not walked, and fdatasyncs them and the walked ones.
  // The first Append then starts a segment of its own, with the lsn after the last record
  // applied (or after `after`).
  struct Recovered {
    uint64_t applied = 0;  // records replayed
    // Segments that did not follow on from the end were discarded: a crash lost or tore
    // writes before theirs (which were never acknowledged with sync durability).
    bool dropped = false;
  };
  Result<Recovered> Recover(uint64_t after, const std::function<Status(uint64_t, std::string_view)>& apply);

  // The lsn the next Append gets.
  uint64_t next_lsn() const { return next_lsn_; }
  // Writes one record. Not durable until a Sync that starts after it returns (with O_DIRECT
  // it has reached the device, so it survives a crash of the process). After a failure the
  // log refuses every later append.
  Result<uint64_t> Append(std::string_view payload);
  // fdatasync of every segment written since the last Sync started.
  Status Sync();
  // Every record up to lsn is in RocksDB's tables: segments holding nothing later may be
  // reused (the one appended to excepted). Free segments are then deleted while the segments
  // take more than max_bytes, files too small to use always.
  void Release(uint64_t lsn);
  // The bytes of the segments not free to reuse.
  uint64_t live_bytes() const;
  // Called when appends need another segment, before a free one is looked for: the store
  // passes Release what RocksDB has persisted, and may start a flush.
  void set_before_new_segment(std::function<void()> fn) { before_new_segment_ = std::move(fn); }

 private:
  struct Segment;
  CommitLog(std::string dir, uint64_t new_segment_bytes, uint64_t max_bytes, uint64_t seed, bool direct);
  Status StartSegment(uint64_t first_lsn, uint64_t min_bytes);
  Result<Segment*> CreateSegment(uint64_t bytes);
  Status FillSegment(Segment& seg);  // zeros (or reserved space), fdatasynced, and the directory
  // to_sync: the descriptor joins those the next Sync fdatasyncs.
  Status WriteBlocks(Segment& seg, const char* data, uint64_t len, uint64_t offset, bool to_sync = true);
  Status WipeHeader(Segment& seg);

  const std::string dir_;
  const uint64_t new_segment_bytes_;
  const uint64_t max_bytes_;
  SeededRandom seeds_;                             // writer only: the segments' seeds
  bool direct_;                                    // O_DIRECT wanted and allowed (not on tmpfs)
  const bool synced_;                              // O_DIRECT wanted: a store that syncs the log
  std::vector<std::unique_ptr<Segment>> segments_;  // writer only; by number
  Segment* current_ = nullptr;                     // writer only: appends go here
  uint64_t offset_ = 0;                            // writer only: the next record's place in it
  uint64_t next_lsn_ = 1;                          // writer only
  uint64_t next_number_ = 1;                       // writer only: of the next segment created
  Status failed_;                                  // writer only: a failed append; sticky
  AlignedBuffer buffer_;                           // writer only
  std::function<void()> before_new_segment_;       // writer only
  mutable std::mutex mu_;
  std::set<int> unsynced_;                         // guarded by mu_: descriptors written since a Sync
  std::mutex sync_mu_;                             // held through a whole Sync
  Status sync_failed_;                             // guarded by sync_mu_; sticky
};

}  // namespace ringstore
