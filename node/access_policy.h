// The access policy: which requests each certificate role may make of a node. The node asks
// it for every request on an accepted connection (NodeCore::OnFrame).
//   read-only   GET, STAT, ROUTE_TABLE, DISK_USAGE, WATCH, NODE_STATUS
//   read-write  those, plus PUT, DEL, TXN and NOTIFY
//   admin       those, plus DECOMMISSION and SCAN
//   node        everything, including gossip, probes and anti-entropy (node to node only)
//   open        everything (a cluster without TLS authenticates no one)
// Thread-safety: a pure function.
#pragma once

#include <cstdint>

#include "dht/peer_identity.h"
#include "dht/status.h"

namespace ringstore {

// OK, or PermissionDenied naming the peer, its role and the request.
Status Authorize(const PeerIdentity& peer, uint16_t kind);

}  // namespace ringstore
