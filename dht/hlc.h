// Hybrid logical clock (Kulkarni et al.): timestamps that follow wall time but never go
// backwards, even when the wall clock steps back, and that order causally related events.
// A Timestamp packs 48 bits of wall milliseconds and a 16-bit logical counter into a uint64,
// so plain integer comparison is timestamp order. 0 means "no timestamp".
// Thread-safety: HlcClock is used from its owner's strand only.
#pragma once

#include <cstdint>
#include <string>

#include "dht/clock.h"

namespace ringstore {

using Timestamp = uint64_t;

constexpr Timestamp MakeTimestamp(uint64_t wall_ms, uint64_t logical) {
  return (wall_ms << 16) | (logical & 0xffff);
}
constexpr uint64_t TimestampWallMs(Timestamp t) { return t >> 16; }
// Whether a record stamped ts is older than grace_ms at the wall-clock time now_ms (a grace
// of 0 or less: never). Used for the tombstone grace (docs/repair.md §5).
constexpr bool PastGrace(Timestamp ts, int64_t now_ms, int64_t grace_ms) {
  return grace_ms > 0 && now_ms - static_cast<int64_t>(TimestampWallMs(ts)) > grace_ms;
}
constexpr uint64_t TimestampLogical(Timestamp t) { return t & 0xffff; }
// "1732230000123.7" (wall ms . logical).
std::string TimestampToString(Timestamp t);

class HlcClock {
 public:
  explicit HlcClock(const Clock& clock) : clock_(clock) {}
  HlcClock(const HlcClock&) = delete;
  HlcClock& operator=(const HlcClock&) = delete;

  // A timestamp for a local event, strictly greater than every one issued or observed before.
  Timestamp Now();
  // Merges a timestamp received from a peer; later Now() values exceed it.
  void Observe(Timestamp remote);
  Timestamp last() const { return last_; }

 private:
  uint64_t WallMs() const;
  const Clock& clock_;
  Timestamp last_ = 0;
};

}  // namespace ringstore
