// The FUSE3 low-level operations table: each handler turns one kernel request into an FsCore
// call and replies. Handlers run on libfuse's worker threads (fuse_session_loop_mt).
// The session's userdata is a FuseContext, which the caller owns and keeps alive until the
// session is destroyed.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

// An open directory: its entries as of the last read from offset 0, so that offsets stay
// stable while it is read.
struct DirHandle {
  uint64_t parent = 0;
  std::vector<std::pair<std::string, DirEntry>> entries;
  uint64_t generation = 0;  // of entries (FsCore::ReadDir)
  bool read = false;        // entries were read (a handle may be read first past offset 0)
};

struct FuseContext {
  FsCore* core = nullptr;
  fuse_session* session = nullptr;  // set once the session exists
  // Kernel attribute and entry cache lifetime, seconds.
  double attr_timeout = 1.0;
  double entry_timeout = 1.0;
  // Open directories, owned here: the kernel sends RELEASEDIR without waiting for it, so one
  // may still be open when the session ends, and is freed with the context.
  std::mutex dirs_mu;
  std::unordered_map<const DirHandle*, std::unique_ptr<DirHandle>> dirs;
};

const fuse_lowlevel_ops& FuseOperations();

}  // namespace ringstore::fs
