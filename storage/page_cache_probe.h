// PageCacheHolds: whether the page cache holds every page of a byte range of a file, asked of
// the kernel without reading it (cachestat(2), Linux 6.5 and later). A read with RWF_NOWAIT
// would answer too, but on a miss it starts the kernel's readahead into the page cache, which
// is what its callers avoid (storage/read_windows.h).
//
// On a kernel without cachestat, or on any error, the answer is false, and the caller reads
// the disk: slower than a copy from the page cache, never wrong. Recent kernels answer only
// for a file the caller owns or may write, or one opened for writing (EPERM otherwise); the
// value log's segments are the node's own files.
// Thread-safety: none needed; it asks the kernel only.
#pragma once

#include <cstdint>

namespace ringstore {

bool PageCacheHolds(int fd, uint64_t offset, uint64_t len);

}  // namespace ringstore
