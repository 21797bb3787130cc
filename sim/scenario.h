// Scenario: one simulated run. It builds a ring of SimNodes, lets it form, runs the workload
// while the fault injector breaks things, then stops the faults (heals every link, restarts
// every crashed node), waits for the membership to settle, reads every key back and runs the
// checkers. One seed gives one run, event for event: the report carries the trace hash.
// Thread-safety: single-threaded; a run owns everything it creates.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "sim/checker.h"
#include "sim/workload.h"

namespace ringstore::sim {

// The fault kinds --faults accepts.
const std::vector<std::string>& FaultKinds();

struct SimOptions {
  uint32_t nodes = 5;
  uint32_t clients = 4;
  uint32_t keys = 64;
  uint64_t seed = 1;
  double duration_s = 30;        // virtual seconds of workload under faults
  double settle_limit_s = 30;    // the longest the membership may take to settle afterwards
  double converge_limit_s = 60;  // then, the longest anti-entropy may take to bring replicas together (G2, G5)
  double replace_after_s = 6;    // a node down this long is replaced (membership replace_after)
  // Tombstones older than this are collected once every replica has them. Must exceed
  // replace_after_s: a replaced node that returns may otherwise bring a deleted value back.
  double tombstone_grace_s = 10;
  // Virtual seconds to run on after convergence, before the final reads: long enough and
  // tombstones pass their grace and are collected, and the reads check none came back.
  double linger_s = 0;
  double repair_interval_s = 2;  // between anti-entropy rounds on each node
  std::set<std::string> faults;  // from FaultKinds()
  Quorum quorum;
  // The nodes' --replicas, the N of records that carry none; 0: quorum.n. Every write here
  // carries the clients' N (RecordMeta::replicas), which repair must keep instead.
  uint32_t node_replicas = 0;
  // Writes in the first early_s seconds of the workload stamp N=early_stamp_n (0: none), so
  // keys are rewritten with another N later.
  uint32_t early_stamp_n = 0;
  double early_s = 0;
  uint32_t fallbacks = 3;        // nodes a client tries past N when replicas fail (sloppy quorum)
  uint32_t vnodes = 16;
  // A planted bug, to prove the checkers catch it: the disk acknowledges writes at once and
  // makes them durable a second later, so a crash loses acknowledged writes.
  bool bug_lying_disk = false;
  // Another: the nodes run no repair (anti-entropy, handoff of moved ranges, scrub), so G2
  // and G5 can fail.
  bool bug_no_repair = false;
  // Fail the run when more workload reads than this missed an earlier acknowledged write
  // (CountMissedReads); -1: count them only.
  int64_t max_missed_reads = -1;
};

struct SimReport {
  uint64_t ops = 0, acked = 0, unknown = 0, reads = 0;
  uint64_t lost = 0;             // G1 findings
  uint64_t resurrected = 0;      // G4 findings
  uint64_t stale_reads = 0;      // G3 findings (quiet phase)
  uint64_t missed_reads = 0;     // workload reads older than an earlier acknowledged write
  int64_t max_missed_reads = -1; // the run's bound on them (-1: none; see CountMissedReads)
  uint64_t divergent_keys = 0;   // G2: keys whose N replicas differ
  uint64_t unrepaired = 0;       // G5: corrupted records still corrupt
  uint64_t tombstones_collected = 0;
  // After convergence: copies of keys held by up nodes outside the placement of the key's
  // newest version, by that version's N (not a finding: with faults, a handoff may still be
  // under way).
  uint64_t extra_copies = 0;
  uint64_t faults_injected = 0;
  double settle_s = -1;          // membership convergence after the heal; -1: never
  double converge_s = -1;        // replica convergence (G2, G5) after settling; -1: not within the limit
  uint64_t messages = 0;
  uint64_t events = 0;
  double virtual_s = 0, wall_s = 0;
  uint64_t trace_hash = 0;
  std::vector<Finding> findings;
  std::vector<std::string> fault_log;
  std::vector<HistoryOp> history;
  // Whether every check passed: G1 to G5 and settling.
  bool ok() const {
    return lost == 0 && resurrected == 0 && stale_reads == 0 && settle_s >= 0 && divergent_keys == 0 && unrepaired == 0 &&
           (max_missed_reads < 0 || missed_reads <= static_cast<uint64_t>(max_missed_reads));
  }
};

SimReport RunScenario(const SimOptions& options);

}  // namespace ringstore::sim
