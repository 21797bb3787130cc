#include "dht/checksum.h"

#include <xxhash.h>

namespace ringstore {

uint64_t Checksum64(const void* data, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

}  // namespace ringstore
