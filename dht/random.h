// Random: the only way logic code reaches randomness, so that a seed replays a run.
// SeededRandom is a deterministic xoshiro256** generator; runtime seeds it from the OS.
// Thread-safety: not thread-safe; one instance per strand.
#pragma once

#include <cstdint>

namespace ringstore {

class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t Next() = 0;
  // Uniform in [0, bound); bound > 0.
  uint64_t Uniform(uint64_t bound);
  // Uniform in [0, 1).
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
};

class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed);
  uint64_t Next() override;

 private:
  uint64_t s_[4];
};

}  // namespace ringstore
