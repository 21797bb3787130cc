// ProcessNice: lowers the CPU priority (raises the nice value) of every thread of this process
// for a while, then puts it back. ringstore-node runs at --fill-nice while it catches up with
// its peers after it starts (docs/repair.md §8): a joining node's intake of data is background
// work, and on a machine it shares with other nodes its CPU would otherwise delay their reads.
// Linux keeps a nice value per thread, so Lower sets each thread in /proc/self/task; threads
// started afterwards inherit their creator's lowered value, and Restore gives them the value
// of the thread that called Lower. Putting a nice value back down needs CAP_SYS_NICE (root,
// unless a container took it away) or an RLIMIT_NICE that allows it, so Lower refuses, and
// changes nothing, when Restore could not undo it. (A thread id reused by another process
// between Lower and Restore would get a nice value it never had: ids are not reused while
// the threads live, and the node's threads live as long as the process.)
// Thread-safety: not thread-safe; one owner (node_main) calls Lower and Restore.
#pragma once

#include <sys/types.h>

#include <utility>
#include <vector>

#include "dht/status.h"

namespace ringstore {

class ProcessNice {
 public:
  // Sets every thread's nice value to nice (only threads now below it). Refused when
  // the change could not be undone; IOError when /proc/self/task cannot be read.
  Status Lower(int nice);
  // Puts back the values Lower replaced. Idempotent.
  Status Restore();
  bool lowered() const { return !saved_.empty(); }

 private:
  std::vector<std::pair<pid_t, int>> saved_;  // thread id, nice before Lower
  int nice_ = 0;  // the value Lower set
  int base_ = 0;  // the value of the thread that called Lower
};

}  // namespace ringstore
