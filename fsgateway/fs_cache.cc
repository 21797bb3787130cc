// FsCore's metadata cache: loading inodes and directory listings (with a directory's times
// and link count from its listing, F8 and F9), listings for readdir and the kernel's copy of
// them (F12), stat-ahead, and what other mounts' changes do to the cache (see fs_core.h).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

int FsCore::LoadInode(Node& n, bool force) {
  if (n.deleted) return ENOENT;  // its objects may still be going, in the background
  if (!force && Current(n)) return 0;
  return TakeInode(n, io_.Get(InodeId(fs_, n.inode.ino), q_));
}

int FsCore::TakeInode(Node& n, IoResult r) {
  const uint64_t ino = n.inode.ino;
  if (!r.status.ok()) {
    if (r.status.IsNotFound()) n.loaded = false;
    return ErrnoOf(r.status);
  }
  auto inode = DecodeInode(r.value);
  if (!inode.ok() || inode->ino != ino) return EIO;
  // Another mount changed the file: what this one cached of its data is stale.
  const bool changed = n.inode.size != inode->size || !(n.inode.mtime == inode->mtime) || !(n.inode.ctime == inode->ctime);
  if (changed && n.dirty_bytes == 0) {
    n.chunks.clear();
    n.readahead.reset();
  }
  {
    // What a crashed mount may have stored past the size (F13): the chunk the size ends in,
    // up to the limit; noted afresh at each read (another mount may have crashed since, even
    // if the inode is as it was). Nothing is known of an inode written before limits.
    const uint64_t cs = fs_.chunk_size;
    n.stale_from = inode->size / cs;
    n.stale_to = inode->chunk_limit != kUnknownChunkLimit ? inode->chunk_limit : 0;
    n.stored_size = inode->size;
  }
  n.inode = std::move(*inode);
  n.loaded = true;
  n.fetched = std::chrono::steady_clock::now();
  ApplyListing(n);
  return 0;
}

void FsCore::ApplyListing(Node& n) {
  if (!n.loaded || !S_ISDIR(n.inode.mode)) return;
  if (n.dir_times) {
    n.inode.mtime = n.dir_times->mtime;
    n.inode.ctime = n.dir_times->ctime;
  }
  // A directory's link count is 2 + its subdirectories, counted from the merged listing, so
  // concurrent mkdirs and rmdirs from several mounts count right.
  if (n.entries) n.inode.nlink = 2 + n.entries->subdirs();
}

int FsCore::LoadForUpdate(Node& n) {
  // Our own unwritten changes are the newest; otherwise read the inode again, so that a
  // change another mount made within the TTL is not overwritten by a stale copy.
  if (n.loaded && Unwritten(n)) return 0;
  if (int e = LoadInode(n, /*force=*/true); e != 0) return e;
  // A directory's times and link count come from its listing (F8): read it again too, or the
  // inode write that follows would store old times under a new stamp.
  if (S_ISDIR(n.inode.mode)) return LoadEntries(n, /*force=*/true);
  return 0;
}

int FsCore::LoadEntries(Node& dir, bool force) {
  if (dir.entries && !force && Fresh(dir.entries_fetched)) return 0;
  // This mount's entry writes into it still in flight land first, so the listing has its own
  // creates.
  AwaitEntryWrites(dir.inode.ino);
  // Every bucket (F9) in one parallel batch; a name lives in one bucket only, and the times
  // are the newest times entry of any bucket.
  std::vector<IoOp> ops;
  for (ObjectKey& id : DirBucketIds(fs_, dir.inode.ino)) ops.push_back(IoOp{IoOp::kGet, std::move(id), {}, {}});
  DirListing::Map live;
  std::optional<DirTimes> times;
  MapEntry newest_times;
  for (const IoResult& r : io_.Run(std::move(ops), q_)) {
    if (r.status.IsNotFound()) continue;
    if (!r.status.ok()) return ErrnoOf(r.status);
    auto map = DecodeLwwMap(r.value);
    if (!r.is_map || !map.ok()) return EIO;
    for (const auto& [name, e] : *map) {
      if (e.deleted) continue;
      if (name == kDirTimesName) {
        if (times && !EntrySupersedes(e, newest_times)) continue;
        auto t = DecodeDirTimes(e.payload);
        if (!t.ok()) return EIO;
        times = *t;
        newest_times = e;
        continue;
      }
      auto d = DecodeDirEntry(e.payload);
      if (!d.ok()) return EIO;
      live.emplace(name, *d);
    }
  }
  if (!dir.entries || dir.entries->map() != live) ++dir.listing_gen;
  dir.entries = DirListing(std::move(live));
  dir.entries_fetched = std::chrono::steady_clock::now();
  if (times) dir.dir_times = times;
  ApplyListing(dir);
  return 0;
}

void FsCore::NoteEntry(uint64_t dir, const std::string& name, std::optional<DirEntry> entry) {
  std::shared_ptr<Node> d;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    auto it = nodes_.find(dir);
    if (it == nodes_.end()) return;  // no listing cached
    d = it->second;
  }
  std::lock_guard<std::mutex> lock(d->mu);
  if (!d->entries) return;
  ++d->listing_gen;
  if (entry) {
    d->entries->Set(name, *entry);
  } else {
    d->entries->Erase(name);
  }
  ApplyListing(*d);
}

