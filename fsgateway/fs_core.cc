// FsCore's namespace operations (lookup, create, link, unlink, rename, directories, xattrs).
// The data path (open, read, write, flush, truncate) is in fs_data.cc, the metadata cache in
// fs_cache.cc and the background writes in fs_background.cc.
#include "fsgateway/fs_core.h"

#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <atomic>
#include <cerrno>

namespace ringstore::fs {

namespace {
bool IsDir(uint32_t mode) { return S_ISDIR(mode); }
}  // namespace

FsCore::FsCore(FsMeta fs, ObjectIo& io, FsOptions options, std::function<Timespec()> now,
               std::function<uint64_t()> random)
    : fs_(std::move(fs)), io_(io), options_(options), now_(std::move(now)), random_(std::move(random)) {
  q_ = fs_.quorum;
}

FsCore::~FsCore() {
  // Background writes call back into this core: they end first.
  AwaitEntryWrites();
  WaitForDeletes();
}

FsCore::Stats FsCore::stats() {
  Stats s;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    s = stats_;
  }
  s.dirty_bytes = dirty_total_.load();
  std::lock_guard<std::mutex> table(table_mu_);
  s.nodes = nodes_.size();
  return s;
}

std::shared_ptr<FsCore::Node> FsCore::NodeFor(uint64_t ino) {
  std::lock_guard<std::mutex> lock(table_mu_);
  auto& slot = nodes_[ino];
  if (!slot) {
    slot = std::make_shared<Node>();
    slot->inode.ino = ino;
  }
  return slot;
}

bool FsCore::Fresh(std::chrono::steady_clock::time_point t) const {
  return std::chrono::steady_clock::now() - t < options_.attr_ttl;
}

int FsCore::Init() {
  auto root = NodeFor(kRootIno);
  std::lock_guard<std::mutex> lock(root->mu);
  const int e = LoadInode(*root, true);
  if (e != ENOENT) return e;
  if (options_.read_only) return EROFS;
  Inode r;
  r.ino = kRootIno;
  r.mode = S_IFDIR | 0755;
  r.nlink = 2;
  r.parent = kRootIno;
  r.atime = r.mtime = r.ctime = now_();
  if (int s = StoreInode(r); s != 0) return s;
  root->inode = r;
  root->loaded = true;
  root->fetched = std::chrono::steady_clock::now();
  return 0;
}

// ---- loading and storing --------------------------------------------------------------

int FsCore::StoreInode(const Inode& inode) {
  std::vector<IoOp> ops;
  ops.push_back(IoOp{IoOp::kPut, InodeId(fs_, inode.ino), EncodeInode(inode), {}});
  if (IsDir(inode.mode)) {
    LwwMap times;
    times[kDirTimesName] = MapEntry{0, false, EncodeDirTimes(DirTimes{inode.mtime, inode.ctime})};
    ops.push_back(IoOp{IoOp::kMerge, DirId(fs_, inode.ino), {}, std::move(times)});
  }
  for (auto& r : io_.Run(std::move(ops), q_)) {
    if (!r.status.ok()) return ErrnoOf(r.status);
  }
  Changed(inode.ino);
  return 0;
}

void FsCore::AwaitCreateWrite(Node& n) {
  if (!n.create_io) return;
  (void)n.create_io->Wait();
  n.create_io.reset();
}

int FsCore::StoreInodeOf(Node& n, const Inode& inode) {
  AwaitCreateWrite(n);
  if (int e = StoreInode(inode); e != 0) {
    n.stored_size = kUnknownSize;  // it may have landed
    return e;
  }
  n.stored_size = inode.size;
  return 0;
}

int FsCore::StoreNode(Node& n, Inode next) {
  // The inode carries the size: the bytes under it are stored first (FlushLocked stores them
  // with the inode), so that no mount learns of a size whose bytes it cannot read.
  if (int e = FlushLocked(n); e != 0) return e;
  // The chunk limit is the flush's to raise (F13): next may be a copy from before it.
  next.chunk_limit = n.inode.chunk_limit;
  if (int e = StoreInodeOf(n, next); e != 0) return e;
  n.inode = std::move(next);
  // A directory's inode write also wrote its times into the listing: they are the listing's.
  if (IsDir(n.inode.mode)) n.dir_times = DirTimes{n.inode.mtime, n.inode.ctime};
  return 0;
}

