// Clock: the only way logic code reaches time. Monotonic time, wall time (for the HLC) and timers.
// Implementations: runtime/asio_clock (real), tests' FakeClock, sim's virtual clock.
// Thread-safety: an implementation is used from its owner's strand only; timer callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace ringstore {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimerId = uint64_t;

  virtual ~Clock() = default;
  // Monotonic time since an arbitrary epoch; never goes backwards.
  virtual Duration Now() const = 0;
  // Wall-clock microseconds since the Unix epoch; may step backwards.
  virtual int64_t WallMicros() const = 0;
  // Runs fn once after delay on the owner's strand. Returns an id for Cancel.
  virtual TimerId Schedule(Duration delay, std::function<void()> fn) = 0;
  // Cancelling a fired or unknown timer is a no-op.
  virtual void Cancel(TimerId id) = 0;
};

}  // namespace ringstore
