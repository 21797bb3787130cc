#include "dht/status.h"

namespace ringstore {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NotFound";
    case Code::kCorruption: return "Corruption";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kIOError: return "IOError";
    case Code::kUnavailable: return "Unavailable";
    case Code::kTimeout: return "Timeout";
    case Code::kBusy: return "Busy";
    case Code::kProtocolError: return "ProtocolError";
    case Code::kRefused: return "Refused";
    case Code::kShuttingDown: return "ShuttingDown";
    case Code::kTooLarge: return "TooLarge";
    case Code::kNotMine: return "NotMine";
    case Code::kPermissionDenied: return "PermissionDenied";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(code_);
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

}  // namespace ringstore
