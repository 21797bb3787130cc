// "host:port" parsing shared by the runtime and the programs ("[::1]:7400" for IPv6).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dht/status.h"

namespace ringstore {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

Result<HostPort> ParseHostPort(std::string_view address);

}  // namespace ringstore
