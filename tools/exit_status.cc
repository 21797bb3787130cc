#include "tools/exit_status.h"

#include <iostream>

namespace ringstore {

int FailCatalog(const std::string& what, const Status& s) {
  std::cerr << "ringstore: " << what << ": " << (s.message().empty() ? s.ToString() : s.message()) << "\n";
  if (s.IsNotFound()) return kExitNotFound;
  return s.code() == Code::kInvalidArgument ? kExitUsage : kExitError;
}

}  // namespace ringstore