int FsCore::LookupLocked(uint64_t parent, const std::string& name, DirEntry* out) {
  if (name.size() > kMaxNameBytes) return ENAMETOOLONG;
  auto d = NodeFor(parent);
  std::lock_guard<std::mutex> lock(d->mu);
  // An inode never changes its type, so a copy within the TTL answers "is it a directory".
  if (int e = LoadInode(*d); e != 0) return e;
  if (!IsDir(d->inode.mode)) return ENOTDIR;
  if (int e = LoadEntries(*d); e != 0) return e;
  auto it = d->entries->find(name);
  if (it == d->entries->end()) return ENOENT;
  *out = it->second;
  return 0;
}

std::vector<IoOp> FsCore::DirChangeOps(uint64_t dir, const LwwMap& entries, Timespec now) const {
  // Per bucket (F9), its entries and the directory's new times in one merge (F8): the
  // directory's inode is neither read nor written.
  std::map<uint32_t, LwwMap> buckets;
  for (const auto& [name, e] : entries) buckets[DirBucketOf(fs_, name)].emplace(name, e);
  if (buckets.empty()) buckets[0];
  std::vector<IoOp> ops;
  for (auto& [b, merge] : buckets) {
    merge[kDirTimesName] = MapEntry{0, false, EncodeDirTimes(DirTimes{now, now})};
    ops.push_back(IoOp{IoOp::kMerge, DirBucketId(fs_, dir, b), {}, std::move(merge)});
  }
  return ops;
}

int FsCore::ChangeDir(uint64_t dir, const LwwMap& entries, Timespec now) {
  for (auto& r : io_.Run(DirChangeOps(dir, entries, now), q_)) {
    if (!r.status.ok()) return ErrnoOf(r.status);
  }
  DirChanged(dir, entries, now);
  return 0;
}

void FsCore::DirChanged(uint64_t dir, const LwwMap& entries, Timespec now) {
  AnnounceDirChange(dir, entries);
  ApplyDirChange(dir, entries, now);
}

void FsCore::AnnounceDirChange(uint64_t dir, const LwwMap& entries) {
  Changed(dir);
  for (const auto& [name, e] : entries) EntryChanged(dir, name, e);
}

void FsCore::ApplyDirChange(uint64_t dir, const LwwMap& entries, Timespec now) {
  const DirTimes times{now, now};
  auto d = NodeFor(dir);
  std::lock_guard<std::mutex> lock(d->mu);
  d->dir_times = times;
  if (d->entries) {
    ++d->listing_gen;
    for (const auto& [name, e] : entries) {
      auto entry = DecodeDirEntry(e.payload);
      if (e.deleted || !entry.ok()) {
        d->entries->Erase(name);
      } else {
        d->entries->Set(name, *entry);
      }
    }
  }
  ApplyListing(*d);
}

// ---- lookups and attributes -----------------------------------------------------------

int FsCore::Lookup(uint64_t parent, const std::string& name, Inode* out) {
  DirEntry entry;
  if (int e = LookupLocked(parent, name, &entry); e != 0) return e;
  bool fresh;
  {
    auto n = NodeFor(entry.ino);
    std::lock_guard<std::mutex> lock(n->mu);
    fresh = Current(*n);
  }
  if (!fresh) {
    std::vector<uint64_t> ahead = StatAhead(parent, name);
    if (!ahead.empty()) {
      ahead.push_back(entry.ino);
      PrefetchInodes(ahead);
    }
  }
  if (int e = GetAttr(entry.ino, out); e != 0) return e;
  auto n = NodeFor(entry.ino);
  std::lock_guard<std::mutex> lock(n->mu);
  n->speculative = false;  // the kernel knows it now
  return 0;
}

int FsCore::GetAttr(uint64_t ino, Inode* out) {
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadInode(*n); e != 0) return e;
  if (IsDir(n->inode.mode)) {
    if (int e = LoadEntries(*n); e != 0) return e;  // for the link count
  }
  *out = n->inode;
  return 0;
}

int FsCore::SetAttributes(uint64_t ino, const SetAttr& req, Inode* out) {
  if (options_.read_only) return EROFS;
  DirScope scope(*this, ino);
  if (int e = WaitForEntries(ino); e != 0) return e;
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadForUpdate(*n); e != 0) return e;
  const Timespec now = now_();
  if (req.size) {
    if (!S_ISREG(n->inode.mode)) return IsDir(n->inode.mode) ? EISDIR : EINVAL;
    if (*req.size > kMaxFileSize) return EFBIG;
    if (int e = TruncateLocked(*n, *req.size); e != 0) return e;
  }
  Inode next = n->inode;
  if (req.mode) next.mode = (next.mode & S_IFMT) | (*req.mode & 07777);
  if (req.uid) next.uid = *req.uid;
  if (req.gid) next.gid = *req.gid;
  if (req.atime) next.atime = *req.atime;
  if (req.mtime) next.mtime = *req.mtime;
  next.ctime = now;
  if (int e = StoreNode(*n, std::move(next)); e != 0) return e;
  n->inode_dirty = false;
  *out = n->inode;
  return 0;
}

