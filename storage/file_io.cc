#include "storage/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ringstore {

Status ErrnoStatus(const std::string& what) { return Status::IOError(what + ": " + std::strerror(errno)); }

Status ReadFully(int fd, char* out, uint64_t len, uint64_t offset, const std::string& path) {
  uint64_t done = 0;
  while (done < len) {
    const ssize_t r = ::pread(fd, out + done, len - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus("read " + path);
    if (r == 0) return Status::Corruption(path + " ends before the bytes read");
    done += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::Ok() : ErrnoStatus("fsync " + dir);
}

std::string SegmentFileName(uint64_t number, const std::string& ext) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%08llu", static_cast<unsigned long long>(number));
  return digits + ext;
}

uint64_t ParseSegmentFileName(const std::string& name, const std::string& ext) {
  if (name.size() < 8 + ext.size() || name.size() > 19 + ext.size()) return 0;
  const size_t digits = name.size() - ext.size();
  if (name.compare(digits, ext.size(), ext) != 0) return 0;
  uint64_t n = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return n;
}

char* AlignedBuffer::Reserve(uint64_t n, uint64_t keep) {
  if (n > capacity) {
    const uint64_t grown = AlignToBlock(std::max<uint64_t>(n, 2 * capacity));
    char* bigger = nullptr;
    if (::posix_memalign(reinterpret_cast<void**>(&bigger), kFileBlockBytes, grown) != 0) return nullptr;
    if (keep > 0) std::memcpy(bigger, data, keep);
    std::free(data);
    data = bigger;
    capacity = grown;
  }
  return data;
}

AlignedBuffer::~AlignedBuffer() { std::free(data); }

}  // namespace ringstore
