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

Status Denied(const PeerIdentity& peer, const std::string& what) {
  return Status::PermissionDenied("permission denied: " + peer.Describe() + " " + what);
}

std::string Short(const ObjectId& id) { return id.Hex().substr(0, 16); }

// Whether a restricted client's name for id is valid and in its namespace.
Status InNamespace(const PeerIdentity& peer, const ObjectId& id, const ObjectName& name) {
  if (!name.known) {
    return Denied(peer, "must name object " + Short(id) + " (namespace and key): it may use only namespace '" +
                            peer.ns + "'");
  }
  if (name.ns != peer.ns) return Denied(peer, "may not use namespace '" + name.ns + "'");
  if (!name.Names(id)) return Denied(peer, "named object " + Short(id) + " with a key that does not hash to it");
  return Status::Ok();
}

bool Trusted(const PeerIdentity& peer) {
  return peer.role == Role::kOpen || peer.role == Role::kNode || peer.role == Role::kAdmin;
}

}  // namespace

Status Authorize(const PeerIdentity& peer, uint16_t kind) {
  const Role need = Needs(static_cast<Kind>(kind));
  if (Rank(peer.role) >= Rank(need)) {
    const auto k = static_cast<Kind>(kind);
    if (!peer.ns.empty() && (k == Kind::kWatch || k == Kind::kNotify)) {
      return Denied(peer, std::string("may not send ") + KindName(kind) +
                              " (change notification is for clients without a namespace)");
    }
    return Status::Ok();
  }
  const std::string who = need == Role::kNode ? "node certificates" : std::string("the ") + RoleName(need) + " role";
  return Denied(peer, std::string("may not send ") + KindName(kind) + " (it needs " + who + ")");
}

Status AuthorizeWrite(const PeerIdentity& peer, const Txn& txn) {
  if (Trusted(peer)) return Status::Ok();
  for (const TxnOp& op : txn.ops) {
    if (!peer.ns.empty()) {
      RS_TRY(InNamespace(peer, op.id, op.name));
      continue;
    }
    if (!op.name.known) {
      return Denied(peer, "must name object " + Short(op.id) +
                              " (namespace and key) to write it; names over 64 KiB are not sent, and a client built "
                              "before names were sent cannot write with a non-admin certificate");
    }
    if (!op.name.Names(op.id)) {
      return Denied(peer, "named object " + Short(op.id) + " with a key that does not hash to it");
    }
    if (reserved::IsAdminOnly(op.name.ns)) {
      return Denied(peer, "may not write namespace '" + op.name.ns +
                              "' (volumes and filesystems are created, resized and removed with the admin role)");
    }
  }
  return Status::Ok();
}

Status AuthorizeRead(const PeerIdentity& peer, const ObjectId& id, const ObjectName& name) {
  if (peer.ns.empty() || Trusted(peer)) return Status::Ok();
  return InNamespace(peer, id, name);
}

}  // namespace ringstore
