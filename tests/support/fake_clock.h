// FakeClock: a Clock whose time moves only when the test says so. Wall time can be set to
// anything, including backwards. Timers fire in deadline order inside Advance().
// Thread-safety: single-threaded.
#pragma once

#include <map>
#include <utility>

#include "dht/clock.h"

namespace ringstore::testing {

class FakeClock final : public Clock {
 public:
  Duration Now() const override { return now_; }
  int64_t WallMicros() const override { return wall_us_; }
  TimerId Schedule(Duration delay, std::function<void()> fn) override {
    const TimerId id = next_id_++;
    timers_.emplace(std::make_pair(now_ + delay, id), std::move(fn));
    return id;
  }
  void Cancel(TimerId id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return;
      }
    }
  }

  void SetWallMicros(int64_t us) { wall_us_ = us; }
  // Moves monotonic and wall time forward by d, firing due timers in order.
  void Advance(Duration d) {
    const Duration end = now_ + d;
    while (!timers_.empty() && timers_.begin()->first.first <= end) {
      auto it = timers_.begin();
      const Duration at = it->first.first;
      wall_us_ += std::chrono::duration_cast<std::chrono::microseconds>(at - now_).count();
      now_ = at;
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    wall_us_ += std::chrono::duration_cast<std::chrono::microseconds>(end - now_).count();
    now_ = end;
  }
  size_t pending_timers() const { return timers_.size(); }

 private:
  Duration now_{std::chrono::seconds(1000)};
  int64_t wall_us_ = 1'700'000'000'000'000;
  TimerId next_id_ = 1;
  std::map<std::pair<Duration, TimerId>, std::function<void()>> timers_;
};

}  // namespace ringstore::testing
