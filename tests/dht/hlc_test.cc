#include "dht/hlc.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"

namespace ringstore {
namespace {

TEST(HlcTest, FollowsWallClockWhenItMovesForward) {
  testing::FakeClock clock;
  clock.SetWallMicros(5'000'000);
  HlcClock hlc(clock);
  EXPECT_EQ(hlc.Now(), MakeTimestamp(5000, 0));
  clock.SetWallMicros(6'000'000);
  EXPECT_EQ(hlc.Now(), MakeTimestamp(6000, 0));
}

TEST(HlcTest, StaysMonotonicWhenTheWallClockStepsBackwards) {
  testing::FakeClock clock;
  clock.SetWallMicros(10'000'000);
  HlcClock hlc(clock);
  Timestamp prev = hlc.Now();
  // The wall clock jumps back an hour and then crawls forward: every timestamp still grows.
  clock.SetWallMicros(10'000'000 - 3'600'000'000LL);
  for (int i = 0; i < 100000; ++i) {
    if (i % 1000 == 0) clock.SetWallMicros(clock.WallMicros() + 1000);
    const Timestamp t = hlc.Now();
    ASSERT_GT(t, prev) << "at step " << i;
    prev = t;
  }
  // The logical counter (16 bits) overflowed more than once and carried into the ms field.
  EXPECT_GT(TimestampWallMs(prev), 10'000u);
}

TEST(HlcTest, ObservedRemoteTimestampsAreExceeded) {
  testing::FakeClock clock;
  clock.SetWallMicros(1'000'000);
  HlcClock hlc(clock);
  const Timestamp remote = MakeTimestamp(9'999, 7);
  hlc.Observe(remote);
  EXPECT_GT(hlc.Now(), remote);
  // An older remote timestamp does not pull the clock back.
  hlc.Observe(MakeTimestamp(1, 0));
  EXPECT_GT(hlc.Now(), remote);
}

TEST(HlcTest, NegativeWallTimeIsClampedToZero) {
  testing::FakeClock clock;
  clock.SetWallMicros(-5);
  HlcClock hlc(clock);
  EXPECT_EQ(hlc.Now(), MakeTimestamp(0, 1));
}

}  // namespace
}  // namespace ringstore
