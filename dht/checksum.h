// Checksums used on the wire and on disk: XXH3-64 (fast, well-distributed, not cryptographic).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace ringstore {

uint64_t Checksum64(const void* data, size_t len, uint64_t seed = 0);
inline uint64_t Checksum64(std::string_view s, uint64_t seed = 0) {
  return Checksum64(s.data(), s.size(), seed);
}
// Checksum64 of the parts' bytes one after another, without joining them (a frame sent from
// several buffers).
uint64_t Checksum64Parts(std::initializer_list<std::string_view> parts, uint64_t seed);

}  // namespace ringstore
