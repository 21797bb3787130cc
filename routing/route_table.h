// RouteTable: the full, versioned membership of the cluster and the ring built from it.
// Every node is one NodeEntry; its virtual nodes are 256-bit ring IDs derived from a random
// per-node ring seed (persisted by the node), so an entry stays small enough to gossip while
// the IDs behave as independent random draws. Any key is one hop away: placement is computed
// from this table alone (see placement.h).
// Entries merge by (incarnation, state precedence), SWIM style, so every member that has seen
// the same entries holds the same table and the same Digest().
// Thread-safety: a value type; confine an instance to one strand.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dht/object_id.h"

namespace ringstore {

enum class NodeState : uint8_t {
  kUp = 1,
  kSuspect = 2,  // missed probes; still owns its ranges
  kDown = 3,     // declared dead by the failure detector
  kLeft = 4,     // left the ring for good (decommissioned)
};
const char* NodeStateName(NodeState s);

// Ring IDs per unit of --capacity. Shares of random points spread as 1/sqrt(vnodes): over 200
// seeds of 10 equal nodes, the largest/smallest share reached 1.42 with 256, 1.29 with 512 and
// 1.24 with 1024 (bound: 1.25, tests/routing/placement_test.cc). The cost is a ring of
// 1024 points per node (about 40 bytes each).
constexpr uint32_t kVnodesPerCapacity = 1024;
constexpr uint32_t kMaxVnodes = 16384;

struct NodeEntry {
  std::string node_id;  // 32 hex digits
  std::string address;  // host:port
  std::string zone;     // empty: no zone
  NodeState state = NodeState::kUp;
  uint64_t incarnation = 0;  // bumped by the node itself to refute suspicion or rejoin
  uint64_t ring_seed = 0;
  uint32_t vnodes = kVnodesPerCapacity;
  // Decommissioning: the node is taken off the ring (nothing is placed on it) while it hands
  // its data to the new owners, and then becomes Left. Set by the node itself.
  bool leaving = false;

  // The i-th ring ID: SHA-256(ring_seed as 8 little-endian bytes || i as 4 bytes).
  ObjectId RingId(uint32_t i) const;
  // True when this entry should replace other (same node): newer incarnation, or the same
  // incarnation with a state that overrides (Left > Down > Suspect > Up).
  bool Overrides(const NodeEntry& other) const;
  bool operator==(const NodeEntry&) const = default;
};

class RouteTable {
 public:
  RouteTable() = default;
  // A copy gets its own ring, pointing into its own entries; a valid ring is carried over
  // (re-pointed) rather than rebuilt, since a rebuild hashes every ring id.
  RouteTable(const RouteTable& o) { *this = o; }
  RouteTable& operator=(const RouteTable& o);
  // Adds or replaces the entry if it overrides what the table has. True if the table changed.
  // With before: set to the entry's state before the merge, or nullopt when it was new.
  bool Merge(const NodeEntry& entry, std::optional<NodeState>* before = nullptr);
  const NodeEntry* Find(const std::string& node_id) const;
  const std::map<std::string, NodeEntry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  // A hash of every entry: equal digests mean equal tables (used to check convergence).
  // O(1): kept up to date by Merge as the sum of the entries' hashes (a multiset hash, so
  // the order of merges does not matter).
  uint64_t Digest() const;
  // A hash of what placement depends on: the nodes on the ring with their ring seeds, vnode
  // counts and zones. Unchanged by state flips between up, suspect and down, so two members
  // with equal ring digests place every key alike (anti-entropy compares it).
  uint64_t RingDigest() const;
  // Bumped on every change; local only (not comparable across members).
  uint64_t local_version() const { return local_version_; }

  // The ring: (ring id, node id) sorted by ring id, over nodes that own ranges
  // (Up, Suspect and Down: a down node keeps its ranges until it is replaced; not Left, and
  // not leaving).
  struct Point {
    ObjectId id;
    const NodeEntry* node;
  };
  const std::vector<Point>& ring() const;
  // The 64-bit prefix of each ring point's id, in ring order: a search over these touches
  // 8 bytes a step instead of a 40-byte Point (4,096 points of 4 nodes fit in 32 KiB).
  const std::vector<uint64_t>& ring_prefixes() const {
    ring();
    return ring_prefixes_;
  }
  // Each ring point's node, in ring order (a walk along the ring reads these).
  const std::vector<const NodeEntry*>& ring_owners() const {
    ring();
    return ring_owners_;
  }
  // Whether e's points are on the ring (it is not Left and not leaving).
  static bool OnRing(const NodeEntry& e) { return e.state != NodeState::kLeft && !e.leaving; }
  // Distinct nodes and zones on the ring.
  size_t ring_nodes() const {
    ring();
    return ring_nodes_;
  }
  size_t ring_zones() const {
    ring();
    return ring_zones_;
  }

  // Fraction of the ring (0..1) each ring member's ranges cover, by node id.
  std::map<std::string, double> RingShares() const;

 private:
  void Invalidate(bool ring_changed = true) {
    ++local_version_;
    if (ring_changed) ring_valid_ = false;
  }
  static uint64_t EntryHash(const NodeEntry& e);
  std::map<std::string, NodeEntry> entries_;
  // entries_ by node id, for Find and Merge (hashing beats walking a map of 32-digit keys).
  // The keys view entries_'s keys, which stay put; entries are never removed.
  std::unordered_map<std::string_view, NodeEntry*> index_;
  uint64_t local_version_ = 0;
  mutable bool ring_valid_ = false;
  mutable std::vector<Point> ring_;
  mutable std::vector<uint64_t> ring_prefixes_;          // valid with ring_valid_
  mutable std::vector<const NodeEntry*> ring_owners_;    // valid with ring_valid_
  mutable size_t ring_nodes_ = 0;
  mutable size_t ring_zones_ = 0;
  uint64_t digest_sum_ = 0;  // sum of EntryHash over entries_, wrapping
  mutable uint64_t ring_digest_ = 0;  // valid with ring_valid_
};

}  // namespace ringstore
