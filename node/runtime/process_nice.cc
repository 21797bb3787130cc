#include "node/runtime/process_nice.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

namespace ringstore {

namespace {

// The nice value of thread tid, or nullopt (getpriority may return -1 as a value).
std::optional<int> NiceOf(pid_t tid) {
  errno = 0;
  const int v = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  if (v == -1 && errno != 0) return std::nullopt;
  return v;
}

// Whether this process may set a thread's nice value back down to to.
bool MayRaiseTo(int to) {
  if (geteuid() == 0) return true;
  rlimit lim{};
  if (getrlimit(RLIMIT_NICE, &lim) != 0) return false;
  // RLIMIT_NICE is 20 - the lowest nice value allowed.
  return lim.rlim_cur == RLIM_INFINITY || to >= 20 - static_cast<int>(lim.rlim_cur);
}

}  // namespace

Status ProcessNice::Lower(int nice) {
  if (lowered()) return Status::Ok();
  std::error_code ec;
  std::vector<pid_t> tids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    tids.push_back(static_cast<pid_t>(std::stol(entry.path().filename().string())));
  }
  if (ec) return Status::IOError("cannot list /proc/self/task: " + ec.message());
  for (pid_t tid : tids) {
    auto now = NiceOf(tid);
    if (!now || *now >= nice) continue;
    if (!MayRaiseTo(*now)) {
      static_cast<void>(Restore());  // what was set so far; best effort, as the refusal says
      return Status::Refused("could not be undone: putting a nice value back needs root (CAP_SYS_NICE) "
                                        "or an RLIMIT_NICE that allows " + std::to_string(*now));
    }
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0) continue;  // the thread may have ended
    saved_.emplace_back(tid, *now);
  }
  return Status::Ok();
}

Status ProcessNice::Restore() {
  Status result = Status::Ok();
  for (const auto& [tid, nice] : saved_) {
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0 && errno != ESRCH && result.ok()) {
      result = Status::IOError("setpriority: " + std::string(std::strerror(errno)));
    }
  }
  saved_.clear();
  return result;
}

}  // namespace ringstore
