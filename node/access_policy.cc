#include "node/access_policy.h"

#include "dht/messages.h"

namespace ringstore {

namespace {

// The least role a request needs, in the order kReadOnly < kReadWrite < kAdmin < kNode.
int Rank(Role r) {
  switch (r) {
    case Role::kReadOnly: return 0;
    case Role::kReadWrite: return 1;
    case Role::kAdmin: return 2;
    case Role::kNode: return 3;
    case Role::kOpen: return 3;
  }
  return -1;
}

Role Needs(Kind kind) {
  switch (kind) {
    case Kind::kHello:
    case Kind::kGet:
    case Kind::kStat:
    case Kind::kRouteTable:
    case Kind::kDiskUsage:
    case Kind::kWatch:
    case Kind::kNodeStatus:
      return Role::kReadOnly;
    case Kind::kPut:
    case Kind::kDel:
    case Kind::kTxn:
    case Kind::kNotify:
      return Role::kReadWrite;
    case Kind::kDecommission:
    case Kind::kScan:
      return Role::kAdmin;
    default:  // gossip, probes, anti-entropy, and anything unknown
      return Role::kNode;
  }
}

}  // namespace

Status Authorize(const PeerIdentity& peer, uint16_t kind) {
  const Role need = Needs(static_cast<Kind>(kind));
  if (Rank(peer.role) >= Rank(need)) return Status::Ok();
  const std::string who = need == Role::kNode ? "node certificates" : std::string("the ") + RoleName(need) + " role";
  return Status::PermissionDenied("permission denied: " + peer.Describe() + " may not send " + KindName(kind) +
                                  " (it needs " + who + ")");
}

}  // namespace ringstore
