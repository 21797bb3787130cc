// Checksums used on the wire and on disk: XXH3-64 (fast, well-distributed, not cryptographic).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringstore {

uint64_t Checksum64(const void* data, size_t len, uint64_t seed = 0);
inline uint64_t Checksum64(std::string_view s, uint64_t seed = 0) {
  return Checksum64(s.data(), s.size(), seed);
}

}  // namespace ringstore
