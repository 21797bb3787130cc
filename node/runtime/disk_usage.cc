#include "node/runtime/disk_usage.h"

#include <sys/statvfs.h>
#include <unistd.h>

namespace ringstore {

DiskUsage DiskUsageOfDir(const std::string& dir) {
  DiskUsage d;
  struct statvfs sv;
  if (statvfs(dir.c_str(), &sv) != 0) return d;  // zeros: unknown
  d.capacity_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  d.free_bytes = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  d.disk_id = std::string(host) + ":" + std::to_string(sv.f_fsid);
  return d;
}

}  // namespace ringstore
