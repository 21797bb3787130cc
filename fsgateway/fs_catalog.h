// The admin operations on filesystems: create, list, open, remove (`ringstore fs`).
// Create writes a catalog entry, the root directory's inode and the superblock, in that order;
// the catalog is a map record, so two creates of different filesystems at once both stay
// listed. Create and Remove each begin with an admin-only write (node/access_policy.h), so
// that a client without the admin role changes nothing.
// Remove walks the tree from the root and deletes every inode, directory and chunk, then the
// superblock and the catalog entry; it can be run again after an interruption.
// Thread-safety: as the ObjectIo it runs on.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fsgateway/fs_layout.h"
#include "fsgateway/object_io.h"

namespace ringstore::fs {

// Objects removed so far.
using RemoveProgress = std::function<void(uint64_t objects)>;

class FsCatalog {
 public:
  explicit FsCatalog(ObjectIo& io, Quorum meta_quorum = {}) : io_(io), q_(meta_quorum) {}

  // AlreadyExists-like InvalidArgument if the name is taken. meta.uuid is drawn by the caller.
  Status Create(const FsMeta& meta, uint32_t root_uid, uint32_t root_gid, int64_t now_sec);
  Result<FsMeta> Open(const std::string& name);
  Result<std::vector<std::string>> List();
  Status Remove(const std::string& name, const RemoveProgress& progress);

 private:
  // Adds name's catalog entry, or a deleted one: one merge of one map entry.
  Status SetListed(const std::string& name, bool listed);

  ObjectIo& io_;
  Quorum q_;
};

}  // namespace ringstore::fs
