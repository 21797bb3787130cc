// The checkers: what a run's history and final state must satisfy (DESIGN.md G1-G5).
//  - G1: every acknowledged write survives: a key's final record (read at R=N once the faults
//    have stopped and the cluster has settled) is at least as new as its newest acknowledged
//    put or delete, is that write (or another one sent with the same timestamp, acknowledged
//    or not, which won the last-writer-wins tie-break) when the timestamps are equal, and a
//    live final value was written by some put of the key (no phantom). Unknown outcomes may or may not land;
//    a record missing after a delete of unknown outcome is excused only if a node stored that
//    delete's tombstone (or a newer one).
//  - G4: no deleted key comes back: a live final value is newer than every acknowledged delete
//    of its key (reported apart from G1 so that a resurrection is named as one).
//  - G3: in the quiet phase (faults over, R+W>N), a read right after an acknowledged write
//    returns that write (checked by the scenario, which feeds its probes in).
//  - G2: the N replicas of every key hold the same record (timestamp and checksum).
//  - G5: a record corrupted on one replica is intact again by the end.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dht/record.h"
#include "sim/workload.h"

namespace ringstore::sim {

struct FinalRecord {
  bool read_ok = false;  // the quorum read succeeded
  bool exists = false;   // a record (value or tombstone) was found
  RecordMeta meta;
  std::string value;
  std::string error;
  // The newest timestamp of a tombstone of the key that any node's disk ever stored, the
  // ones since purged or overwritten included (0: none).
  Timestamp newest_tombstone_stored = 0;
};

struct Finding {
  std::string check;  // "G1", "G2", ...
  uint32_t key = 0;
  std::string what;
};

// G1 and G4 over the whole history; final[key] is the key's settled record.
std::vector<Finding> CheckAcknowledgedWrites(const std::vector<HistoryOp>& history,
                                             const std::map<uint32_t, FinalRecord>& final);

// Reads answered ok that returned an older record than a put or delete of their key that
// was acknowledged before the read began. Counted, not judged: under faults a sloppy quorum
// or a partition may hide the newest write from the R replicas a read reaches. A run that
// expects none (a regression seed) says so with --max-missed-reads.
uint64_t CountMissedReads(const std::vector<HistoryOp>& history);

// The events of one key, one line each, for a failure report or --trace.
std::vector<std::string> KeyHistory(const std::vector<HistoryOp>& history, uint32_t key, size_t last_n = 0);

}  // namespace ringstore::sim
