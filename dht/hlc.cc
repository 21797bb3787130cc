#include "dht/hlc.h"

#include <algorithm>
#include <cassert>

namespace ringstore {

std::string TimestampToString(Timestamp t) {
  return std::to_string(TimestampWallMs(t)) + "." + std::to_string(TimestampLogical(t));
}

uint64_t HlcClock::WallMs() const {
  const int64_t us = clock_.WallMicros();
  return us <= 0 ? 0 : static_cast<uint64_t>(us) / 1000;
}

Timestamp HlcClock::Now() {
  const Timestamp wall = MakeTimestamp(WallMs(), 0);
  // When the wall clock is ahead, jump to it; otherwise tick the logical part. A logical
  // overflow carries into the millisecond field, which keeps the order strict.
  assert(last_ != UINT64_MAX);  // writes stamped far in the future are refused upstream
  last_ = std::max(wall, last_ + 1);
  return last_;
}

void HlcClock::Observe(Timestamp remote) { last_ = std::max(last_, remote); }

}  // namespace ringstore
