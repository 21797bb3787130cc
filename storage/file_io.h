// Small file helpers shared by the store's own logs (ValueLog, CommitLog): errno as a Status,
// a directory fsync, and a block-aligned buffer for O_DIRECT writes.
// Thread-safety: the functions are pure; an AlignedBuffer belongs to one thread.
#pragma once

#include <cstdint>
#include <string>

#include "dht/status.h"

namespace ringstore {

// I/O on our own log files is in blocks of this size, and starts on its multiples (O_DIRECT).
constexpr uint64_t kFileBlockBytes = 4096;
inline uint64_t AlignToBlock(uint64_t n) { return (n + kFileBlockBytes - 1) & ~(kFileBlockBytes - 1); }

// IOError "what: strerror(errno)".
Status ErrnoStatus(const std::string& what);
// pread of exactly len bytes at offset; a file that ends before them is Corruption.
Status ReadFully(int fd, char* out, uint64_t len, uint64_t offset, const std::string& path);
// fsync of a directory, so that the files created or removed in it stay so.
Status SyncDir(const std::string& dir);

// The file name of segment `number` of a log: 8 digits or more, then ext (".vlog").
std::string SegmentFileName(uint64_t number, const std::string& ext);
// The segment number of such a file name, or 0 for any other.
uint64_t ParseSegmentFileName(const std::string& name, const std::string& ext);

// A block-aligned buffer that only grows; freed with its owner.
struct AlignedBuffer {
  char* data = nullptr;
  uint64_t capacity = 0;
  // At least n bytes, the first keep of them kept; nullptr (and the old buffer kept) when
  // out of memory.
  char* Reserve(uint64_t n, uint64_t keep);
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();
};

}  // namespace ringstore
