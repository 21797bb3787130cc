// Test support for VolumeCache: FakeStore, an in-memory ChunkStore whose loads and stores
// complete at once or when the test releases them (and can be told to fail), helpers to
// collect callbacks, and the VolumeCacheTest fixture (4 KiB chunks, a FakeClock).
// Thread-safety: single-threaded.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>

#include "blockgateway/volume_cache.h"
#include "dht/random.h"
#include "tests/support/fake_clock.h"

namespace ringstore::block::cachetest {

using testing::FakeClock;
using namespace std::chrono_literals;

inline constexpr uint64_t kChunk = 4096;

inline VolumeMeta Meta(uint64_t chunks = 16) {
  VolumeMeta m;
  m.name = "vol";
  m.size = chunks * kChunk;
  m.chunk_size = kChunk;
  m.uuid = std::string(16, 'u');
  return m;
}

inline CacheLimits Limits() {
  CacheLimits l;
  l.readahead_chunks = 0;  // tests that want it turn it on
  l.writeback_delay = 1s;
  return l;
}

// A recognisable byte pattern: position and seed both show.
inline std::string Pattern(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('A' + (i * 7 + seed * 13) % 53);
  return s;
}

// The in-memory chunk store. Loads and stores complete at once unless held; held ones wait in
// queues until the test completes them, in any order. Failures are decided at completion.
class FakeStore final : public ChunkStore {
 public:
  std::map<uint64_t, std::string> data;  // stored chunks; absent or empty is a hole
  bool hold_loads = false, hold_stores = false;
  bool fail_loads = false, fail_stores = false;
  std::vector<uint64_t> load_log, store_log;  // every call, in order
  uint64_t store_failures = 0;

  void Load(uint64_t index, std::function<void(Result<std::string>)> done) override {
    load_log.push_back(index);
    loads_.push_back(PendingLoad{index, std::move(done)});
    if (!hold_loads) CompleteLoad(loads_.size() - 1);
  }
  void Store(uint64_t index, std::string bytes, std::function<void(Status)> done) override {
    store_log.push_back(index);
    if (!bytes.empty() && bytes.size() != kChunk) ADD_FAILURE() << "a store of " << bytes.size() << " bytes";
    for (const auto& s : stores_) {
      if (s.index == index) ADD_FAILURE() << "two stores of chunk " << index << " in flight";
    }
    stores_.push_back(PendingStore{index, std::move(bytes), std::move(done)});
    if (!hold_stores) CompleteStore(stores_.size() - 1);
  }

  // Answered from data as it is when the answer is given (at once, or at ReleaseExists).
  void Exists(uint64_t index, std::function<void(Result<bool>)> done) override {
    exists_log.push_back(index);
    auto answer = [this, index, done = std::move(done)] {
      if (fail_exists) return done(Status::Unavailable("metadata unavailable"));
      auto it = data.find(index);
      done(it != data.end() && !it->second.empty());
    };
    if (hold_exists) exists_held_.push_back(std::move(answer));
    else answer();
  }
  size_t held_exists() const { return exists_held_.size(); }
  void ReleaseExists() {
    auto held = std::move(exists_held_);
    exists_held_.clear();
    for (auto& fn : held) fn();
  }
  bool fail_exists = false, hold_exists = false;
  std::vector<uint64_t> exists_log;

  size_t pending_loads() const { return loads_.size(); }
  size_t pending_stores() const { return stores_.size(); }
  bool StorePending(uint64_t index) const {
    for (const auto& s : stores_) {
      if (s.index == index) return true;
    }
    return false;
  }
  bool LoadPending(uint64_t index) const {
    for (const auto& l : loads_) {
      if (l.index == index) return true;
    }
    return false;
  }

