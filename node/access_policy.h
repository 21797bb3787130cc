// The access policy: which requests each certificate role may make of a node. The node asks
// it for every request on an accepted connection (NodeCore::OnFrame).
//   read-only   GET, STAT, ROUTE_TABLE, DISK_USAGE, WATCH, NODE_STATUS
//   read-write  those, plus PUT, DEL, TXN and NOTIFY
//   admin       those, plus DECOMMISSION and SCAN
//   node        everything, including gossip, probes and anti-entropy (node to node only)
//   open        everything (a cluster without TLS authenticates no one)
// A request is checked twice: by kind when it arrives (Authorize), and by the objects it names
// once decoded (AuthorizeWrite, AuthorizeRead):
//   * a read-write client must name every object it writes (namespace and key, which the node
//     hashes and compares with the id), and may not write the admin-only namespaces (the
//     volume and filesystem catalogs, dht/object_key.h);
//   * a client with a namespace must name every object it reads or writes, in that namespace,
//     and may not use change notification (WATCH, NOTIFY), whose channels have no namespace.
// Thread-safety: a pure function.
#pragma once

#include <cstdint>

#include "dht/messages.h"
#include "dht/object_key.h"
#include "dht/peer_identity.h"
#include "dht/status.h"

namespace ringstore {

// OK, or PermissionDenied naming the peer, its role and the request.
Status Authorize(const PeerIdentity& peer, uint16_t kind);
// OK, or PermissionDenied naming the peer and the first op it may not write.
Status AuthorizeWrite(const PeerIdentity& peer, const Txn& txn);
// OK, or PermissionDenied if the peer is restricted to a namespace that name does not prove.
Status AuthorizeRead(const PeerIdentity& peer, const ObjectId& id, const ObjectName& name);

}  // namespace ringstore
