// `ringstore ring`: the route table as one member sees it, with each node's state, zone,
// address, share of the ring and share of the replicas.
// Thread-safety: single-threaded.
#pragma once

#include <cstdint>

#include "routing/membership_messages.h"
#include "tools/session.h"

namespace ringstore {

// The route table as the member behind session.client(i) sees it.
Result<GossipMessage> FetchTable(Session& session, size_t i);

// Prints the table; returns a process exit status (0, or 4 when the member cannot answer).
int RunRing(Session& session, uint32_t replicas);

// `ringstore status`: asks every member for its view (reachable? round trip? same table?) and
// prints the cluster's health in one screen. session.client() is connected to a member.
int RunStatus(Session& session);

}  // namespace ringstore
