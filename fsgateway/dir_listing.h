// DirListing: a directory's live entries as one mount knows them, sorted by name, with the
// number of subdirectories among them kept as entries change. A directory's link count is
// 2 + that number (counted from the listing, docs/fsgateway.md F8), and an entry change used
// to count it by walking the whole listing: 10,000 steps per create or unlink in a directory
// of 10,000 files.
// Thread-safety: a value type; FsCore guards each one with its node's mutex.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <sys/stat.h>
#include <utility>

#include "fsgateway/fs_layout.h"

namespace ringstore::fs {

class DirListing {
 public:
  using Map = std::map<std::string, DirEntry>;
  using const_iterator = Map::const_iterator;

  DirListing() = default;
  explicit DirListing(Map entries) : map_(std::move(entries)) {
    for (const auto& [name, e] : map_) subdirs_ += S_ISDIR(e.type) ? 1 : 0;
  }

  void Set(const std::string& name, const DirEntry& entry) {
    auto [it, inserted] = map_.try_emplace(name, entry);
    if (!inserted) {
      subdirs_ -= S_ISDIR(it->second.type) ? 1 : 0;
      it->second = entry;
    }
    subdirs_ += S_ISDIR(entry.type) ? 1 : 0;
  }
  void Erase(const std::string& name) {
    auto it = map_.find(name);
    if (it == map_.end()) return;
    subdirs_ -= S_ISDIR(it->second.type) ? 1 : 0;
    map_.erase(it);
  }

  const Map& map() const { return map_; }
  uint32_t subdirs() const { return subdirs_; }
  bool empty() const { return map_.empty(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }
  const_iterator find(const std::string& name) const { return map_.find(name); }
  const_iterator upper_bound(const std::string& name) const { return map_.upper_bound(name); }

 private:
  Map map_;
  uint32_t subdirs_ = 0;
};

}  // namespace ringstore::fs
