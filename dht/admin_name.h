// The rule for the names of admin objects (volumes, filesystems): 1 to 64 bytes of
// [A-Za-z0-9._-], not starting with '.' or '-', so a name is safe in paths, URIs and logs.
// Thread-safety: pure function.
#pragma once

#include <cctype>
#include <string>

#include "dht/status.h"

namespace ringstore {

constexpr size_t kMaxAdminNameBytes = 64;

// what: "volume", "filesystem", ... for the error message.
inline Status ValidateAdminName(const std::string& name, const std::string& what) {
  if (name.empty() || name.size() > kMaxAdminNameBytes) {
    return Status::InvalidArgument("a " + what + " name has 1 to 64 characters");
  }
  if (name[0] == '.' || name[0] == '-') {
    return Status::InvalidArgument("a " + what + " name may not start with '.' or '-'");
  }
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument("a " + what + " name uses only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

}  // namespace ringstore
