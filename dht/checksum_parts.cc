#include "dht/checksum.h"

// Apart from checksum.cc because it uses libxxhash's streaming state, whose dispatching update
// (xxh_x86dispatch.h) cannot be included next to checksum.cc's XXH_INLINE_ALL copy.
#define XXH_STATIC_LINKING_ONLY  // the state on the stack (header and library come from one package)
#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>  // XXH3_64bits_update picks AVX2 or AVX-512 at run time
#endif

namespace ringstore {

uint64_t Checksum64Parts(std::initializer_list<std::string_view> parts, uint64_t seed) {
  size_t nonempty = 0;
  std::string_view only;
  for (std::string_view p : parts) {
    if (p.empty()) continue;
    ++nonempty;
    only = p;
  }
  if (nonempty <= 1) return Checksum64(only, seed);
  XXH3_state_t state;
  // XXH3's streaming form gives the one-shot result for the concatenated input.
  XXH3_64bits_reset_withSeed(&state, seed);
  for (std::string_view p : parts) XXH3_64bits_update(&state, p.data(), p.size());
  return XXH3_64bits_digest(&state);
}

}  // namespace ringstore
