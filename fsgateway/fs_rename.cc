// FsCore's rename (see fs_core.h): within one directory under that directory's lock when only
// files are involved (F11), else with the mount's namespace lock alone; the new name is added
// before the old one goes (F4).
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

int FsCore::Rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                   unsigned flags) {
  if (options_.read_only) return EROFS;
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) return EINVAL;
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return EINVAL;
  if (new_name.size() > kMaxNameBytes) return ENAMETOOLONG;
  if (parent == new_parent) {
    // Files renamed within one directory change that directory alone (F11).
    DirScope scope(*this, parent);
    if (int e = WaitForEntries(parent); e != 0) return e;
    const int e = RenameLocked(parent, name, new_parent, new_name, flags, /*files_only=*/true);
    if (e != kNeedsAlone) return e;
  }
  auto ns = LockAlone();  // alone: it may touch two directories
  if (int e = WaitForEntries(); e != 0) return e;
  return RenameLocked(parent, name, new_parent, new_name, flags, /*files_only=*/false);
}

int FsCore::RenameLocked(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                         unsigned flags, bool files_only) {
  DirEntry src, dst;
  if (int e = LookupLocked(parent, name, &src); e != 0) return e;
  const int dst_err = LookupLocked(new_parent, new_name, &dst);
  if (dst_err != 0 && dst_err != ENOENT) return dst_err;
  const bool dst_exists = dst_err == 0;
  if (files_only && (IsDir(src.type) || (dst_exists && IsDir(dst.type)))) return kNeedsAlone;
  const Timespec now = now_();
  const bool same_dir = parent == new_parent;
  // Moves a directory's ".." and the two parents' link counts.
  auto reparent = [&](const DirEntry& d, uint64_t from, uint64_t to) -> int {
    if (!IsDir(d.type) || from == to) return 0;
    auto n = NodeFor(d.ino);
    std::lock_guard<std::mutex> lock(n->mu);
    if (int e = LoadForUpdate(*n); e != 0) return e;
    Inode next = n->inode;
    next.parent = to;
    next.ctime = now;
    return StoreNode(*n, std::move(next));
  };

  if (flags & RENAME_EXCHANGE) {
    if (!dst_exists) return ENOENT;
    LwwMap a, b;
    a[name] = MapEntry{0, false, EncodeDirEntry(dst)};
    (same_dir ? a : b)[new_name] = MapEntry{0, false, EncodeDirEntry(src)};
    if (int e = ChangeDir(parent, std::move(a), now); e != 0) return e;
    if (!same_dir) {
      if (int e = ChangeDir(new_parent, std::move(b), now); e != 0) return e;
    }
    if (int e = reparent(src, parent, new_parent); e != 0) return e;
    return reparent(dst, new_parent, parent);
  }

  if (dst_exists) {
    if (flags & RENAME_NOREPLACE) return EEXIST;
    if (dst.ino == src.ino) return 0;  // two links to one inode: POSIX says do nothing
    if (IsDir(src.type) && !IsDir(dst.type)) return ENOTDIR;
    if (!IsDir(src.type) && IsDir(dst.type)) return EISDIR;
    if (IsDir(dst.type)) {
      auto d = NodeFor(dst.ino);
      std::lock_guard<std::mutex> lock(d->mu);
      if (int e = LoadEntries(*d, /*force=*/true); e != 0) return e;
      if (!d->entries->empty()) return ENOTEMPTY;
    }
  }
  // The new name first: a crash between the two merges leaves two names, never none. Both
  // go in one merge when they share a directory bucket (F9).
  LwwMap add, del;
  add[new_name] = MapEntry{0, false, EncodeDirEntry(src)};
  const bool one_merge = same_dir && DirBucketOf(fs_, name) == DirBucketOf(fs_, new_name);
  (one_merge ? add : del)[name] = MapEntry{0, true, {}};
  if (int e = ChangeDir(new_parent, std::move(add), now); e != 0) return e;
  if (!one_merge) {
    if (int e = ChangeDir(parent, std::move(del), now); e != 0) return e;
  }
  if (int e = reparent(src, parent, new_parent); e != 0) return e;
  if (!dst_exists) return 0;
  if (IsDir(dst.type)) {
    auto d = NodeFor(dst.ino);
    std::lock_guard<std::mutex> lock(d->mu);
    (void)LoadInode(*d);
    return DeleteInode(*d);
  }
  return DropLink(dst.ino, now);
}

}  // namespace ringstore::fs
