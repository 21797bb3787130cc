// Whether a directory's file system takes O_DIRECT, for tests of what is written around the
// page cache (they skip where it is refused: the code then writes through the cache).
// Stateless; safe from any thread.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

namespace ringstore::testing {

inline bool DirectIoAllowed(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::filesystem::path probe = dir / "direct-io-probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  std::filesystem::remove(probe);
  return fd >= 0;
}

}  // namespace ringstore::testing
