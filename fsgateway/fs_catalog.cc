#include "fsgateway/fs_catalog.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <set>

namespace ringstore::fs {

namespace {
constexpr size_t kDeleteBatch = 64;  // deletes in flight during remove
}  // namespace

Status FsCatalog::Create(const FsMeta& meta, uint32_t root_uid, uint32_t root_gid, int64_t now_sec) {
  RS_TRY(ValidateFsName(meta.name));
  RS_TRY(ValidateChunkSize(meta.chunk_size));
  RS_TRY(ValidateDirBuckets(meta.dir_buckets));
  if (meta.uuid.size() != 16) return Status::InvalidArgument("a filesystem needs a 16-byte uuid");
  IoResult existing = io_.Get(SuperblockId(meta.name), q_);
  if (existing.status.ok()) return Status::InvalidArgument("filesystem '" + meta.name + "' already exists");
  if (!existing.status.IsNotFound()) return existing.status;
  // The catalog entry first: it is an admin-only write (node/access_policy.h), so a client
  // without the admin role is refused before it writes anything. Then the root, then the
  // superblock: a superblock always has its root. A create cut short leaves a listed name
  // without a superblock, which `fs create` completes and `fs rm` drops.
  RS_TRY(SetListed(meta.name, true));
  Inode root;
  root.ino = kRootIno;
  root.mode = S_IFDIR | 0755;
  root.uid = root_uid;
  root.gid = root_gid;
  root.nlink = 2;
  root.parent = kRootIno;
  root.atime = root.mtime = root.ctime = Timespec{now_sec, 0};
  RS_TRY(io_.Put(InodeId(meta, kRootIno), EncodeInode(root), meta.quorum));
  return io_.Put(SuperblockId(meta.name), EncodeFsMeta(meta), q_);
}

Result<FsMeta> FsCatalog::Open(const std::string& name) {
  RS_TRY(ValidateFsName(name));
  IoResult r = io_.Get(SuperblockId(name), q_);
  if (r.status.IsNotFound()) return Status::NotFound("no filesystem named '" + name + "'");
  if (!r.status.ok()) return r.status;
  return DecodeFsMeta(r.value);
}

Result<std::vector<std::string>> FsCatalog::List() {
  IoResult r = io_.Get(CatalogId(), q_);
  if (r.status.IsNotFound()) return std::vector<std::string>{};
  if (!r.status.ok()) return r.status;
  auto map = DecodeLwwMap(r.value);
  if (!r.is_map || !map.ok()) return Status::Corruption("the filesystem catalog is not a map");
  std::vector<std::string> names;
  for (const auto& [name, e] : *map) {
    if (!e.deleted) names.push_back(name);
  }
  return names;
}

Status FsCatalog::Remove(const std::string& name, const RemoveProgress& progress) {
  auto meta = Open(name);
  if (meta.status().IsNotFound()) {
    // Not there: make sure the catalog does not list it either (a create cut short).
    RS_TRY(SetListed(name, false));
    return meta.status();
  }
  if (!meta.ok()) return meta.status();
  const Quorum q = meta->quorum;
  // The admin check (node/access_policy.h): a write to an admin-only object, so that a client
  // without the admin role is refused before it deletes anything. It changes no filesystem.
  RS_TRY(io_.Put(ObjectKey::Of(reserved::kFsCatalog, reserved::kLastAdminOpKey), "fs rm " + name, q_));
  // Walk breadth-first from the root, listing what to delete; then delete it in reverse, so
  // a directory's listing goes only after everything under it: an interrupted remove leaves
  // a tree that a second run still finds. An inode reached twice (hard links) is listed once.
  std::vector<ObjectKey> doomed;
  std::deque<uint64_t> dirs{kRootIno};
  std::set<uint64_t> seen{kRootIno};
  while (!dirs.empty()) {
    const uint64_t dir = dirs.front();
    dirs.pop_front();
    doomed.push_back(InodeId(*meta, dir));
    LwwMap map;
    std::vector<IoOp> reads;
    for (const ObjectKey& id : DirBucketIds(*meta, dir)) {
      doomed.push_back(id);
      reads.push_back(IoOp{IoOp::kGet, id, {}, {}});
    }
    for (const IoResult& listing : io_.Run(std::move(reads), q)) {
      if (listing.status.IsNotFound()) continue;
      if (!listing.status.ok()) return listing.status;
      auto bucket = DecodeLwwMap(listing.value);
      if (!bucket.ok()) return Status::Corruption("directory " + std::to_string(dir) + " is not a map");
      // Gathered, not merged: a bucket's clear mark (an rmdir's) holds for that bucket only.
      for (auto& [child_name, e] : *bucket) {
        auto [it, fresh] = map.try_emplace(child_name, e);
        if (!fresh && EntrySupersedes(e, it->second)) it->second = std::move(e);
      }
    }
    for (const auto& [child_name, e] : map) {
      if (e.deleted || child_name == kDirTimesName) continue;
      auto entry = DecodeDirEntry(e.payload);
      if (!entry.ok() || !seen.insert(entry->ino).second) continue;
      if (S_ISDIR(entry->type)) {
        dirs.push_back(entry->ino);
        continue;
      }
      doomed.push_back(InodeId(*meta, entry->ino));
      IoResult inode = io_.Get(InodeId(*meta, entry->ino), q);
      if (inode.status.ok()) {
        if (auto n = DecodeInode(inode.value); n.ok()) {
          // The chunks that may be stored (F13): below the limit, or for an older inode the size.
          const uint64_t chunks = n->chunk_limit != kUnknownChunkLimit
                                      ? n->chunk_limit
                                      : (n->size + meta->chunk_size - 1) / meta->chunk_size;
          for (uint64_t i = 0; i < chunks; ++i) doomed.push_back(ChunkId(*meta, n->ino, i));
        }
      } else if (!inode.status.IsNotFound()) {
        return inode.status;
      }
    }
  }
  uint64_t removed = 0;
  while (!doomed.empty()) {
    std::vector<IoOp> batch;
    while (!doomed.empty() && batch.size() < kDeleteBatch) {
      batch.push_back(IoOp{IoOp::kDel, doomed.back(), {}, {}});
      doomed.pop_back();
    }
    removed += batch.size();
    for (auto& r : io_.Run(std::move(batch), q)) {
      if (!r.status.ok() && !r.status.IsNotFound()) return r.status;
    }
    if (progress) progress(removed);
  }
  RS_TRY(io_.Del(SuperblockId(name), q_));
  return SetListed(name, false);
}

Status FsCatalog::SetListed(const std::string& name, bool listed) {
  LwwMap entry;
  entry[name] = MapEntry{0, !listed, {}};
  return io_.Merge(CatalogId(), std::move(entry), q_);
}

}  // namespace ringstore::fs
