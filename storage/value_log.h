// ValueLog: append-only segment files that hold large values apart from RocksDB, so that a
// large write is copied to disk once (not into the WAL, the memtable and later a blob file),
// and its checksum is our XXH3 (RocksDB's WAL uses a software CRC32C in Debian's build).
// docs/storage-format.md §2a gives the byte layout.
//
// A segment is DIR/NNNNNNNN.vlog: entries of a 48-byte entry header (magic, header checksum,
// object id, value size) followed by the value and zeros up to a 4 KiB boundary. Appends
// gather in one aligned buffer that Flush writes in one call, so a group commit costs one
// write and one device request, not one per value. A write with a value of 64 KiB or more
// uses O_DIRECT where the file system allows it: on this machine a write through the page
// cache costs more CPU than the copy into an aligned buffer, and so does a flush with an
// entry appended as bulk (repair traffic). Other small values go through the page cache,
// where reads of freshly written values find them. Sequential reads of values
// of 64 KiB or more use O_DIRECT too, through a few reused buffers with readahead of their
// own, and so do sparse streams, without readahead (ReadWindows); other reads go through the
// page cache. Each segment keeps two
// read-only descriptors (buffered, and O_DIRECT where allowed); the active one also its two
// write descriptors. Values are found by a ValuePointer (segment, offset of the value
// bytes) kept in the record's RocksDB entry; the
// value's checksum lives in the record header, so the log itself checks only entry headers
// (which garbage collection walks). Appends go to the one active segment; Open starts a new active
// segment so that a torn tail of an earlier run is never appended to.
//
// Ownership: the RocksDbStore owns its ValueLog. Segment files are kept open; Read holds a
// reference to the segment it reads, so a segment removed meanwhile stays readable until the
// read ends. Read of a removed segment gives NotFound (the caller reads the record's new
// pointer again).
// Thread-safety: Append, Flush, Sync, Remove, SealedSegments, ForEachEntry, CutTail and
// WriteForTest are for one thread (the store's writer). Read and ReadCached may be called from
// any thread at the same time; ReadCached never waits for I/O, and a segment's last reference
// is dropped on the writer thread (Remove keeps removed segments until no reader holds them).
// Pending entries that no Flush wrote are dropped with the ValueLog.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dht/object_id.h"
#include "dht/status.h"
#include "storage/file_io.h"
#include "storage/read_windows.h"

namespace ringstore {

struct ValuePointer {
  uint64_t segment = 0;
  uint64_t offset = 0;  // of the value's first byte in the segment file
  bool operator==(const ValuePointer&) const = default;
};

class ValueLog {
 public:
  static constexpr size_t kEntryHeaderBytes = 48;
  // Entries start on block boundaries and are padded to whole blocks (O_DIRECT I/O).
  static constexpr uint64_t kBlockBytes = kFileBlockBytes;
  static constexpr uint64_t kDefaultSegmentBytes = 64u << 20;
  // Segments whose entries are remembered (ForEachEntry): the newest ones written by this
  // run, 48 bytes of memory per entry (about 150 KiB for a segment of 16 KiB values).
  static constexpr size_t kIndexedSegments = 64;
  // A flush whose values are all smaller than this writes through the page cache, so that
  // the values are there for the reads that follow (the store's strand serves values this
  // small from there); any larger one makes it use O_DIRECT.
  static constexpr uint64_t kCachedWriteBytes = 64u << 10;
  // Pending entries are written once they reach this many bytes.
  static constexpr uint64_t kFlushBytes = 4u << 20;
  // A flush through the page cache writes at most this much per system call. On a kernel
  // without preemption (PREEMPT_NONE, this machine's), copying 4 MiB into new page-cache
  // pages keeps its CPU for several milliseconds that no other thread can have: a joining
  // node's writes held up its peers' GETs (docs/repair.md §8.2). A return to user space
  // every 32 KiB lets the scheduler switch.
  static constexpr uint64_t kCachedWriteSliceBytes = 32u << 10;

  // Creates dir if missing and opens every segment in it.
  static Result<std::unique_ptr<ValueLog>> Open(const std::string& dir,
                                                uint64_t segment_bytes = kDefaultSegmentBytes);
  ~ValueLog();
  ValueLog(const ValueLog&) = delete;
  ValueLog& operator=(const ValueLog&) = delete;

