#include "node/runtime/process_nice.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ringstore {
namespace {

pid_t Tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }
int NiceOf(pid_t tid) { return getpriority(PRIO_PROCESS, static_cast<id_t>(tid)); }

// A thread that waits until told to end, so that its nice value can be read meanwhile.
class Parked {
 public:
  Parked() : t_([this] {
      tid_ = Tid();
      std::unique_lock lock(mu_);
      cv_.notify_all();
      cv_.wait(lock, [this] { return done_; });
    }) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return tid_.load() != 0; });
  }
  ~Parked() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  pid_t tid() const { return tid_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<pid_t> tid_{0};
  std::thread t_;
};

TEST(ProcessNiceTest, LowersEveryThreadAndPutsThemBack) {
  Parked other, already_low;
  const int start = NiceOf(Tid());
  ASSERT_EQ(NiceOf(other.tid()), start);
  if (geteuid() != 0) {
    // Without root, a nice value cannot be put back down: Lower refuses and changes nothing.
    ProcessNice nice;
    Status s = nice.Lower(start + 5);
    EXPECT_EQ(s.code(), Code::kRefused) << s.ToString();
    EXPECT_FALSE(nice.lowered());
    EXPECT_EQ(NiceOf(Tid()), start);
    EXPECT_EQ(NiceOf(other.tid()), start);
    return;
  }
  ASSERT_EQ(setpriority(PRIO_PROCESS, static_cast<id_t>(already_low.tid()), 15), 0);
  ProcessNice nice;
  ASSERT_TRUE(nice.Lower(10).ok());
  EXPECT_TRUE(nice.lowered());
  EXPECT_EQ(NiceOf(Tid()), 10);
  EXPECT_EQ(NiceOf(other.tid()), 10);
  EXPECT_EQ(NiceOf(already_low.tid()), 15);  // only threads below the value are changed
  auto late = std::make_unique<Parked>();    // started while lowered: inherits 10
  EXPECT_EQ(NiceOf(late->tid()), 10);
  ASSERT_TRUE(nice.Restore().ok());
  EXPECT_EQ(NiceOf(late->tid()), start);  // gets the value of the thread that called Lower
  EXPECT_FALSE(nice.lowered());
  EXPECT_EQ(NiceOf(Tid()), start);
  EXPECT_EQ(NiceOf(other.tid()), start);
  EXPECT_EQ(NiceOf(already_low.tid()), 15);
  EXPECT_TRUE(nice.Restore().ok());  // idempotent
}

}  // namespace
}  // namespace ringstore
