// FsCore's background writes (see fs_core.h): the directory entry of a file made by FUSE
// create, and the deletion of an inode that lost its last name.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

int FsCore::DeleteInode(Node& n) {
  // A chunk write still in flight would land after the deletes and stay behind; so would a
  // retry of the create's inode write.
  ReapWritebacks(n, true);
  AwaitCreateWrite(n);
  std::vector<IoOp> ops;
  const uint64_t chunks = ChunksStored(n);
  for (uint64_t i = 0; i < chunks; ++i) ops.push_back(IoOp{IoOp::kDel, ChunkId(fs_, n.inode.ino, i), {}, {}});
  if (S_ISDIR(n.inode.mode)) {
    for (ObjectKey& id : DirBucketIds(fs_, n.inode.ino)) ops.push_back(IoOp{IoOp::kDel, std::move(id), {}, {}});
  }
  ops.push_back(IoOp{IoOp::kDel, InodeId(fs_, n.inode.ino), {}, {}});
  // No name leads to the inode any more, so nothing waits for its objects to go: the deletes
  // run in the background (FlushAll waits for them). If they fail, the objects stay behind
  // as orphans (docs/fsgateway.md, "Not yet").
  // They go in batches of ObjectIo::kMaxOpsInFlight; the inode's delete is in the last one,
  // whose success announces the change.
  const uint64_t ino = n.inode.ino;
  n.chunks.clear();
  n.readahead.reset();
  SetDirty(n, 0);
  n.inode_dirty = false;
  n.loaded = false;
  n.deleted = true;  // an open or stat that comes now gets ENOENT, not the inode still stored
  n.entries.reset();
  ++n.listing_gen;
  auto batches = SplitOps(std::move(ops), ObjectIo::kMaxOpsInFlight);
  for (size_t i = 0; i < batches.size(); ++i) {
    ObjectIo::Done done;
    if (i + 1 == batches.size()) {
      done = [this, ino](const std::vector<IoResult>& r) {
        if (FirstErrno(r) == 0) Changed(ino);
      };
    }
    auto pending = io_.Start(std::move(batches[i]), q_, std::move(done));
    std::shared_ptr<PendingIo> oldest;
    {
      std::lock_guard<std::mutex> lock(async_mu_);
      deletes_.push_back(std::move(pending));
      while (!deletes_.empty() && deletes_.front()->done()) deletes_.pop_front();
      if (deletes_.size() > kMaxDeletesInFlight) {
        oldest = deletes_.front();
        deletes_.pop_front();
      }
    }
    if (oldest) (void)oldest->Wait();  // a bound on the work left in the background
  }
  return 0;
}

int FsCore::WaitForEntries(std::optional<uint64_t> dir) {
  // A write leaves the list only once it is stored, so that AwaitEntryWrites (a listing read
  // on another thread) still waits for it meanwhile.
  std::vector<EntryWrite> all;
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    for (const EntryWrite& w : entry_writes_) {
      if (!dir || w.dir == *dir) all.push_back(w);
    }
  }
  for (const EntryWrite& w : all) {
    (void)w.io->Wait();
    {
      Node& n = *w.node;
      std::lock_guard<std::mutex> lock(n.mu);
      // Not stored: the namespace operation that waits fails rather than overtake it, and the
      // next one tries again. (No pending entry: stored, perhaps again by its flush.)
      if (n.pending_entry) {
        if (int e = WriteEntryLocked(n); e != 0) return e;
      }
    }
    std::lock_guard<std::mutex> lock(async_mu_);
    std::erase_if(entry_writes_, [&](const EntryWrite& x) { return x.io == w.io; });
  }
  return 0;
}

size_t FsCore::EntryWriteWaiters() {
  std::lock_guard<std::mutex> lock(async_mu_);
  size_t n = 0;
  for (const EntryWrite& w : entry_writes_) n += w.io->waiters();
  return n;
}

void FsCore::AwaitEntryWrites(std::optional<uint64_t> dir) {
  std::vector<std::shared_ptr<PendingIo>> ios;
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    for (const EntryWrite& w : entry_writes_) {
      if (!dir || w.dir == *dir) ios.push_back(w.io);
    }
  }
  for (auto& io : ios) (void)io->Wait();
}

void FsCore::WaitForDeletes() {
  std::deque<std::shared_ptr<PendingIo>> all;
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    all.swap(deletes_);
  }
  for (auto& p : all) (void)p->Wait();
}

int FsCore::WriteEntryLocked(Node& n) {
  if (!n.pending_entry) return 0;
  Node::PendingEntry& p = *n.pending_entry;
  if (p.io) {
    const int e = FirstErrno(p.io->Wait());
    if (e == 0) {
      n.pending_entry.reset();
      n.create_io.reset();  // the entry follows the inode: both are stored
      return 0;
    }
    p.io.reset();
  }
  // The entry write failed (the cluster was gone for --io-timeout): try again, in the
  // foreground; until it succeeds the file is still only this mount's.
  // The directory's times are stamped now: the first try's would go back in time.
  p.now = now_();
  // The inode first (F4), if the create's write of it failed.
  if (!p.inode_stored || !*p.inode_stored) {
    if (int e = StoreInodeOf(n, n.inode); e != 0) return e;
    if (p.inode_stored) *p.inode_stored = true;
  }
  if (int e = FirstErrno(io_.Run(DirChangeOps(p.dir, p.entries, p.now), q_)); e != 0) return e;
  DirChanged(p.dir, p.entries, p.now);
  n.pending_entry.reset();
  n.create_io.reset();  // stored, by the create or just now
  return 0;
}

}  // namespace ringstore::fs
