// The fixture of the FsCore tests: one filesystem over a MemoryObjectIo, mounts of it whose
// caches always read again (attr TTL 0), and helpers. Used by fs_core_test.cc and
// fs_background_test.cc.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "fsgateway/fs_core.h"

namespace ringstore::fs::fstest {

inline FsMeta TestMeta(uint64_t chunk = 4096) {
  FsMeta m;
  m.name = "t";
  m.uuid = std::string(16, 'u');
  m.chunk_size = chunk;
  return m;
}

class FsCoreTest : public ::testing::Test {
 protected:
  FsCoreTest() { mount_a_ = Mount(); }
  std::unique_ptr<FsCore> Mount(FsOptions o = {}) { return MountOver(io_, o); }
  std::unique_ptr<FsCore> MountOver(ObjectIo& io, FsOptions o = {}) {
    o.attr_ttl = std::chrono::milliseconds(0);  // always re-read: other mounts' changes show at once
    auto core = std::make_unique<FsCore>(meta_, io, o, [this] { return Timespec{++clock_, 0}; },
                                         [this] {
                                           std::lock_guard<std::mutex> lock(rng_mu_);
                                           return rng_();
                                         });
    EXPECT_EQ(core->Init(), 0);
    return core;
  }
  FsCore& a() { return *mount_a_; }
  uint64_t Create(FsCore& c, uint64_t parent, const std::string& name, uint32_t mode = S_IFREG | 0644) {
    Inode n;
    EXPECT_EQ(c.MakeNode(parent, name, mode, 0, Caller{1, 2}, &n), 0) << name;
    return n.ino;
  }
  std::string ReadAll(FsCore& c, uint64_t ino) {
    Inode n;
    EXPECT_EQ(c.GetAttr(ino, &n), 0);
    std::string out;
    EXPECT_EQ(c.Read(ino, 0, n.size + 10, &out), 0);
    return out;
  }
  std::vector<std::string> Names(FsCore& c, uint64_t dir) {
    std::vector<std::pair<std::string, DirEntry>> list;
    EXPECT_EQ(c.ReadDir(dir, &list), 0);
    std::vector<std::string> names;
    for (auto& [n, e] : list) names.push_back(n);
    return names;
  }

  FsMeta meta_ = TestMeta();
  MemoryObjectIo io_;
  std::atomic<int64_t> clock_{1000};
  std::mutex rng_mu_;  // namespace operations may run on several threads
  std::mt19937_64 rng_{7};
  std::unique_ptr<FsCore> mount_a_;
};

}  // namespace ringstore::fs::fstest
