#include "node/runtime/asio_clock.h"

#include <chrono>
#include <random>

namespace ringstore {

AsioClock::~AsioClock() {
  for (auto& [id, timer] : timers_) timer->cancel();
}

Clock::Duration AsioClock::Now() const {
  return std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch());
}

int64_t AsioClock::WallMicros() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Clock::TimerId AsioClock::Schedule(Duration delay, std::function<void()> fn) {
  const TimerId id = next_id_++;
  auto timer = std::make_unique<boost::asio::steady_timer>(io_, delay);
  timer->async_wait([this, id, fn = std::move(fn)](const boost::system::error_code& ec) {
    // Cancel() erases the id. That is the test, not ec: a timer that had already expired when
    // it was cancelled still runs its handler, with success (its owner may be gone by then).
    if (ec) return;  // cancelled (and the clock itself may be gone)
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    timers_.erase(it);
    fn();
  });
  timers_.emplace(id, std::move(timer));
  return id;
}

void AsioClock::Cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  it->second->cancel();
  timers_.erase(it);
}

uint64_t OsRandomSeed() {
  std::random_device rd;  // /dev/urandom on Linux
  return (static_cast<uint64_t>(rd()) << 32) | rd();
}

}  // namespace ringstore
