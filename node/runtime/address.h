// "host:port" parsing shared by the runtime and the programs ("[::1]:7400" for IPv6).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dht/status.h"

namespace ringstore {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

Result<HostPort> ParseHostPort(std::string_view address);

// "a:1,b:2" as addresses, each checked by ParseHostPort; empty items are skipped.
Result<std::vector<std::string>> SplitAddresses(std::string_view list);

}  // namespace ringstore
