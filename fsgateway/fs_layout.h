// How a ringstore filesystem lies in the DHT (docs/fsgateway.md, decisions F1-F4).
//
//   superblock   H("ringstore.fs", NAME)                 FsMeta: uuid, chunk size, quorum
//   catalog      H("ringstore.fs-catalog", "all")        map record: NAME -> ""
//   inode        H("ringstore.inode", UUID || LE64 ino)  Inode: type, mode, owner, size, times,
//                                                         link count, symlink target, xattrs
//   directory    H("ringstore.dir", UUID || LE64 ino [|| LE32 bucket, bucket > 0])
//                                                         map records: NAME -> DirEntry, and
//                                                         "" -> DirTimes (the dir's times)
//   data chunk   H("ringstore.fschunk", UUID || LE64 ino || LE64 index)
//
// Inode numbers are random 64-bit values drawn by the mount that creates the inode (1 is the
// root), so mounts never coordinate to allocate them and a rename moves one directory entry,
// never data: rename is O(1) for files and directories alike. Directories are map records
// (dht/lww_map.h), merged entry by entry by the replicas, so creates, unlinks and renames
// in one directory from several mounts all keep their entries. A chunk holds the file's
// bytes in [index * chunk_size, min(size, (index + 1) * chunk_size)) and is always written
// whole (DESIGN.md's pitfall); bytes past its end, and missing chunks, read as zeros.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dht/cluster_client.h"
#include "dht/object_id.h"
#include "dht/object_key.h"
#include "dht/status.h"

namespace ringstore::fs {

constexpr uint64_t kRootIno = 1;
constexpr uint64_t kMinChunkSize = 4096;
constexpr uint64_t kMaxChunkSize = 16u << 20;
constexpr uint64_t kDefaultChunkSize = 256u << 10;  // docs/fsgateway.md F3
constexpr size_t kMaxNameBytes = 255;         // NAME_MAX
constexpr size_t kMaxSymlinkBytes = 4095;     // PATH_MAX - 1
constexpr size_t kMaxXattrNameBytes = 255;    // XATTR_NAME_MAX
constexpr size_t kMaxXattrValueBytes = 16384; // what one inode object carries (XATTR_SIZE_MAX is 64 KiB)
constexpr size_t kMaxXattrTotalBytes = 65536;
constexpr uint64_t kMaxFileSize = 1ull << 44;   // 16 TiB
// How many of size bytes written at offset fit under kMaxFileSize: a write that crosses it
// writes what fits (POSIX's short write); 0 for one that starts there (EFBIG).
constexpr uint64_t BytesThatFit(uint64_t offset, uint64_t size) {
  return offset >= kMaxFileSize ? 0 : (size < kMaxFileSize - offset ? size : kMaxFileSize - offset);
}
// A directory's entries are spread over this many map records by a hash of the name (F9).
constexpr uint32_t kDefaultDirBuckets = 16;
constexpr uint32_t kMaxDirBuckets = 256;

struct FsMeta {
  std::string name;
  std::string uuid;  // 16 raw bytes
  uint64_t chunk_size = kDefaultChunkSize;
  Quorum quorum;
  uint64_t created_ms = 0;
  // Map records per directory (F9). Superblocks of format 1 (before 2026-11-22) have 1; those
  // of format 2 carry it, and a gateway that knows only format 1 refuses them.
  uint32_t dir_buckets = kDefaultDirBuckets;
};

// Names are 1..64 bytes of [A-Za-z0-9._-], not starting with '.' or '-'.
Status ValidateFsName(const std::string& name);
Status ValidateChunkSize(uint64_t chunk_size);
Status ValidateDirBuckets(uint32_t buckets);

ObjectKey SuperblockId(const std::string& name);
ObjectKey CatalogId();
ObjectKey InodeId(const FsMeta& fs, uint64_t ino);
// Bucket 0 of directory ino (the only one when fs.dir_buckets is 1); DirBucketId(fs, ino, 0)
// is DirId(fs, ino).
ObjectKey DirId(const FsMeta& fs, uint64_t ino);
ObjectKey DirBucketId(const FsMeta& fs, uint64_t ino, uint32_t bucket);
// Every bucket of directory ino, bucket 0 first.
std::vector<ObjectKey> DirBucketIds(const FsMeta& fs, uint64_t ino);
// The bucket that holds name's entry: FNV-1a of the name, mod fs.dir_buckets (stable forever).
uint32_t DirBucketOf(const FsMeta& fs, std::string_view name);
ObjectKey ChunkId(const FsMeta& fs, uint64_t ino, uint64_t index);

std::string EncodeFsMeta(const FsMeta& m);
Result<FsMeta> DecodeFsMeta(std::string_view bytes);

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool operator==(const Timespec&) const = default;
};

constexpr uint64_t kUnknownChunkLimit = UINT64_MAX;
// A new regular file's limit (F13): files of up to 16 chunks never need the inode written
// before their chunks. A flush that stores the inode brings the limit down to the chunks
// under the size when nothing stale lies past them, so deleting a small file is one chunk
// delete. Other inodes have no chunks (limit 0).
constexpr uint64_t kInitialChunkLimit = 16;

struct Inode {
  uint64_t ino = 0;
  uint32_t mode = 0;  // type and permission bits, as st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 1;
  uint64_t size = 0;
  uint64_t rdev = 0;
  Timespec atime, mtime, ctime;
  uint64_t parent = 0;  // directories: the directory holding this one (for "..")
  std::string target;   // symlinks
  std::map<std::string, std::string> xattrs;
  // Regular files: every chunk that may be stored has an index below this (F13). A mount
  // stores the inode with a higher limit before it writes a chunk at or past it, so the
  // chunks a crash left past the size are known, and growing, shrinking or deleting the file
  // deletes exactly those. kUnknownChunkLimit: an inode written before limits (2026-11-24);
  // its chunks are cleared as before, up to its size.
  uint64_t chunk_limit = kUnknownChunkLimit;

  bool operator==(const Inode&) const = default;
};

std::string EncodeInode(const Inode& inode);
Result<Inode> DecodeInode(std::string_view bytes);

// A directory's modification and change times live in its map record, under the empty name
// (no file is called ""), so that an entry change and the directory's new times are one merge
// that needs neither a read nor a rewrite of the directory's inode (docs/fsgateway.md F8).
// Every write of a directory's inode writes this entry too; where it is present it is the
// directory's mtime and ctime, and the inode's are not.
struct DirTimes {
  Timespec mtime, ctime;
  bool operator==(const DirTimes&) const = default;
};
inline const std::string kDirTimesName;
std::string EncodeDirTimes(const DirTimes& t);
Result<DirTimes> DecodeDirTimes(std::string_view bytes);

// A directory entry's payload: the child's inode number and its type (S_IFMT bits).
struct DirEntry {
  uint64_t ino = 0;
  uint32_t type = 0;
  bool operator==(const DirEntry&) const = default;
};
std::string EncodeDirEntry(const DirEntry& e);
Result<DirEntry> DecodeDirEntry(std::string_view bytes);

}  // namespace ringstore::fs
