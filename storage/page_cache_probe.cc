#include "storage/page_cache_probe.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace ringstore {

namespace {

// Debian 12's kernel headers predate cachestat (6.5), so its structures are spelled out
// here, as in include/uapi/linux/mman.h, and so is its number where the headers lack it: 451
// in the table that every architecture has shared since 4.20, except alpha, ia64 and MIPS,
// which number it otherwise (there the probe answers false).
#if defined(SYS_cachestat)
constexpr long kCachestat = SYS_cachestat;
#elif defined(__alpha__) || defined(__ia64__) || defined(__mips__)
constexpr long kCachestat = -1;
#else
constexpr long kCachestat = 451;
#endif
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
  // A kernel without cachestat says so once (ENOSYS); it is not asked again.
  static std::atomic<bool> unsupported{kCachestat < 0};
  if (fd < 0 || len == 0 || unsupported.load(std::memory_order_relaxed)) return false;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t first = offset / page;
  const uint64_t last = (offset + len - 1) / page;
  CachestatRange range{first * page, (last - first + 1) * page};
  Cachestat stat{};
  long r;
  do {
    r = ::syscall(kCachestat, fd, &range, &stat, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno == ENOSYS) unsupported.store(true, std::memory_order_relaxed);
  return r == 0 && stat.nr_cache >= last - first + 1;
}

}  // namespace ringstore