  void CompleteLoad(size_t i) {
    PendingLoad op = std::move(loads_.at(i));
    loads_.erase(loads_.begin() + static_cast<ptrdiff_t>(i));
    if (fail_loads) return op.done(Status::IOError("injected load failure"));
    auto it = data.find(op.index);
    op.done(it == data.end() ? std::string() : it->second);
  }
  void CompleteStore(size_t i, std::optional<bool> fail = std::nullopt) {
    PendingStore op = std::move(stores_.at(i));
    stores_.erase(stores_.begin() + static_cast<ptrdiff_t>(i));
    if (fail.value_or(fail_stores)) {
      ++store_failures;
      return op.done(Status::Unavailable("injected store failure"));
    }
    data[op.index] = std::move(op.bytes);
    op.done(Status::Ok());
  }
  bool CompleteLoadOf(uint64_t index) {
    for (size_t i = 0; i < loads_.size(); ++i) {
      if (loads_[i].index == index) return CompleteLoad(i), true;
    }
    return false;
  }
  bool CompleteStoreOf(uint64_t index, std::optional<bool> fail = std::nullopt) {
    for (size_t i = 0; i < stores_.size(); ++i) {
      if (stores_[i].index == index) return CompleteStore(i, fail), true;
    }
    return false;
  }
  // Completes everything, including what the completions start.
  void CompleteAll() {
    while (!loads_.empty() || !stores_.empty()) {
      if (!loads_.empty()) CompleteLoad(0);
      else CompleteStore(0);
    }
  }

  // A chunk's stored bytes as a reader sees them (holes are zeros).
  std::string Chunk(uint64_t index) const {
    auto it = data.find(index);
    if (it == data.end() || it->second.empty()) return std::string(kChunk, '\0');
    return it->second;
  }

 private:
  std::vector<std::function<void()>> exists_held_;
  struct PendingLoad {
    uint64_t index;
    std::function<void(Result<std::string>)> done;
  };
  struct PendingStore {
    uint64_t index;
    std::string bytes;
    std::function<void(Status)> done;
  };
  std::deque<PendingLoad> loads_;
  std::deque<PendingStore> stores_;
};

// "" when equal, else where they first differ: failures stay readable with 4 KiB chunks.
inline std::string Diff(const std::string& got, const std::string& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         "; first difference at byte " + std::to_string(i);
}

// What a callback received.
struct Got {
  int calls = 0;
  Status status;
  std::string data;
  bool ok() const { return calls == 1 && status.ok(); }
};
inline std::function<void(Status)> Into(Got& g) {
  return [&g](Status s) {
    ++g.calls;
    g.status = s;
  };
}
inline std::function<void(Result<std::string>)> IntoData(Got& g) {
  return [&g](Result<std::string> r) {
    ++g.calls;
    g.status = r.ok() ? Status::Ok() : r.status();
    if (r.ok()) g.data = std::move(*r);
  };
}

class VolumeCacheTest : public ::testing::Test {
 protected:
  void Make(CacheLimits limits = Limits(), uint64_t chunks = 16) {
    cache_ = std::make_unique<VolumeCache>(Meta(chunks), store_, clock_, limits);
  }
  std::string ReadNow(uint64_t offset, uint64_t length) {
    Got g;
    cache_->Read(offset, length, IntoData(g));
    EXPECT_EQ(g.calls, 1) << "read at " << offset << " not answered at once";
    EXPECT_TRUE(g.status.ok()) << g.status.ToString();
    return g.data;
  }
  Status WriteNow(uint64_t offset, std::string data, bool fua = false) {
    Got g;
    cache_->Write(offset, std::move(data), fua, Into(g));
    EXPECT_EQ(g.calls, 1) << "write at " << offset << " not answered at once";
    return g.status;
  }
  Status FlushNow() {
    Got g;
    cache_->Flush(Into(g));
    EXPECT_EQ(g.calls, 1) << "flush not answered at once";
    return g.status;
  }

  FakeStore store_;
  FakeClock clock_;
  std::unique_ptr<VolumeCache> cache_;
};


}  // namespace ringstore::block::cachetest
