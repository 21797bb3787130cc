// AntiEntropy::PeerRun: one peer's comparison and pull in a round (node-internal, shared by
// anti_entropy.cc and anti_entropy_pull.cc). Owned by shared_ptr through the run's callbacks;
// strand-confined like AntiEntropy.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "node/anti_entropy.h"

namespace ringstore {

// One peer's pull in this round.
struct AntiEntropy::PeerRun {
  uint64_t round = 0;                // the round it belongs to; 0 once done
  std::string node_id;
  std::string address;
  uint32_t level = 0;
  std::vector<uint32_t> indices;     // tree nodes at `level` still to ask about
  std::vector<uint32_t> next;        // the differing children found so far (level + 1)
  std::vector<uint32_t> leaves;      // differing leaves still to list
  std::map<uint32_t, ObjectId> resume;  // of those, leaves compared in part: where the rest begins
  std::vector<uint32_t> differing;   // every differing leaf (sorted), for tombstone collection
  std::deque<KeyVersion> pulls;      // records to copy in from the peer
  size_t pulls_in_flight = 0;
  std::vector<WriteOp> batch;        // pulled records not stored yet
  uint64_t batch_bytes = 0;
  size_t storing = 0;                // store writes of pulled records in flight
  size_t leaves_in_flight = 0;       // listed leaves being compared with ours
  bool asking = false;               // a SYNC_TREE or SYNC_KEYS request is out
  bool listing_all = false;          // every leaf listed, without the peer's digest (ListAll)
  bool listed = false;               // a SYNC_KEYS reply was taken (its leaves compared, pulls queued)
  Clock::Duration started{};
  uint64_t pulled = 0;               // records stored
  bool failed = false;
  std::string why;
};

}  // namespace ringstore
