// ReadWindows: sequential reads of large values from value-log segments, with O_DIRECT
// through a few reused, block-aligned buffers ("windows") instead of the page cache.
//
// Why (docs/storage-format.md §2a): on this kind of VM, memory the guest has not touched
// recently is slow to touch the first time, and a cold buffered read fills page-cache pages
// that are exactly that: reading a 512 MiB file of 256 KiB values cost 0.8-1.2 s of CPU
// through the page cache against 0.1 s with O_DIRECT into one reused buffer. O_DIRECT alone
// loses the kernel's readahead, so this does its own: for a stream, each load reads a whole
// aligned window of kWindowBytes, and a reader that finds the window it needs still loading
// first loads one of the next kReadAhead windows, so that a stream served by several threads
// keeps several reads in flight. (A sparse stream's loads are exact: below.)
//
// Only reads that look sequential come here. A read follows another of the same segment
// (among the last kRecentReads reads, of any segment) when it starts after that one's end,
// by at most its own length and kFollowSlack (so it may skip one entry of about its size:
// the reads of a stream come a little out of order, from concurrent readers or from values
// written concurrently). It is part of a stream when it is the third of a chain of reads
// each following the one before, or when a window holds its bytes.
//
// A sparse stream is a stream of which this log serves only some values: with N replicas a
// client reads each value from one of them, so each node is asked for about one value in N
// of a sequence that all N logs hold in the same order. A read follows another sparsely when
// it starts after that one's end by at most kSparseEntries entries of its own size; the third
// of a chain of such reads is read exactly: its own blocks only, with O_DIRECT into a window,
// and no readahead. Whole windows would read every value of the sequence to serve one in N
// (N times the device reads), and the page cache, whose readahead does the same, fills new
// pages besides.
//
// Any other read is declined (nullopt) and the caller reads through the page
// cache, which keeps what it read (and the kernel's readahead around it) for the random
// reads that come back to it; the windows are too few for that. Looser rules took too many
// random reads for streams (docs/storage-format.md §2a has the figures).
//
// What a window holds is what the file held when it was loaded, and a value-log segment is
// append-only: bytes inside a segment's length never change, so a window is never stale
// except after the owner cuts or rewrites a segment (a failed flush's truncation, CutTail,
// Remove, a test's overwrite), which must call Forget once the file has changed (a load in
// progress then is dropped when it ends; one that starts later reads the new bytes). A window's length is what the
// read returned, so bytes appended since are a miss, not a stale hit.
//
// Ownership: the ValueLog owns one ReadWindows; the window buffers (kWindows of
// kWindowBytes) are allocated on first use and freed with it. The caller's descriptor must
// stay open for the call.
// Thread-safety: every member may be called from any thread at once. A window being loaded
// is waited for by readers of its bytes, not loaded twice.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "dht/status.h"

namespace ringstore {

class ReadWindows {
 public:
  static constexpr uint64_t kWindowBytes = 1u << 20;
  static constexpr uint64_t kBlockBytes = 4096;  // O_DIRECT alignment of buffers and lengths
  static constexpr size_t kWindows = 8;
  // How far ahead of a sequential window being loaded a reader that waits for it loads.
  static constexpr uint64_t kReadAhead = 2;
  // Reads remembered for telling sequential reads from others, and how many reads, each
  // following the one before, make a stream (see the top).
  static constexpr size_t kRecentReads = 16;
  static constexpr uint32_t kStreamReads = 3;
  // How far past a read's own length a following read may start: an entry's header and its
  // padding are under two blocks, so skipping one entry of about the same size fits.
  static constexpr uint64_t kFollowSlack = 3 * kBlockBytes;
  // How many entries of about its own size a read of a sparse stream may skip (see the top):
  // at N=3 a node's chain breaks only when it is asked for none of 9 values in a row, about
  // one time in 38.
  static constexpr uint64_t kSparseEntries = 8;

  ReadWindows() = default;
  ~ReadWindows();
  ReadWindows(const ReadWindows&) = delete;
  ReadWindows& operator=(const ReadWindows&) = delete;

