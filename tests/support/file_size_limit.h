// FileSizeLimit: while it lives, no file this process writes can grow past `bytes`
// (RLIMIT_FSIZE), and SIGXFSZ is ignored, so a write past the limit fails with EFBIG instead
// of killing the test. Both are restored when it goes. For tests of writes that fail part way.
// Thread-safety: process-wide settings; one at a time, from the test's thread.
#pragma once

#include <sys/resource.h>

#include <csignal>
#include <cstdint>

namespace ringstore::testing {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    if (::sigaction(SIGXFSZ, &ignore, &old_action_) != 0 || ::getrlimit(RLIMIT_FSIZE, &old_limit_) != 0) return;
    rlimit limit = old_limit_;
    limit.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~FileSizeLimit() {
    if (ok_) ::setrlimit(RLIMIT_FSIZE, &old_limit_);
    ::sigaction(SIGXFSZ, &old_action_, nullptr);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  struct sigaction old_action_ {};
  rlimit old_limit_{};
  bool ok_ = false;
};

}  // namespace ringstore::testing
