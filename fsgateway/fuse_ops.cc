#include "fsgateway/fuse_ops.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace ringstore::fs {

namespace {

FuseContext& Ctx(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }
FsCore& Core(fuse_req_t req) { return *Ctx(req).core; }

struct stat ToStat(const Inode& n, uint64_t chunk_size) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = n.ino;
  st.st_mode = n.mode;
  st.st_nlink = n.nlink;
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  st.st_rdev = n.rdev;
  st.st_size = static_cast<off_t>(n.size);
  st.st_blksize = static_cast<blksize_t>(std::min<uint64_t>(chunk_size, 1u << 20));
  st.st_blocks = static_cast<blkcnt_t>((n.size + 511) / 512);
  st.st_atim = timespec{n.atime.sec, n.atime.nsec};
  st.st_mtim = timespec{n.mtime.sec, n.mtime.nsec};
  st.st_ctim = timespec{n.ctime.sec, n.ctime.nsec};
  return st;
}

fuse_entry_param EntryOf(fuse_req_t req, const Inode& n) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = n.ino;
  e.generation = 1;
  e.attr = ToStat(n, Core(req).meta().chunk_size);
  e.attr_timeout = Ctx(req).attr_timeout;
  e.entry_timeout = Ctx(req).entry_timeout;
  return e;
}

void ReplyEntry(fuse_req_t req, int err, const Inode& n) {
  if (err == ENOENT) {
    // A negative entry (ino 0), cached like a positive one.
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    e.entry_timeout = Ctx(req).entry_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  const fuse_entry_param e = EntryOf(req, n);
  fuse_reply_entry(req, &e);
}

void ReplyAttr(fuse_req_t req, int err, const Inode& n) {
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  struct stat st = ToStat(n, Core(req).meta().chunk_size);
  fuse_reply_attr(req, &st, Ctx(req).attr_timeout);
}

Caller Who(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Caller{c->uid, c->gid};
}

Timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

// ---- handlers -------------------------------------------------------------------------

void OnInit(void*, fuse_conn_info* conn) {
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
}

void OnDestroy(void* userdata) { (void)static_cast<FuseContext*>(userdata)->core->FlushAll(); }

void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Inode n;
  const int e = Core(req).Lookup(parent, name, &n);
  ReplyEntry(req, e, n);
}

void OnForget(fuse_req_t req, fuse_ino_t ino, uint64_t) {
  Core(req).Forget(ino);
  fuse_reply_none(req);
}

void OnForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Core(req).Forget(forgets[i].ino);
  fuse_reply_none(req);
}

void OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Inode n;
  const int e = Core(req).GetAttr(ino, &n);
  ReplyAttr(req, e, n);
}

void OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  SetAttr s;
  if (to_set & FUSE_SET_ATTR_MODE) s.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_UID) s.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) s.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) s.size = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    s.atime = Now();
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    s.atime = Timespec{attr->st_atim.tv_sec, static_cast<uint32_t>(attr->st_atim.tv_nsec)};
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    s.mtime = Now();
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    s.mtime = Timespec{attr->st_mtim.tv_sec, static_cast<uint32_t>(attr->st_mtim.tv_nsec)};
  }
  Inode n;
  const int e = Core(req).SetAttributes(ino, s, &n);
  ReplyAttr(req, e, n);
}

void OnReadlink(fuse_req_t req, fuse_ino_t ino) {
  std::string target;
  if (int e = Core(req).ReadLink(ino, &target); e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_readlink(req, target.c_str());
}

void OnMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Inode n;
  const int e = Core(req).MakeNode(parent, name, mode, rdev, Who(req), &n);
  if (e == ENOENT) return (void)fuse_reply_err(req, e);
  ReplyEntry(req, e, n);
}

void OnMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  OnMknod(req, parent, name, S_IFDIR | (mode & 07777), 0);
}

void OnSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Inode n;
  const int e = Core(req).Symlink(parent, name, target, Who(req), &n);
  if (e == ENOENT) return (void)fuse_reply_err(req, e);
  ReplyEntry(req, e, n);
}

void OnLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Inode n;
  const int e = Core(req).Link(ino, new_parent, new_name, &n);
  if (e == ENOENT) return (void)fuse_reply_err(req, e);
  ReplyEntry(req, e, n);
}

void OnUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, Core(req).Unlink(parent, name));
}

void OnRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, Core(req).Rmdir(parent, name));
}

void OnRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent, const char* new_name,
              unsigned int flags) {
  fuse_reply_err(req, Core(req).Rename(parent, name, new_parent, new_name, flags));
}

void OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  bool keep = false;
  const bool truncate = (fi->flags & O_TRUNC) != 0 && (fi->flags & O_ACCMODE) != O_RDONLY;
  const bool reading = (fi->flags & O_ACCMODE) != O_WRONLY;
  if ((fi->flags & O_ACCMODE) != O_RDONLY && Core(req).read_only()) return (void)fuse_reply_err(req, EROFS);
  if (int e = Core(req).Open(ino, truncate, &keep, /*created=*/false, reading); e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fi->keep_cache = keep ? 1 : 0;
  if (!keep && Ctx(req).session != nullptr) {
    // Another mount changed the file: the kernel's cached attributes (its idea of the size,
    // which bounds reads) go too. Offset -1 touches attributes only, so no page lock is
    // taken and it is safe inside this open.
    (void)fuse_lowlevel_notify_inval_inode(Ctx(req).session, ino, -1, 0);
  }
  if (fuse_reply_open(req, fi) != 0) (void)Core(req).Release(ino);  // the opener is gone
}

void OnCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Inode n;
  int e = Core(req).CreateOpen(parent, name, mode, Who(req), &n);
  bool keep = false;
  if (e == 0) e = Core(req).Open(n.ino, false, &keep, /*created=*/true);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  const fuse_entry_param ep = EntryOf(req, n);
  if (fuse_reply_create(req, &ep, fi) != 0) (void)Core(req).Release(n.ino);
}

void OnRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  std::string data;
  if (int e = Core(req).Read(ino, static_cast<uint64_t>(off), size, &data); e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_buf(req, data.data(), data.size());
}

void OnWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) {
  // A write that crosses the largest file size writes what fits (a short write); one that
  // starts there fails with EFBIG (in Write).
  const uint64_t start = static_cast<uint64_t>(off);
  if (size > 0 && BytesThatFit(start, size) > 0) size = BytesThatFit(start, size);
  if (int e = Core(req).Write(ino, start, std::string_view(buf, size)); e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_write(req, size);
}

void OnFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { fuse_reply_err(req, Core(req).Flush(ino)); }

void OnRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { fuse_reply_err(req, Core(req).Release(ino)); }

void OnFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) { fuse_reply_err(req, Core(req).Flush(ino)); }

void CloseDirHandle(FuseContext& ctx, const fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(ctx.dirs_mu);
  ctx.dirs.erase(reinterpret_cast<const DirHandle*>(fi->fh));
}

void OnOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto h = std::make_unique<DirHandle>();
  bool keep = false;
  if (int e = Core(req).OpenDir(ino, &h->parent, &keep); e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  // The kernel caches the listing our readdir hands it and serves later listings itself,
  // until this directory changes here (the kernel resets its copy), another mount's change
  // is announced (the notifier invalidates the directory's pages), or an opendir finds the
  // listing changed (keep_cache off: the kernel drops its copy).
  fi->cache_readdir = 1;
  fi->keep_cache = keep ? 1 : 0;
  fi->fh = reinterpret_cast<uint64_t>(h.get());
  FuseContext& ctx = Ctx(req);
  {
    std::lock_guard<std::mutex> lock(ctx.dirs_mu);
    ctx.dirs.emplace(h.get(), std::move(h));
  }
  if (fuse_reply_open(req, fi) != 0) CloseDirHandle(ctx, fi);
}

// One READDIR or READDIRPLUS reply from the handle's entries, from offset off. READDIRPLUS
// hands each entry's attributes to the kernel as a lookup would (Lookup reads the inodes of a
// stale listing ahead, in batches). A subdirectory, or an entry whose lookup fails, goes
// without them (ino 0: the kernel looks it up itself if asked); after an error other than
// ENOENT (the cluster unreachable) so does the rest of the reply, rather than each entry
// waiting out the timeout.
void ReplyDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  auto* h = reinterpret_cast<DirHandle*>(fi->fh);
  if (off == 0 || !h->read) {
    // A read from the start (a new listing, or rewinddir) sees the directory as it is now. So
    // does a handle's first read past the start (the kernel resuming a listing it cached in
    // part, or an NFS export's new handle for each READDIR).
    if (int e = Core(req).ReadDir(ino, &h->entries, &h->generation); e != 0) return (void)fuse_reply_err(req, e);
    h->read = true;
  }
  std::string buf(size, '\0');
  size_t used = 0;
  bool attrs = plus;
  // Offsets: 1 is ".", 2 is "..", 3 + i is entries[i]; an entry's offset is the next one's.
  for (size_t i = static_cast<size_t>(off); i < h->entries.size() + 2; ++i) {
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    struct stat& st = e.attr;
    std::string name;
    if (i == 0) {
      name = ".";
      st.st_ino = ino;
      st.st_mode = S_IFDIR;
    } else if (i == 1) {
      name = "..";
      st.st_ino = h->parent;
      st.st_mode = S_IFDIR;
    } else {
      name = h->entries[i - 2].first;
      st.st_ino = h->entries[i - 2].second.ino;
      st.st_mode = h->entries[i - 2].second.type;
    }
    const off_t next = static_cast<off_t>(i + 1);
    size_t need;
    if (!plus) {
      need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, next);
    } else {
      // Looked up only if it fits: every entry the kernel is handed with an ino is a lookup.
      if (fuse_add_direntry_plus(req, nullptr, 0, name.c_str(), nullptr, 0) > size - used) break;
      // Not for a subdirectory: its attributes need its listing (the link count), a fetch
      // of every bucket that a plain `ls` would not have asked for.
      if (i >= 2 && attrs && !S_ISDIR(st.st_mode)) {
        Inode n;
        const int err = Core(req).Lookup(ino, name, &n);
        if (err == 0) {
          e = EntryOf(req, n);
        } else if (err != ENOENT) {
          attrs = false;
        }
      }
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, next);
    }
    if (need > size - used) break;
    used += need;
  }
  // Noted before the reply: a change that lands meanwhile bumps the generation past it.
  if (off == 0) Core(req).KernelCachedListing(ino, h->generation);
  fuse_reply_buf(req, buf.data(), used);
}

void OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReplyDir(req, ino, size, off, fi, /*plus=*/false);
}

void OnReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReplyDir(req, ino, size, off, fi, /*plus=*/true);
}

void OnReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  CloseDirHandle(Ctx(req), fi);
  fuse_reply_err(req, 0);
}

void OnFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  fuse_reply_err(req, 0);  // directory changes are durable at W replicas when answered
}

void OnStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv;
  std::memset(&sv, 0, sizeof sv);
  uint64_t total = 0, avail = 0;
  if (int e = Core(req).StatFs(&total, &avail); e != 0) return (void)fuse_reply_err(req, e);
  const uint64_t bsize = 4096;
  sv.f_bsize = bsize;
  sv.f_frsize = bsize;
  sv.f_blocks = total / bsize;
  sv.f_bfree = avail / bsize;
  sv.f_bavail = avail / bsize;
  sv.f_files = 1ull << 40;  // inodes are objects: no fixed table
  sv.f_ffree = 1ull << 40;
  sv.f_favail = 1ull << 40;
  sv.f_namemax = kMaxNameBytes;
  fuse_reply_statfs(req, &sv);
}

void OnSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  fuse_reply_err(req, Core(req).SetXattr(ino, name, std::string(value, size), flags));
}

void OnGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  std::string value;
  if (int e = Core(req).GetXattr(ino, name, &value); e != 0) return (void)fuse_reply_err(req, e);
  if (size == 0) return (void)fuse_reply_xattr(req, value.size());
  if (size < value.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, value.data(), value.size());
}

void OnListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::vector<std::string> names;
  if (int e = Core(req).ListXattr(ino, &names); e != 0) return (void)fuse_reply_err(req, e);
  std::string list;
  for (const auto& n : names) {
    list += n;
    list.push_back('\0');
  }
  if (size == 0) return (void)fuse_reply_xattr(req, list.size());
  if (size < list.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, list.data(), list.size());
}

void OnRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  fuse_reply_err(req, Core(req).RemoveXattr(ino, name));
}

void OnAccess(fuse_req_t req, fuse_ino_t ino, int) {
  // Permissions are checked by the kernel (default_permissions); this only says it exists.
  Inode n;
  fuse_reply_err(req, Core(req).GetAttr(ino, &n));
}

void OnFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info*) {
  if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  fuse_reply_err(req, Core(req).Fallocate(ino, mode, static_cast<uint64_t>(offset), static_cast<uint64_t>(length)));
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = OnInit;
  ops.destroy = OnDestroy;
  ops.lookup = OnLookup;
  ops.forget = OnForget;
  ops.forget_multi = OnForgetMulti;
  ops.getattr = OnGetattr;
  ops.setattr = OnSetattr;
  ops.readlink = OnReadlink;
  ops.mknod = OnMknod;
  ops.mkdir = OnMkdir;
  ops.unlink = OnUnlink;
  ops.rmdir = OnRmdir;
  ops.symlink = OnSymlink;
  ops.rename = OnRename;
  ops.link = OnLink;
  ops.open = OnOpen;
  ops.read = OnRead;
  ops.write = OnWrite;
  ops.flush = OnFlush;
  ops.release = OnRelease;
  ops.fsync = OnFsync;
  ops.opendir = OnOpendir;
  ops.readdir = OnReaddir;
  ops.readdirplus = OnReaddirplus;
  ops.releasedir = OnReleasedir;
  ops.fsyncdir = OnFsyncdir;
  ops.statfs = OnStatfs;
  ops.setxattr = OnSetxattr;
  ops.getxattr = OnGetxattr;
  ops.listxattr = OnListxattr;
  ops.removexattr = OnRemovexattr;
  ops.access = OnAccess;
  ops.create = OnCreate;
  ops.fallocate = OnFallocate;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& FuseOperations() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

}  // namespace ringstore::fs