  // Adds one entry to the active segment. The entry is laid out in a buffer and reaches the
  // file at the latest at the next Flush or Sync (earlier once kFlushBytes are pending), so
  // a group of small values costs one write: the pointer must not be given to a reader
  // before then. Starts a new active segment first when this one has reached segment_bytes.
  // After an error, no pointer returned since the last successful Flush is valid.
  // A bulk entry (records a joining node pulls, say, that no one is about to read) makes its
  // flush use O_DIRECT whatever the size of its values: through the page cache a joiner's
  // pulls cost this VM up to 1.8 ms of kernel time per MiB, which no other thread could
  // preempt, as new page-cache pages came from memory the guest had handed back to the host
  // (docs/repair.md §8.3).
  Result<ValuePointer> Append(const ObjectId& id, std::string_view value, bool bulk = false);
  // Writes the pending entries (one pwrite).
  Status Flush();
  // Flush, then fdatasync of every segment written to since the last Sync.
  Status Sync();
  // The value of size bytes at p if the page cache holds all of it, read without any I/O
  // (so without blocking); nullopt otherwise. Any thread.
  std::optional<std::string> ReadCached(ValuePointer p, uint64_t size) const;
  // The value of size bytes at p. NotFound: no such segment (removed). Corruption: the file
  // ends before it. IOError: the read failed. Any thread.
  Result<std::string> Read(ValuePointer p, uint64_t size) const;
  // What the read windows did (for tests).
  ReadWindows::Counters read_window_counters() const { return windows_.counters(); }

  struct SegmentInfo {
    uint64_t number = 0;
    uint64_t bytes = 0;  // file length
  };
  // Every segment but the active one, oldest first.
  std::vector<SegmentInfo> SealedSegments() const;
  uint64_t active_segment() const { return active_; }
  // Bytes an entry with a value of value_size takes in its segment, padding included.
  static uint64_t EntryBytes(uint64_t value_size);
  // What a walk of a segment met besides good entries.
  struct Walk {
    bool damaged = false;     // a bad entry header with good entries after it
    uint64_t tail_bytes = 0;  // bytes after the last good entry with none after them
  };
  // Calls fn for each good entry of a segment, in order. A segment appended to by this run
  // (one of the last kIndexedSegments) is listed from memory, every entry it was given, and
  // the file is not read. Otherwise the file is read: at a block that does not start a good
  // entry the walk looks on, block by block, for the next one (so damage hides only the
  // entries it hits). IOError when the file cannot be read.
  Result<Walk> ForEachEntry(uint64_t segment,
                            const std::function<void(const ObjectId& id, ValuePointer p, uint64_t size)>& fn) const;
  // The last segment of the previous run (0 if none): the only one that can end in a torn
  // entry, left by a crash during an append.
  uint64_t previous_run_last() const { return previous_run_last_; }
  // Cuts a sealed segment's file to length (its torn tail off) and syncs it.
  Status CutTail(uint64_t segment, uint64_t length);
  // Forgets and deletes a sealed segment.
  Status Remove(uint64_t segment);
  // Test hook: overwrites bytes at p, bypassing every check.
  Status WriteForTest(ValuePointer p, std::string_view bytes);

 private:
  struct Segment;
  explicit ValueLog(std::string dir, uint64_t segment_bytes);
  Status StartSegment(uint64_t number);
  std::shared_ptr<Segment> Find(uint64_t number) const;
  void DropRetired();  // closes the removed segments no reader holds any more

  const std::string dir_;
  const uint64_t segment_bytes_;
  mutable std::mutex mu_;                                // guards segments_ (Read vs the writer)
  std::map<uint64_t, std::shared_ptr<Segment>> segments_;  // guarded by mu_
  uint64_t active_ = 0;                                  // writer only
  uint64_t active_bytes_ = 0;                            // writer only; pending bytes included
  uint64_t pending_bytes_ = 0;                           // writer only; at the buffer's start
  bool pending_large_ = false;                           // writer only: one is kCachedWriteBytes+ or bulk
  uint64_t previous_run_last_ = 0;                       // set by Open
  std::vector<uint64_t> unsynced_;                       // writer only
  struct IndexEntry {
    ObjectId id;
    uint64_t offset = 0;  // of the value
    uint64_t size = 0;
  };
  std::map<uint64_t, std::vector<IndexEntry>> index_;    // writer only: by segment
  std::vector<std::shared_ptr<Segment>> retired_;        // writer only: removed, maybe still read
  AlignedBuffer write_buffer_;                           // writer only: the pending entries
  mutable ReadWindows windows_;                          // large value reads; thread-safe
  bool forget_at_flush_ = false;                         // writer only: a failed flush's cut
};

}  // namespace ringstore
