// BlockingExecutor: an Executor that worker threads may post to, and a way for a test to
// wait for a store call to complete (bounded; a hang fails the test instead of hanging it).
// Thread-safety: Post is thread-safe; Await/RunFor run on the test thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "storage/store.h"

namespace ringstore::testing {

class BlockingExecutor {
 public:
  Executor executor() {
    return [this](std::function<void()> fn) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        tasks_.push_back(std::move(fn));
      }
      cv_.notify_one();
    };
  }
  // Runs posted tasks until pred() holds; false if it did not within the bound.
  bool RunUntil(const std::function<bool()>& pred,
                std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!pred()) {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_until(lock, deadline, [&] { return !tasks_.empty(); })) return false;
      auto fn = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      fn();
    }
    return true;
  }
  // Starts a call and waits for its result.
  template <typename T>
  T Await(const std::function<void(std::function<void(T)>)>& start) {
    std::optional<T> out;
    start([&](T v) { out.emplace(std::move(v)); });
    EXPECT_TRUE(RunUntil([&] { return out.has_value(); })) << "store call did not complete";
    return std::move(*out);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
};

}  // namespace ringstore::testing
