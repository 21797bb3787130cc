// AsioClock: the real Clock, over std::chrono and Boost.Asio steady timers.
// Timer callbacks run on the io_context; the clock must outlive its pending timers' owner.
// Thread-safety: use from the io_context's single thread only.
#pragma once

#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <unordered_map>

#include "dht/clock.h"

namespace ringstore {

class AsioClock final : public Clock {
 public:
  explicit AsioClock(boost::asio::io_context& io) : io_(io) {}
  ~AsioClock() override;

  Duration Now() const override;
  int64_t WallMicros() const override;
  TimerId Schedule(Duration delay, std::function<void()> fn) override;
  void Cancel(TimerId id) override;

 private:
  boost::asio::io_context& io_;
  TimerId next_id_ = 1;
  std::unordered_map<TimerId, std::unique_ptr<boost::asio::steady_timer>> timers_;
};

// A seed from the OS for SeededRandom.
uint64_t OsRandomSeed();

}  // namespace ringstore
