// Open flags of this process's own descriptors, for tests that check how a component opened
// its files (O_DIRECT or not), and whether a directory's file system takes O_DIRECT at all.
// Stateless; safe from any thread, though the answer is a snapshot of the descriptor table.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ringstore::testing {

// The open flags of this process's descriptors on files directly in dir (/proc/self/fdinfo).
inline std::vector<int> FlagsOfFilesIn(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<int> out;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(e.path(), ec);
    if (ec || target.parent_path() != dir) continue;
    std::ifstream info("/proc/self/fdinfo/" + e.path().filename().string());
    std::string key;
    std::string value;
    while (info >> key >> value) {
      if (key == "flags:") out.push_back(static_cast<int>(std::stol(value, nullptr, 8)));
    }
  }
  return out;
}

// Whether dir's file system takes O_DIRECT (tmpfs did not before Linux 6.6).
inline bool TakesODirect(const std::filesystem::path& dir) {
  const std::string path = (dir / "o-direct-probe").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0644);
  if (fd >= 0) ::close(fd);
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return fd >= 0;
}

}  // namespace ringstore::testing