std::vector<uint64_t> FsCore::StatAhead(uint64_t parent, const std::string& name) {
  auto d = NodeFor(parent);
  std::lock_guard<std::mutex> lock(d->mu);
  // A walk in name order (ls -l, find, a stat of every file in turn) misses on names that
  // ascend; a lookup now and then does not.
  const bool ascending = !d->last_miss.empty() && name > d->last_miss;
  d->last_miss = name;
  std::vector<uint64_t> out;
  if (!ascending || !d->entries) return out;
  for (auto it = d->entries->upper_bound(name); it != d->entries->end() && out.size() < kStatAheadInodes; ++it) {
    out.push_back(it->second.ino);
  }
  return out;
}

void FsCore::PrefetchInodes(const std::vector<uint64_t>& inos) {
  std::vector<std::shared_ptr<Node>> nodes;
  std::vector<IoOp> ops;
  for (uint64_t ino : inos) {
    std::shared_ptr<Node> n;
    {
      // A node made here is speculative until a lookup hands it to the kernel (which forgets
      // it later); the oldest unclaimed ones are dropped past kMaxSpeculative.
      std::lock_guard<std::mutex> table(table_mu_);
      auto& slot = nodes_[ino];
      if (!slot) {
        slot = std::make_shared<Node>();
        slot->inode.ino = ino;
        slot->speculative = true;
        speculative_.push_back(ino);
      }
      n = slot;
      // A node in use now (its lock held) goes back in line; one a lookup claimed just leaves it.
      std::vector<uint64_t> busy;
      while (speculative_.size() + busy.size() > kMaxSpeculative && !speculative_.empty()) {
        const uint64_t old = speculative_.front();
        speculative_.pop_front();
        auto it = nodes_.find(old);
        if (it == nodes_.end()) continue;
        std::unique_lock<std::mutex> lock(it->second->mu, std::try_to_lock);
        if (!lock.owns_lock()) {
          busy.push_back(old);
        } else if (it->second->speculative && it->second->opens == 0 && !it->second->inode_dirty &&
                   it->second->dirty_bytes == 0) {
          lock.unlock();
          nodes_.erase(it);
        }
      }
      speculative_.insert(speculative_.end(), busy.begin(), busy.end());
    }
    std::lock_guard<std::mutex> lock(n->mu);
    if (n->deleted || Current(*n)) continue;
    ops.push_back(IoOp{IoOp::kGet, InodeId(fs_, ino), {}, {}});
    nodes.push_back(std::move(n));
  }
  if (ops.empty()) return;
  auto results = io_.Run(std::move(ops), q_);
  for (size_t i = 0; i < results.size(); ++i) {
    Node& n = *nodes[i];
    std::lock_guard<std::mutex> lock(n.mu);
    // Best effort: a failure leaves the inode to be read on demand; a copy this mount changed
    // (or read) meanwhile is kept.
    if (!results[i].status.ok() || Current(n)) continue;
    (void)TakeInode(n, std::move(results[i]));
  }
}

void FsCore::Invalidate(uint64_t ino) {
  std::shared_ptr<Node> n;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;  // nothing cached
    n = it->second;
  }
  std::lock_guard<std::mutex> lock(n->mu);
  if (Unwritten(*n)) return;  // ours wins until written
  n->fetched = {};
  n->chunks.clear();
  n->readahead.reset();
}

void FsCore::ApplyEntry(uint64_t dir, const std::string& name, const std::optional<DirEntry>& entry) {
  NoteEntry(dir, name, entry);
}

void FsCore::Forget(uint64_t ino) {
  if (ino == kRootIno) return;
  std::lock_guard<std::mutex> table(table_mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  std::unique_lock<std::mutex> lock(it->second->mu, std::try_to_lock);
  const Node& n = *it->second;
  if (!lock.owns_lock() || n.opens > 0 || Unwritten(n) || n.pending_entry) {
    if (forget_later_.size() < kMaxForgetLater) forget_later_.push_back(ino);
    return;
  }
  lock.unlock();
  nodes_.erase(it);
}

int FsCore::LoadListing(Node& dir) {
  if (int e = LoadInode(dir); e != 0) return e;
  if (!IsDir(dir.inode.mode)) return ENOTDIR;
  return LoadEntries(dir);
}

int FsCore::ReadDir(uint64_t ino, std::vector<std::pair<std::string, DirEntry>>* out, uint64_t* generation) {
  auto d = NodeFor(ino);
  std::lock_guard<std::mutex> lock(d->mu);
  if (int e = LoadListing(*d); e != 0) return e;
  out->assign(d->entries->begin(), d->entries->end());
  if (generation) *generation = d->listing_gen;
  return 0;
}

int FsCore::OpenDir(uint64_t ino, uint64_t* parent, bool* keep_cache) {
  auto d = NodeFor(ino);
  std::lock_guard<std::mutex> lock(d->mu);
  if (int e = LoadListing(*d); e != 0) return e;
  *parent = d->inode.parent == 0 ? ino : d->inode.parent;
  *keep_cache = d->kernel_listing == d->listing_gen;
  return 0;
}

void FsCore::KernelCachedListing(uint64_t ino, uint64_t generation) {
  auto d = NodeFor(ino);
  std::lock_guard<std::mutex> lock(d->mu);
  d->kernel_listing = generation;
}

}  // namespace ringstore::fs
