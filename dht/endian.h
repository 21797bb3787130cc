// Fixed-width integer fields: little-endian for the wire frame and the on-disk record header,
// big-endian for NBD.
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

// Big-endian (network order) forms, for protocols that use it (NBD).
inline void PutBE(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<char>(v >> (8 * (n - 1 - i)));
}
inline uint64_t GetBE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace ringstore