// ---- creating -------------------------------------------------------------------------

int FsCore::MakeNode(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev, Caller who, Inode* out) {
  return Create(parent, name, mode, rdev, who, {}, /*opened=*/false, out);
}

int FsCore::CreateOpen(uint64_t parent, const std::string& name, uint32_t mode, Caller who, Inode* out) {
  return Create(parent, name, S_IFREG | (mode & 07777), 0, who, {}, /*opened=*/true, out);
}

int FsCore::Create(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev, Caller who,
                   const std::string& target, bool opened, Inode* out) {
  if (options_.read_only) return EROFS;
  if (name.size() > kMaxNameBytes) return ENAMETOOLONG;
  DirScope scope(*this, parent);
  if (int e = WaitForEntries(parent); e != 0) return e;
  DirEntry existing;
  if (int e = LookupLocked(parent, name, &existing); e != ENOENT) return e == 0 ? EEXIST : e;
  const Timespec now = now_();
  Inode n;
  do {
    n.ino = random_();
  } while (n.ino <= kRootIno);
  n.chunk_limit = S_ISREG(mode) ? kInitialChunkLimit : 0;  // nothing of it is stored yet
  n.mode = mode;
  n.uid = who.uid;
  n.gid = who.gid;
  {
    // A set-group-id directory hands its group down, and its set-group-id bit to directories.
    auto p = NodeFor(parent);
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->loaded && (p->inode.mode & S_ISGID)) {
      n.gid = p->inode.gid;
      if (IsDir(mode)) n.mode |= S_ISGID;
    }
  }
  n.rdev = rdev;
  n.nlink = IsDir(mode) ? 2 : 1;
  n.parent = parent;
  n.atime = n.mtime = n.ctime = now;
  n.target = target;
  n.size = target.size();
  const DirEntry entry{n.ino, mode & S_IFMT};
  LwwMap add;
  add[name] = MapEntry{0, false, EncodeDirEntry(entry)};
  auto node = NodeFor(n.ino);
  if (opened) {
    // Inode and entry are written in the background, the entry once the inode is stored (F4),
    // started from the inode write's completion; the create returns at once. The file's flush
    // waits for both, and so does the next namespace operation in the directory, so entry
    // changes keep their order. The entry write is listed as in flight before the cached
    // listing takes it, so that a listing read meanwhile (LoadEntries) waits for it rather
    // than drop it.
    auto entry_write = std::make_shared<PendingIo>();
    auto inode_stored = std::make_shared<std::atomic<bool>>(false);
    std::vector<IoOp> inode_op;
    inode_op.push_back(IoOp{IoOp::kPut, InodeId(fs_, n.ino), EncodeInode(n), {}});
    auto inode_write = io_.Start(std::move(inode_op), q_,
                                 [this, entry_write, inode_stored, parent, add, ops = DirChangeOps(parent, add, now)](
                                     const std::vector<IoResult>& r) mutable {
      if (FirstErrno(r) != 0) {
        entry_write->Finish(r);
        return;
      }
      *inode_stored = true;
      io_.Start(std::move(ops), q_, [this, entry_write, parent, add](const std::vector<IoResult>& e) {
        if (FirstErrno(e) == 0) AnnounceDirChange(parent, add);
        entry_write->Finish(e);
      });
    });
    {
      // The node is this mount's before the cached listing shows the name: a lookup that
      // finds the name then finds the inode here, not (yet) in the cluster.
      std::lock_guard<std::mutex> lock(node->mu);
      node->inode = n;
      node->loaded = true;
      node->fetched = std::chrono::steady_clock::now();
      node->create_io = std::move(inode_write);  // while set, this mount's copy is the newest
      node->pending_entry = Node::PendingEntry{parent, add, now, entry_write, inode_stored};
    }
    {
      std::lock_guard<std::mutex> async(async_mu_);
      entry_writes_.push_back(EntryWrite{parent, std::move(entry_write), node});
    }
    ApplyDirChange(parent, add, now);
  } else {
    if (int e = StoreInode(n); e != 0) return e;
    if (int e = ChangeDir(parent, add, now); e != 0) return e;
  }
  std::lock_guard<std::mutex> lock(node->mu);
  node->inode = n;
  node->loaded = true;
  node->fetched = std::chrono::steady_clock::now();
  if (IsDir(mode)) {
    node->entries.emplace();
    ++node->listing_gen;
    node->entries_fetched = node->fetched;
  }
  *out = n;
  return 0;
}

