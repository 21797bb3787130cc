// PlacementHistory: the rings under which this node last compared its records with every
// peer, and when. Anti-entropy's handoff asks it whether a record the node no longer owns
// was one of its own, under a ring it was in step with, recently: such a copy was kept at
// the newest version with its replicas until then, so no tombstone of its key can have been
// collected since (collection waits out the grace), and its new owner may take it however
// old its version is. A copy that was never placed here (a fallback's), or that has not been
// compared for longer than that (a node back from a long absence), may have outlived a
// collected delete (docs/repair.md §5).
//
// Entries are keyed by the ring digest (RouteTable::RingDigest) and hold that table and the
// wall time (ms) of the start of the last round under it that reached every peer. At most
// kMaxRings are kept, the most recent, and none noted before the time Note is told to forget. Encode/Decode give the bytes a node keeps across
// restarts (node_main: DIR/PLACEMENT_HISTORY; the simulator: in memory); a blob that does
// not decode gives an empty history, which only makes old copies' offers declined, as before.
// Thread-safety: none; owned by AntiEntropy, on its strand.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dht/object_id.h"
#include "routing/route_table.h"

namespace ringstore {

class PlacementHistory {
 public:
  static constexpr size_t kMaxRings = 16;  // a bound on memory: a table can be megabytes

  // Records that a round under table, begun at wall_ms, reached every peer. Times of rings
  // noted later than wall_ms (the wall clock was stepped back) are brought back to it, and
  // rings last noted before forget_before_ms (which can no longer vouch) are dropped.
  void Note(const RouteTable& table, int64_t wall_ms, int64_t forget_before_ms = INT64_MIN);
  // Brings times later than wall_ms back to it (at start: a history saved under a clock that
  // ran ahead must not vouch until real time catches up).
  void NotAfter(int64_t wall_ms);
  // Whether table knows (has an entry for, in any state) every node on the ring noted last:
  // a table that does not is a partial view, such as the table of only itself that a node
  // restarted without --join holds until gossip reaches it, and under which every key would
  // seem to be placed on it. True when nothing was noted yet.
  bool Knows(const RouteTable& table) const;
  // Whether table of an entry noted at or after since_ms places id (at n replicas) on node_id.
  bool PlacedSince(const ObjectId& id, uint32_t n, const std::string& node_id, int64_t since_ms) const;
  size_t size() const { return rings_.size(); }

  std::string Encode() const;
  static PlacementHistory Decode(std::string_view bytes);

 private:
  struct Ring {
    uint64_t digest = 0;
    int64_t wall_ms = 0;
    std::shared_ptr<const RouteTable> table;  // shared: a table can be megabytes
  };
  std::vector<Ring> rings_;  // most recent first
};

}  // namespace ringstore
