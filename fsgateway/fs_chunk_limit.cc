// FsCore's chunk limits (docs/fsgateway.md F13): which chunks of a file may be stored, raising
// the limit before a chunk past it is written, and clearing what a crashed mount may have
// stored past the size before the size grows. Callers hold the node's lock (see fs_core.h).
#include <algorithm>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

void FsCore::ClampToSize(const Node& n, uint64_t index, std::string& data) const {
  const uint64_t base = index * fs_.chunk_size;
  const uint64_t keep = base >= n.inode.size ? 0 : n.inode.size - base;
  if (data.size() > keep) data.resize(keep);
}

uint64_t FsCore::ChunksStored(const Node& n) const {
  const uint64_t cs = fs_.chunk_size;
  uint64_t chunks = n.inode.chunk_limit != kUnknownChunkLimit ? n.inode.chunk_limit : (n.inode.size + cs - 1) / cs;
  if (!n.chunks.empty()) chunks = std::max(chunks, n.chunks.rbegin()->first + 1);
  return chunks;
}

int FsCore::RaiseLimitLocked(Node& n, const std::vector<IoOp>& ops, const std::vector<uint64_t>& indexes) {
  // The highest chunk the ops put: a delete needs no limit.
  size_t k = ops.size();
  while (k > 0 && ops[k - 1].kind != IoOp::kPut) --k;
  if (k == 0) return 0;
  const uint64_t index = indexes[k - 1];
  if (n.inode.chunk_limit == kUnknownChunkLimit || index < n.inode.chunk_limit) return 0;
  const uint64_t most = (kMaxFileSize + fs_.chunk_size - 1) / fs_.chunk_size;
  Inode next = n.inode;
  next.chunk_limit = std::min(most, std::max(index + 1, 2 * n.inode.chunk_limit));
  // With the size last stored: the bytes under the size the writes reached are not all
  // stored yet (the flush stores that size once they are). Its create's write first; after
  // an inode write that failed, the stored size is read.
  AwaitCreateWrite(n);
  if (n.stored_size == kUnknownSize) {
    IoResult r = io_.Get(InodeId(fs_, n.inode.ino), q_);
    if (!r.status.ok()) return ErrnoOf(r.status);
    auto stored = DecodeInode(r.value);
    if (!stored.ok()) return EIO;
    n.stored_size = stored->size;
  }
  next.size = n.stored_size;
  if (int e = StoreInodeOf(n, next); e != 0) return e;
  n.inode.chunk_limit = next.chunk_limit;
  return 0;
}

int FsCore::ClearPastSizeLocked(Node& n, uint64_t to) {
  // The inode as stored now, unless this mount has unwritten changes: what another mount
  // appended is not to be cleared, nor a chunk it rewrote put back from this mount's cache
  // (a changed inode drops the cache).
  if (int e = LoadInode(n, !Unwritten(n)); e != 0) return e;
  const uint64_t from = n.inode.size, cs = fs_.chunk_size;
  if (to <= from) return 0;
  const uint64_t first = std::max(n.stale_from, from / cs);
  const uint64_t last = std::min(n.stale_to, (to + cs - 1) / cs);
  if (first >= last) return 0;
  std::vector<IoOp> ops;
  for (uint64_t i = first; i < last; ++i) {
    if (i * cs < from) {
      // The chunk the size ends in is written again as the cache has it: its bytes below the
      // size (the cache holds none past it, and LoadChunks keeps none), not what may be
      // stored past them.
      if (int e = LoadChunks(n, {i}); e != 0) return e;
      ops.push_back(ChunkOp(n, i, n.chunks[i]));
    } else {
      ops.push_back(IoOp{IoOp::kDel, ChunkId(fs_, n.inode.ino, i), {}, {}});
    }
  }
  if (int e = io_.RunAll(std::move(ops), q_); e != 0) return e;
  n.stale_from = last;
  return 0;
}

}  // namespace ringstore::fs
