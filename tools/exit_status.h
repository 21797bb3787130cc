// The exit statuses of the `ringstore` command, one table for every subcommand (README,
// docs/building.md): 0 success, 1 not found (or, for `node verify`, incomplete), 2 usage
// error, 3 cluster unreachable, 4 any other error. Stateless; thread-safe.
#pragma once

#include <string>

#include "dht/status.h"

namespace ringstore {

inline constexpr int kExitOk = 0;
inline constexpr int kExitNotFound = 1;
inline constexpr int kExitIncomplete = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitError = 4;

// For catalog commands (fs, volume): prints "ringstore: WHAT: MESSAGE" on stderr and returns
// 1 for not found, 2 for invalid input, else 4.
int FailCatalog(const std::string& what, const Status& s);

}  // namespace ringstore
