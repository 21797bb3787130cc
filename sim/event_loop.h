// EventLoop: the simulator's virtual time. Events run in (time, sequence) order and time
// jumps to the next event, so a run is a pure function of its seed. SimClock is a node's view
// of that time, with its own wall-clock offset and drift (for the HLC), and it cancels its
// timers when it is destroyed (a crashed node's timers never fire).
// Thread-safety: single-threaded; everything in a simulation runs on the caller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dht/clock.h"

namespace ringstore::sim {

using Time = Clock::Duration;  // virtual nanoseconds since the start of the run

class EventLoop {
 public:
  Time now() const { return now_; }
  // Runs fn at time at (not before now). Returns an id for Cancel.
  uint64_t At(Time at, std::function<void()> fn);
  uint64_t After(Time delay, std::function<void()> fn) { return At(now_ + delay, std::move(fn)); }
  void Cancel(uint64_t id);
  // The id the next At() returns.
  uint64_t next_id() const { return next_seq_; }
  // Runs the next event; false when there is none.
  bool RunOne();
  // Runs every event due by t, then sets the time to t.
  void RunUntil(Time t);
  size_t pending() const { return queue_.size() - cancelled_queued_; }
  uint64_t events_run() const { return events_run_; }

 private:
  struct Event {
    Time at;
    uint64_t id;  // the sequence number: ties on time run in scheduling order
    std::function<void()> fn;
  };
  // The heap's order: the earliest (time, id) on top.
  static bool Later(const Event& a, const Event& b) { return a.at != b.at ? a.at > b.at : a.id > b.id; }
  // Pops cancelled events off the top, so that the top is the next event to run.
  void SkipCancelled();

  Time now_{0};
  uint64_t next_seq_ = 1;
  uint64_t events_run_ = 0;
  std::vector<Event> queue_;    // a binary heap (std::push_heap with Later)
  std::vector<bool> settled_;   // by id: run or cancelled (a cancelled event stays queued until it surfaces)
  size_t cancelled_queued_ = 0;  // cancelled events still in queue_
};

class SimClock final : public Clock {
 public:
  // wall_base_us: the wall clock at virtual time 0.
  SimClock(EventLoop& loop, int64_t wall_base_us) : loop_(loop), wall_base_us_(wall_base_us) {}
  ~SimClock() override;
  SimClock(const SimClock&) = delete;
  SimClock& operator=(const SimClock&) = delete;

  Duration Now() const override;
  int64_t WallMicros() const override;
  TimerId Schedule(Duration delay, std::function<void()> fn) override;
  void Cancel(TimerId id) override;

  // Skew: the wall clock reads offset_us ahead of true time, and runs drift_ppm fast.
  // Changing the drift never moves Now() backwards.
  void SetSkew(int64_t offset_us, double drift_ppm);

 private:
  EventLoop& loop_;
  const int64_t wall_base_us_;
  int64_t offset_us_ = 0;
  double drift_ppm_ = 0;
  Time anchor_loop_{0};      // loop time when the drift last changed
  Duration anchor_mono_{0};  // Now() at that moment
  std::unordered_set<uint64_t> timers_;  // iterated only to cancel
};

}  // namespace ringstore::sim
