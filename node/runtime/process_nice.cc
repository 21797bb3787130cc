#include "node/runtime/process_nice.h"

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
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

// The threads of this process.
Result<std::vector<pid_t>> Threads() {
  std::error_code ec;
  std::vector<pid_t> tids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    tids.push_back(static_cast<pid_t>(std::stol(entry.path().filename().string())));
  }
  if (ec) return Status::IOError("cannot list /proc/self/task: " + ec.message());
  return tids;
}

// Whether the process holds CAP_SYS_NICE (root in a container may not).
bool HasCapSysNice() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_TO_INDEX(CAP_SYS_NICE)].effective & CAP_TO_MASK(CAP_SYS_NICE)) != 0;
}

// Whether this process may set a thread's nice value back down to `to` (cap: it holds
// CAP_SYS_NICE).
bool MayRaiseTo(bool cap, int to) {
  if (cap) return true;
  rlimit lim{};
  if (getrlimit(RLIMIT_NICE, &lim) != 0) return false;
  // RLIMIT_NICE is 20 - the lowest nice value allowed.
  return lim.rlim_cur == RLIM_INFINITY || to >= 20 - static_cast<int>(lim.rlim_cur);
}

}  // namespace

Status ProcessNice::Lower(int nice) {
  if (lowered()) return Status::Ok();
  auto tids = Threads();
  if (!tids.ok()) return tids.status();
  const auto mine = NiceOf(static_cast<pid_t>(syscall(SYS_gettid)));
  const bool cap = HasCapSysNice();
  for (pid_t tid : *tids) {
    auto now = NiceOf(tid);
    if (!now || *now >= nice) continue;
    if (!MayRaiseTo(cap, *now)) {
      static_cast<void>(Restore());  // what was set so far
      return Status::Refused("could not be undone: putting a nice value back needs CAP_SYS_NICE (root) "
                             "or an RLIMIT_NICE that allows " + std::to_string(*now));
    }
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0) continue;  // the thread may have ended
    saved_.emplace_back(tid, *now);
  }
  nice_ = nice;
  base_ = mine.value_or(0);
  return Status::Ok();
}

Status ProcessNice::Restore() {
  if (!lowered()) return Status::Ok();
  Status result = Status::Ok();
  auto set = [&](pid_t tid, int nice) {
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0 && errno != ESRCH && result.ok()) {
      result = Status::IOError("setpriority: " + std::string(std::strerror(errno)));
    }
  };
  for (const auto& [tid, nice] : saved_) set(tid, nice);
  // Threads started meanwhile inherited the lowered value from their creator: they get the
  // value of the thread that called Lower.
  if (auto tids = Threads(); tids.ok()) {
    for (pid_t tid : *tids) {
      const bool known = std::any_of(saved_.begin(), saved_.end(), [&](const auto& s) { return s.first == tid; });
      if (!known && NiceOf(tid) == nice_) set(tid, base_);
    }
  }
  saved_.clear();
  return result;
}

}  // namespace ringstore
