// RingLayout: the sorted ring ids of a set of ring members, by member index, and a small
// per-thread cache of them. A ring is rebuilt in every member's table whenever a node joins
// or leaves the ring, and every table that sees the same members builds the same layout:
// hashing each ring id and sorting them once per thread, instead of once per table, is what
// keeps a simulated 100-node cluster (one thread, a hundred tables) fast. A layout is a pure
// function of its members, so the cache changes no result.
// Thread-safety: the cache is per thread; a returned layout is immutable and may be shared.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dht/object_id.h"

namespace ringstore {

struct NodeEntry;

struct RingLayout {
  struct Point {
    ObjectId id;
    uint32_t member;  // index into the members the layout was built from
  };
  std::vector<Point> points;  // by id, then by member (members are in node-id order)
};

// The layout of members: the entries on the ring, in node-id order. digest identifies the
// members (RouteTable's ring digest); the cache checks the members themselves, too, so a
// digest collision cannot hand out another ring.
std::shared_ptr<const RingLayout> LayoutOf(const std::vector<const NodeEntry*>& members, uint64_t digest);

}  // namespace ringstore
