#include "dht/checksum.h"

// Compiled into this file rather than called through libxxhash.so: the hot paths hash every
// value two or three times, and the inlined code (same algorithm, same results) saves the
// PLT call and lets the compiler specialise it.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ringstore {

uint64_t Checksum64(const void* data, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

}  // namespace ringstore