int FsCore::Symlink(uint64_t parent, const std::string& name, const std::string& target, Caller who, Inode* out) {
  if (target.size() > kMaxSymlinkBytes) return ENAMETOOLONG;
  return Create(parent, name, S_IFLNK | 0777, 0, who, target, /*opened=*/false, out);
}

int FsCore::ReadLink(uint64_t ino, std::string* out) {
  Inode n;
  if (int e = GetAttr(ino, &n); e != 0) return e;
  if (!S_ISLNK(n.mode)) return EINVAL;
  *out = n.target;
  return 0;
}

int FsCore::Link(uint64_t ino, uint64_t new_parent, const std::string& new_name, Inode* out) {
  if (options_.read_only) return EROFS;
  DirScope scope(*this, new_parent);
  if (int e = WaitForEntries(new_parent); e != 0) return e;
  DirEntry existing;
  if (int e = LookupLocked(new_parent, new_name, &existing); e != ENOENT) return e == 0 ? EEXIST : e;
  const Timespec now = now_();
  DirEntry entry;
  {
    auto n = NodeFor(ino);
    std::lock_guard<std::mutex> lock(n->mu);
    // A file made by create whose name is not stored yet gets its second name only after its
    // first (a crash between must not leave the new name alone with a link count of 2).
    if (int e = WriteEntryLocked(*n); e != 0) return e;
    if (int e = LoadForUpdate(*n); e != 0) return e;
    if (IsDir(n->inode.mode)) return EPERM;
    Inode next = n->inode;
    ++next.nlink;
    next.ctime = now;
    if (int e = StoreNode(*n, std::move(next)); e != 0) return e;
    entry = DirEntry{ino, n->inode.mode & S_IFMT};
    *out = n->inode;
  }
  LwwMap add;
  add[new_name] = MapEntry{0, false, EncodeDirEntry(entry)};
  return ChangeDir(new_parent, std::move(add), now);
}

// ---- removing -------------------------------------------------------------------------

int FsCore::DropLink(uint64_t ino, Timespec now) {
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadForUpdate(*n); e != 0) return e == ENOENT ? 0 : e;
  return DropLinkLocked(*n, now);
}

int FsCore::DropLinkLocked(Node& n, Timespec now) {
  Inode next = n.inode;
  if (next.nlink > 0) --next.nlink;
  next.ctime = now;
  if (next.nlink > 0) return StoreNode(n, std::move(next));
  if (n.opens > 0) {
    n.orphan = true;  // deleted on the last release
    return StoreNode(n, std::move(next));
  }
  n.inode = std::move(next);
  return DeleteInode(n);
}

int FsCore::Unlink(uint64_t parent, const std::string& name) {
  if (options_.read_only) return EROFS;
  DirScope scope(*this, parent);
  if (int e = WaitForEntries(parent); e != 0) return e;
  DirEntry entry;
  if (int e = LookupLocked(parent, name, &entry); e != 0) return e;
  if (IsDir(entry.type)) return EISDIR;
  LwwMap del;
  del[name] = MapEntry{0, true, {}};
  const Timespec now = now_();
  // The entry's removal and a fresh read of the inode (what LoadForUpdate would read) in one
  // round trip. Holding the file's lock while DirChanged takes the directory's keeps the lock
  // order (a file's Node lock before its directory's).
  auto n = NodeFor(entry.ino);
  std::lock_guard<std::mutex> lock(n->mu);
  const bool ours = n->loaded && Unwritten(*n);
  std::vector<IoOp> ops = DirChangeOps(parent, del, now);
  const size_t merges = ops.size();
  if (!ours) ops.push_back(IoOp{IoOp::kGet, InodeId(fs_, entry.ino), {}, {}});
  auto results = io_.Run(std::move(ops), q_);
  for (size_t i = 0; i < merges; ++i) {
    if (int e = ErrnoOf(results[i].status); e != 0) return e;
  }
  DirChanged(parent, del, now);
  if (!ours) {
    if (int e = TakeInode(*n, std::move(results[merges])); e != 0) return e == ENOENT ? 0 : e;
  }
  return DropLinkLocked(*n, now);
}

