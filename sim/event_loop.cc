#include "sim/event_loop.h"

#include <cmath>
#include <memory>

namespace ringstore::sim {

uint64_t EventLoop::At(Time at, std::function<void()> fn) {
  if (at < now_) at = now_;
  const uint64_t id = next_seq_++;
  queue_.emplace(std::make_pair(at, id), std::move(fn));
  when_.emplace(id, at);
  return id;
}

void EventLoop::Cancel(uint64_t id) {
  auto it = when_.find(id);
  if (it == when_.end()) return;
  queue_.erase(std::make_pair(it->second, id));
  when_.erase(it);
}

bool EventLoop::RunOne() {
  if (queue_.empty()) return false;
  auto it = queue_.begin();
  now_ = it->first.first;
  when_.erase(it->first.second);
  auto fn = std::move(it->second);
  queue_.erase(it);
  ++events_run_;
  fn();
  return true;
}

void EventLoop::RunUntil(Time t) {
  while (!queue_.empty() && queue_.begin()->first.first <= t) RunOne();
  if (t > now_) now_ = t;
}

SimClock::~SimClock() {
  for (uint64_t id : timers_) loop_.Cancel(id);
}

Clock::Duration SimClock::Now() const {
  // Monotonic; drift changes its rate, never its direction.
  const double rate = 1.0 + drift_ppm_ * 1e-6;
  return anchor_mono_ + Duration(static_cast<int64_t>(static_cast<double>((loop_.now() - anchor_loop_).count()) * rate));
}

void SimClock::SetSkew(int64_t offset_us, double drift_ppm) {
  anchor_mono_ = Now();
  anchor_loop_ = loop_.now();
  offset_us_ = offset_us;
  drift_ppm_ = drift_ppm;
}

int64_t SimClock::WallMicros() const {
  return wall_base_us_ + offset_us_ + std::chrono::duration_cast<std::chrono::microseconds>(Now()).count();
}

Clock::TimerId SimClock::Schedule(Duration delay, std::function<void()> fn) {
  const double rate = 1.0 + drift_ppm_ * 1e-6;
  const Time real(static_cast<int64_t>(std::ceil(static_cast<double>(delay.count()) / rate)));
  auto holder = std::make_shared<uint64_t>(0);
  const uint64_t id = loop_.After(real, [this, holder, fn = std::move(fn)] {
    timers_.erase(*holder);
    fn();
  });
  *holder = id;
  timers_.insert(id);
  return id;
}

void SimClock::Cancel(TimerId id) {
  if (timers_.erase(id) != 0) loop_.Cancel(id);
}

}  // namespace ringstore::sim
