#include "fsgateway/flusher.h"

#include <algorithm>

namespace ringstore::fs {

Flusher::Flusher(FsCore& core, std::chrono::milliseconds expire, std::function<void(const FsCore::Expired&)> on_round)
    : core_(core),
      expire_(expire),
      interval_(std::clamp(expire / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000))),
      on_round_(std::move(on_round)) {}

Flusher::~Flusher() { Stop(); }

void Flusher::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void Flusher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Flusher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_.load(); })) {
    lock.unlock();
    const FsCore::Expired round = core_.FlushExpired(expire_, &stopping_);
    if (round.flushed > 0 && on_round_) on_round_(round);
    lock.lock();
  }
}

}  // namespace ringstore::fs