int FsCore::Rmdir(uint64_t parent, const std::string& name) {
  if (options_.read_only) return EROFS;
  auto ns = LockAlone();  // alone: it may touch two directories
  if (int e = WaitForEntries(); e != 0) return e;
  DirEntry entry;
  if (int e = LookupLocked(parent, name, &entry); e != 0) return e;
  if (!IsDir(entry.type)) return ENOTDIR;
  auto child = NodeFor(entry.ino);
  {
    std::lock_guard<std::mutex> lock(child->mu);
    if (int e = LoadInode(*child); e != 0 && e != ENOENT) return e;
    if (int e = LoadEntries(*child, /*force=*/true); e != 0) return e;
    if (!child->entries->empty()) return ENOTEMPTY;
  }
  LwwMap del;
  del[name] = MapEntry{0, true, {}};
  if (int e = ChangeDir(parent, std::move(del), now_()); e != 0) return e;
  std::lock_guard<std::mutex> lock(child->mu);
  return DeleteInode(*child);
}

// ---- directories and xattrs -----------------------------------------------------------

int FsCore::SetXattr(uint64_t ino, const std::string& name, const std::string& value, int flags) {
  if (options_.read_only) return EROFS;
  // POSIX ACLs are not supported: storing them as plain xattrs would claim permissions that
  // are never enforced (and cp -p would then skip its chmod).
  if (name.rfind("system.posix_acl_", 0) == 0) return EOPNOTSUPP;
  if (name.empty() || name.size() > kMaxXattrNameBytes) return ERANGE;
  if (value.size() > kMaxXattrValueBytes) return E2BIG;
  DirScope scope(*this, ino);
  if (int e = WaitForEntries(ino); e != 0) return e;
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadForUpdate(*n); e != 0) return e;
  const bool exists = n->inode.xattrs.count(name) != 0;
  if ((flags & XATTR_CREATE) && exists) return EEXIST;
  if ((flags & XATTR_REPLACE) && !exists) return ENODATA;
  size_t total = name.size() + value.size();
  for (const auto& [k, v] : n->inode.xattrs) total += k == name ? 0 : k.size() + v.size();
  if (total > kMaxXattrTotalBytes) return ENOSPC;
  Inode next = n->inode;
  next.xattrs[name] = value;
  next.ctime = now_();
  return StoreNode(*n, std::move(next));
}

int FsCore::GetXattr(uint64_t ino, const std::string& name, std::string* out) {
  Inode n;
  if (int e = GetAttr(ino, &n); e != 0) return e;
  auto it = n.xattrs.find(name);
  if (it == n.xattrs.end()) return ENODATA;
  *out = it->second;
  return 0;
}

int FsCore::ListXattr(uint64_t ino, std::vector<std::string>* out) {
  Inode n;
  if (int e = GetAttr(ino, &n); e != 0) return e;
  out->clear();
  for (const auto& [k, v] : n.xattrs) out->push_back(k);
  return 0;
}

int FsCore::RemoveXattr(uint64_t ino, const std::string& name) {
  if (options_.read_only) return EROFS;
  DirScope scope(*this, ino);
  if (int e = WaitForEntries(ino); e != 0) return e;
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadForUpdate(*n); e != 0) return e;
  if (n->inode.xattrs.count(name) == 0) return ENODATA;
  Inode next = n->inode;
  next.xattrs.erase(name);
  next.ctime = now_();
  return StoreNode(*n, std::move(next));
}

int FsCore::StatFs(uint64_t* total_bytes, uint64_t* free_bytes) {
  {
    // An answer is reused for the attribute TTL: asking every node costs a round trip, and
    // programs such as Samba's (dbench's Qfsinfo) ask often.
    std::lock_guard<std::mutex> lock(statfs_mu_);
    if (statfs_at_ && Fresh(*statfs_at_)) {
      *total_bytes = statfs_total_;
      *free_bytes = statfs_free_;
      return 0;
    }
  }
  uint64_t total = 0, avail = 0;
  if (Status s = io_.Capacity(&total, &avail); !s.ok()) return ErrnoOf(s);
  const uint64_t n = std::max<uint32_t>(1, FitToRing(q_, io_.RingNodes()).n);
  *total_bytes = total / n;
  *free_bytes = avail / n;
  std::lock_guard<std::mutex> lock(statfs_mu_);
  statfs_total_ = *total_bytes;
  statfs_free_ = *free_bytes;
  statfs_at_ = std::chrono::steady_clock::now();
  return 0;
}

}  // namespace ringstore::fs
