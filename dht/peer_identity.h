// PeerIdentity: who is at the other end of a connection, as its TLS certificate proves it,
// and the role that decides what it may ask of a node. Certificates carry the identity as a
// URI subject alternative name:
//   ringstore://CLUSTER/node/NAME
//   ringstore://CLUSTER/client/NAME?role=read-only|read-write|admin[&ns=NAMESPACE]
// A client with a namespace may touch only objects of that namespace.
// CLUSTER and NAME use only [A-Za-z0-9._-] (dht/admin_name.h), so the URI needs no escaping.
// A connection without TLS has Role::kOpen: no one was authenticated and every request is
// allowed, as in a cluster that runs without --tls-dir.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dht/status.h"

namespace ringstore {

enum class Role : uint8_t {
  kOpen = 0,       // plaintext cluster: no authentication, everything allowed
  kNode = 1,       // a storage node: node-to-node messages too
  kAdmin = 2,      // a client that may also decommission nodes and scan stores
  kReadWrite = 3,  // a client that reads and writes objects
  kReadOnly = 4,   // a client that only reads
};

// "open", "node", "admin", "read-write", "read-only".
const char* RoleName(Role role);
// A client role by name: admin, read-write or read-only (not node, not open).
Result<Role> ParseClientRole(std::string_view name);
// Whether ns can restrict a client: a name as for volumes (dht/admin_name.h) that is not one of
// ringstore's own ("ringstore." ...).
Status ValidateClientNamespace(const std::string& ns);

struct PeerIdentity {
  Role role = Role::kOpen;
  std::string cluster_id;
  std::string name;
  // A read-only or read-write client restricted to this namespace; empty: any namespace.
  std::string ns;
  // "node 'n1'", "client 'alice' (read-only)" or "client 'bob' (read-write, namespace
  // 'photos')", for error messages and logs.
  std::string Describe() const;
};

// The URI for a certificate's subject alternative name.
std::string IdentityUri(const PeerIdentity& id);
// Parses such a URI; anything else (another scheme, an unknown role, a bad name) is
// InvalidArgument.
Result<PeerIdentity> ParseIdentityUri(std::string_view uri);

}  // namespace ringstore
