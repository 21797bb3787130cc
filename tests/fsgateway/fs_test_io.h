// Test ObjectIos for FsCore's background work, over a MemoryObjectIo: one that holds
// batches until released (HeldIo), one that reads at once and answers late (LateIo), one that
// counts batches (BatchSizeIo); and two helpers.
// Thread-safety: HeldIo is thread-safe; the others are for one thread at a time.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fsgateway/object_io.h"

namespace ringstore::fs::fstest::io {

// Waits, up to 10 s, until pred holds; false if it never did.
inline bool WaitUntil(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// An ObjectIo over a MemoryObjectIo that passes on all but Start.
class ForwardingIo : public ObjectIo {
 public:
  explicit ForwardingIo(MemoryObjectIo& inner) : inner_(inner) {}
  size_t RingNodes() override { return inner_.RingNodes(); }
  Status Capacity(uint64_t* t, uint64_t* f) override { return inner_.Capacity(t, f); }
  void Watch(const ObjectId& c, std::function<void(std::string)> h) override { inner_.Watch(c, std::move(h)); }
  void Notify(const ObjectId& c, std::string p) override { inner_.Notify(c, std::move(p)); }

 protected:
  MemoryObjectIo& inner_;
};

// Batches with an op of one kind (or one the predicate picks) are held, as background writes
// to a slow cluster are, until the test calls Release; then they finish on their own thread.
class HeldIo final : public ForwardingIo {
 public:
  HeldIo(MemoryObjectIo& inner, IoOp::Kind held)
      : HeldIo(inner, [held](const IoOp& op) { return op.kind == held; }) {}
  HeldIo(MemoryObjectIo& inner, std::function<bool(const IoOp&)> held) : ForwardingIo(inner), held_(std::move(held)) {}
  ~HeldIo() override {
    Release();
    for (auto& t : threads_) t.join();
  }
  std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done) override {
    bool hold = false;
    for (const IoOp& op : ops) hold = hold || held_(op);
    if (!hold) return inner_.Start(std::move(ops), q, std::move(done));
    auto pending = std::make_shared<PendingIo>();
    std::lock_guard<std::mutex> lock(mu_);
    held_batches_.push_back(pending);
    threads_.emplace_back([this, ops = std::move(ops), q, done = std::move(done), pending]() mutable {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return released_; });
      }
      auto results = inner_.Run(std::move(ops), q);
      if (done) done(results);
      pending->Finish(std::move(results));
    });
    return pending;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Threads waiting on the first batch held.
  size_t FirstWaiters() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_batches_.empty() ? 0 : held_batches_.front()->waiters();
  }
  size_t Held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_batches_.size();
  }

 private:
  const std::function<bool(const IoOp&)> held_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::vector<std::shared_ptr<PendingIo>> held_batches_;
  std::vector<std::thread> threads_;
};

// Records the largest batch it was given.
class BatchSizeIo final : public ForwardingIo {
 public:
  using ForwardingIo::ForwardingIo;
  std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done) override {
    largest = std::max(largest, ops.size());
    ++batches;
    return inner_.Start(std::move(ops), q, std::move(done));
  }
  size_t largest = 0;
  size_t batches = 0;
};

// Batches of more than one read (a sequential reader's read-ahead) are read at once but
// finish only when the test calls Release, on the test's thread: their bytes are as of the
// start. Nothing may wait for a held batch before Release.
class LateIo final : public ForwardingIo {
 public:
  using ForwardingIo::ForwardingIo;
  std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done) override {
    const bool reads = ops.size() > 1 && std::all_of(ops.begin(), ops.end(), [](const IoOp& op) { return op.kind == IoOp::kGet; });
    if (!reads) return inner_.Start(std::move(ops), q, std::move(done));
    auto pending = std::make_shared<PendingIo>();
    held_.push_back(Held{pending, inner_.Run(std::move(ops), q), std::move(done)});
    return pending;
  }
  void Release() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& h : held) {
      if (h.done) h.done(h.results);
      h.pending->Finish(std::move(h.results));
    }
  }
  size_t held() const { return held_.size(); }

 private:
  struct Held {
    std::shared_ptr<PendingIo> pending;
    std::vector<IoResult> results;
    Done done;
  };
  std::vector<Held> held_;
};

inline std::string Pattern(size_t bytes, char first) {
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(first + (i / 4096) % 20);
  return data;
}

}  // namespace ringstore::fs::fstest::io
