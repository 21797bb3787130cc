// ObjectKey: an object's address as a client names it, the 256-bit id plus, when the client
// knows it, the (namespace, key) pair the id is the hash of. Requests carry the name so that
// a node can check a client's right to a namespace (node/access_policy.h): the id alone is a
// one-way hash and says nothing about the namespace.
//
// The reserved namespaces of ringstore's own objects are listed here too, once, because the
// gateways write them and the node's access policy protects some of them.
// Thread-safety: plain values.
#pragma once

#include <string>
#include <string_view>

#include "dht/object_id.h"

namespace ringstore {

// The name an id was hashed from. `known` is false when the sender did not give it.
struct ObjectName {
  std::string ns;
  std::string key;
  bool known = false;
  // Whether the name is given and is what id is the hash of. A namespace holding '\0' would
  // make the split of `ns \0 key` ambiguous, so it names nothing.
  bool Names(const ObjectId& id) const {
    return known && ns.find('\0') == std::string::npos && ObjectId::Of(ns, key) == id;
  }
};

// Bounds the name a request may carry: namespace and key together. A longer name is not
// sent (the request goes by id alone, as before names were sent), so long keys keep working
// wherever the node does not need the name.
constexpr size_t kMaxObjectNameBytes = 64u << 10;
inline bool Sendable(const ObjectName& n) { return n.known && n.ns.size() + n.key.size() <= kMaxObjectNameBytes; }

struct ObjectKey {
  ObjectId id;
  ObjectName name;

  ObjectKey() = default;
  // An id without its name: enough for a cluster without TLS, for node-to-node copies and for
  // the admin role; other clients' writes must be named (docs/security.md §3).
  ObjectKey(const ObjectId& object_id) : id(object_id) {}  // NOLINT(google-explicit-constructor)
  static ObjectKey Of(std::string_view ns, std::string_view key) {
    ObjectKey k(ObjectId::Of(ns, key));
    k.name = ObjectName{std::string(ns), std::string(key), true};
    return k;
  }
};

// ringstore's own namespaces. The first four hold the catalogs of volumes and filesystems:
// only an admin client (or a cluster without TLS) may write them.
namespace reserved {
constexpr std::string_view kVolume = "ringstore.volume";                // NAME -> volume metadata
constexpr std::string_view kVolumeCatalog = "ringstore.volume-catalog";  // "all" -> the names
constexpr std::string_view kFs = "ringstore.fs";                         // NAME -> superblock
constexpr std::string_view kFsCatalog = "ringstore.fs-catalog";          // "all" -> the names
constexpr std::string_view kVolumeChunk = "ringstore.chunk";
constexpr std::string_view kVolumeLease = "ringstore.volume-lease";     // hex(uuid) -> gateways' leases
constexpr std::string_view kFsInode = "ringstore.inode";
constexpr std::string_view kFsDir = "ringstore.dir";
constexpr std::string_view kFsChunk = "ringstore.fschunk";
constexpr std::string_view kFsEvents = "ringstore.fs-events";
// Every reserved namespace starts with this; a namespace-restricted client may not be given one.
constexpr std::string_view kReservedPrefix = "ringstore.";

// In the two catalog namespaces: the last admin command that deleted something ("volume rm
// NAME", "fs rm NAME"), written before it deletes anything, as its admin check.
constexpr std::string_view kLastAdminOpKey = "last-admin-op";

inline bool IsAdminOnly(std::string_view n) {
  return n == kVolume || n == kVolumeCatalog || n == kFs || n == kFsCatalog;
}
}  // namespace reserved

}  // namespace ringstore
