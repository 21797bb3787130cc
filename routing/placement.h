// Replica placement from the route table alone. Replica 0 of an object is its own ID; replica
// i > 0 is SHA-256(id || i). Each replica ID is owned by the first ring point at or after it;
// the walk skips nodes already chosen for the object and, while unused zones remain, nodes in
// zones already used. So the N replicas land on N distinct nodes (and distinct zones when
// the ring spans at least N zones), every member computes the same answer, and a joining
// node takes over only the ranges its own ring points cut off.
// Thread-safety: pure functions over a RouteTable the caller keeps stable during the call.
#pragma once

#include <cstdint>
#include <vector>

#include "routing/route_table.h"

namespace ringstore {

constexpr uint32_t kMaxReplicas = 16;

ObjectId ReplicaId(const ObjectId& id, uint32_t replica);

// The nodes holding id's replicas, replica 0 first. Fewer than n when the ring has fewer
// distinct nodes.
std::vector<const NodeEntry*> PlaceReplicas(const RouteTable& table, const ObjectId& id, uint32_t n);

// node_id's place (0-based) among the first `limit` nodes of id's preference list; -1 when it
// is not among them; 0 when the table has no ring.
int PreferenceRank(const RouteTable& table, const ObjectId& id, const std::string& node_id, uint32_t limit);

// Whether node_id is among the first `window` nodes of id's preference list. True when the
// table has no ring (a node that has not joined owns whatever it is sent).
bool InPreferenceWindow(const RouteTable& table, const ObjectId& id, const std::string& node_id, uint32_t window);

}  // namespace ringstore
