#include "storage/page_cache_probe.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace ringstore {

namespace {

// Debian 12's kernel headers predate cachestat (6.5), so its number and structures are
// spelled out here, as in include/uapi/linux/mman.h. Its number is the same on every
// architecture (the generic system call table).
constexpr long kCachestat = 451;
struct CachestatRange {
  uint64_t off;
  uint64_t len;
};
struct Cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

}  // namespace

bool PageCacheHolds(int fd, uint64_t offset, uint64_t len) {
  if (fd < 0 || len == 0) return false;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t first = offset / page;
  const uint64_t last = (offset + len - 1) / page;
  CachestatRange range{first * page, (last - first + 1) * page};
  Cachestat stat{};
  long r;
  do {
    r = ::syscall(kCachestat, fd, &range, &stat, 0);
  } while (r < 0 && errno == EINTR);
  return r == 0 && stat.nr_cache >= last - first + 1;
}

}  // namespace ringstore
