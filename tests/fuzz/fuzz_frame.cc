// libFuzzer target: the frame decoder (dht/frame.h) on arbitrary bytes, fed in two pieces
// (the first input byte picks the split), with every decoded frame taken out.
#include <cstddef>
#include <cstdint>

#include "dht/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t split = data[0] % size;
  const char* p = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  ringstore::FrameDecoder decoder;
  decoder.set_max_body_bytes(1 << 20);
  const size_t first = split < n ? split : n;
  for (auto [at, len] : {std::pair<size_t, size_t>{0, first}, {first, n - first}}) {
    if (!decoder.Feed(p + at, len).ok()) break;
    while (decoder.HasFrame()) (void)decoder.Next();
  }
  return 0;
}
