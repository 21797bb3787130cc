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
// Checksum64 of a's bytes followed by b's, without joining them (a frame sent as two buffers).
uint64_t Checksum64Pair(std::string_view a, std::string_view b, uint64_t seed);

}  // namespace ringstore
