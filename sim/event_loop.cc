#include "sim/event_loop.h"

#include <algorithm>
#include <cmath>

namespace ringstore::sim {

uint64_t EventLoop::At(Time at, std::function<void()> fn) {
  if (at < now_) at = now_;
  const uint64_t id = next_seq_++;
  queue_.push_back(Event{at, id, std::move(fn)});
  std::push_heap(queue_.begin(), queue_.end(), Later);
  if (settled_.size() <= id) settled_.resize(std::max<size_t>(id + 1, settled_.size() * 2));
  return id;
}

void EventLoop::Cancel(uint64_t id) {
  if (id == 0 || id >= next_seq_ || settled_[id]) return;
  settled_[id] = true;
  ++cancelled_queued_;
}

void EventLoop::SkipCancelled() {
  while (cancelled_queued_ > 0 && !queue_.empty() && settled_[queue_.front().id]) {
    std::pop_heap(queue_.begin(), queue_.end(), Later);
    queue_.pop_back();
    --cancelled_queued_;
  }
}

bool EventLoop::RunOne() {
  SkipCancelled();
  if (queue_.empty()) return false;
  std::pop_heap(queue_.begin(), queue_.end(), Later);
  Event e = std::move(queue_.back());
  queue_.pop_back();
  now_ = e.at;
  settled_[e.id] = true;
  ++events_run_;
  e.fn();
  return true;
}

void EventLoop::RunUntil(Time t) {
  for (SkipCancelled(); !queue_.empty() && queue_.front().at <= t; SkipCancelled()) RunOne();
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
  const uint64_t id = loop_.next_id();
  loop_.After(real, [this, id, fn = std::move(fn)] {
    timers_.erase(id);
    fn();
  });
  timers_.insert(id);
  return id;
}

void SimClock::Cancel(TimerId id) {
  if (timers_.erase(id) != 0) loop_.Cancel(id);
}

}  // namespace ringstore::sim
