// The FUSE3 low-level operations table: each handler turns one kernel request into an FsCore
// call and replies. Handlers run on libfuse's worker threads (fuse_session_loop_mt).
// The session's userdata is a FuseContext, which the caller owns and keeps alive until the
// session is destroyed.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstdint>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

struct FuseContext {
  FsCore* core = nullptr;
  fuse_session* session = nullptr;  // set once the session exists
  // Kernel attribute and entry cache lifetime, seconds.
  double attr_timeout = 1.0;
  double entry_timeout = 1.0;
};

const fuse_lowlevel_ops& FuseOperations();

}  // namespace ringstore::fs
