// Flusher: the mount's age-based writeback. Its thread calls FsCore::FlushExpired every
// interval, so that the unwritten data of a file kept open (or whose flush at close failed)
// reaches the cluster within about expire + interval of its first write, as the kernel's
// dirty_expire_centisecs bounds it for local files. Without it such data waited for the
// file's close, an fsync, the dirty limit or the unmount, and a gateway crash lost all of it.
//
// The interval is a quarter of expire, at most 1 s and at least 10 ms. Each round that tried
// to flush a file is reported through on_round (from the flusher's thread), failed or not;
// a round ends at its first failed flush, and that file is tried again after a back-off
// (FsCore::FlushExpired).
// Ownership: borrows the FsCore, which must outlive the Flusher. Stop (or the destructor)
// joins the thread, after at most the one flush under way (FlushExpired ends its round at the
// stop); FsCore::FlushAll at unmount writes what is left.
// Thread-safety: Start and Stop from one thread; on_round runs on the flusher's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

class Flusher {
 public:
  Flusher(FsCore& core, std::chrono::milliseconds expire, std::function<void(const FsCore::Expired&)> on_round);
  ~Flusher();
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  void Start();
  void Stop();
  std::chrono::milliseconds interval() const { return interval_; }

 private:
  void Run();

  FsCore& core_;
  const std::chrono::milliseconds expire_;
  const std::chrono::milliseconds interval_;
  std::function<void(const FsCore::Expired&)> on_round_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};  // set under mu_; FlushExpired reads it between files
  std::thread thread_;
};

}  // namespace ringstore::fs