  // If the read looks sequential (see the top), appends size bytes at offset of segment (read
  // through direct_fd, opened with O_DIRECT) to *out and gives its status: Corruption when
  // the file ends before offset + size, IOError when a read fails (EINVAL among others: a
  // file system may refuse O_DIRECT reads it accepted at open); after an error, what was
  // appended means nothing. The caller reserves room in *out first (an append that threw
  // would leave a window pinned). Otherwise nullopt, and *out is untouched. A read of a
  // sparse stream that the page cache holds whole (asked through cached_fd, the segment's
  // buffered descriptor, or -1) is declined too: the caller's copy from the page cache costs
  // no device read. (Random reads that come back to a few values can look like a sparse
  // stream; the page cache keeps what they read.)
  std::optional<Status> ReadSequential(uint64_t segment, int direct_fd, int cached_fd, uint64_t offset, uint64_t size,
                                      std::string* out);
  // Drops what the windows hold of segment (loads in progress are not used once done), and
  // forgets its recent reads.
  void Forget(uint64_t segment);

  // For tests: how many windows were loaded (readahead ones and exact ones among them), and
  // how many bytes they read, since the start.
  struct Counters {
    uint64_t loads = 0;
    uint64_t readahead = 0;
    uint64_t exact = 0;
    uint64_t bytes = 0;
  };
  Counters counters() const;

 private:
  struct Window {
    uint64_t segment = 0;  // 0: holds nothing (segments are numbered from 1)
    uint64_t start = 0;    // file offset of data[0]: a multiple of kWindowBytes, or of
                           // kBlockBytes for an exact load
    uint64_t len = 0;      // bytes held; while loading, the bytes asked for
    bool loading = false;
    bool forgotten = false;  // Forget met it loading or pinned: drop it once free
    int pins = 0;            // readers copying from it
    uint64_t used = 0;       // for least-recently-used eviction
    char* data = nullptr;
  };
  // The window of segment holding (or loading) the byte at pos, or nullptr. Caller holds mu_.
  Window* Covering(uint64_t segment, uint64_t pos);
  // How a read of [pos, end) of segment is served (see the top); remembers it. Caller holds mu_.
  enum class Way { kDecline, kWindows, kExact };
  Way Classify(uint64_t segment, uint64_t pos, uint64_t end);
  // A window neither loading nor pinned, the emptiest then least recently used; nullptr if
  // every one is busy. Caller holds mu_.
  Window* Victim();
  // Drops a forgotten window that nobody uses any more. Caller holds mu_.
  void Settle(Window& w);
  // Loads len bytes (at most kWindowBytes, a multiple of kBlockBytes) at start (a multiple of
  // kBlockBytes) of segment into a victim, with mu_ released during the read; the window (its
  // len is what was read; segment 0 if it was forgotten meanwhile), or nullptr with *error set
  // when the read failed, or nullptr alone when every window is busy. Caller holds mu_ via lock.
  Window* Load(std::unique_lock<std::mutex>& lock, uint64_t segment, int fd, uint64_t start, uint64_t len,
               Status* error);
  // Loads the first of the kReadAhead windows after w (a window being loaded) that no window
  // holds, is loading or has loaded short, if any. Caller holds mu_ via lock.
  void ReadAheadOf(std::unique_lock<std::mutex>& lock, uint64_t segment, int fd, const Window& w);

  mutable std::mutex mu_;
  std::condition_variable changed_;  // a load ended or a pin was released
  Window windows_[kWindows];         // guarded by mu_ (data: by the load and pins)
  struct Recent {
    uint64_t segment = 0;
    uint64_t end = 0;  // of the bytes read
    uint32_t run = 0;  // reads in the chain of followers this one ends
    uint32_t sparse_run = 0;  // the same, for sparse followers
  };
  Recent recent_[kRecentReads];      // guarded by mu_; the oldest is overwritten
  size_t recent_next_ = 0;           // guarded by mu_
  uint64_t tick_ = 0;                // guarded by mu_
  Counters counters_;                // guarded by mu_
};

}  // namespace ringstore
