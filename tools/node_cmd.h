// `ringstore node verify|decommission` and the repair part of `ringstore status`.
//  - verify lists every member's records (SCAN) and checks each object against its placement:
//    N copies of the newest version on its N placement nodes. It prints the under-replicated,
//    stale and misplaced copies; the exit status says whether every object is whole.
//  - decommission asks a node to leave (DECOMMISSION) and follows its handoff (NODE_STATUS)
//    until it has left.
// Thread-safety: single-threaded.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tools/session.h"

namespace CLI {
class App;
}  // namespace CLI

namespace ringstore {

struct NodeArgs {
  std::string node;          // decommission: a node id (or its first digits) or an address
  uint32_t replicas = 3;     // verify: N
  bool no_wait = false;      // decommission: ask, and do not follow
  double poll_s = 1.0;
  CLI::App* verify = nullptr;
  CLI::App* decommission = nullptr;
  bool run_verify = false;   // which one was given (set by the caller after parsing)
};

// Defined in tools/ringstore_main.cc, the one file that includes CLI11 (a slow header).
CLI::App* AddNodeCommands(CLI::App& app, NodeArgs& args);

// session.client(0) is connected to a member. Returns a process exit status.
int RunNode(Session& session, const NodeArgs& args);

// Asks each reachable member in the table for its repair work and prints one line per node
// and a summary (under-replicated objects, data still to move, rate, ETA).
void PrintRepairStatus(Session& session, const std::vector<std::pair<std::string, std::string>>& members);

}  // namespace ringstore
