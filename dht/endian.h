// Little-endian fixed-width fields, for the wire frame and the on-disk record header.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

namespace ringstore {

// Writes the low n bytes of v, least significant first.
inline void PutLE(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

// Reads n bytes, least significant first.
inline uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace ringstore
