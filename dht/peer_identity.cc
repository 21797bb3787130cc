#include "dht/peer_identity.h"

#include "dht/admin_name.h"
#include "dht/object_key.h"

namespace ringstore {

namespace {

constexpr std::string_view kScheme = "ringstore://";

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kOpen: return "open";
    case Role::kNode: return "node";
    case Role::kAdmin: return "admin";
    case Role::kReadWrite: return "read-write";
    case Role::kReadOnly: return "read-only";
  }
  return "unknown";
}

Result<Role> ParseClientRole(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "read-write") return Role::kReadWrite;
  if (name == "read-only") return Role::kReadOnly;
  return Status::InvalidArgument("unknown role '" + std::string(name) + "' (read-only, read-write or admin)");
}

Status ValidateClientNamespace(const std::string& ns) {
  RS_TRY(ValidateAdminName(ns, "namespace"));
  if (ns.compare(0, reserved::kReservedPrefix.size(), reserved::kReservedPrefix) == 0) {
    return Status::InvalidArgument("namespaces starting with 'ringstore.' are ringstore's own");
  }
  return Status::Ok();
}

std::string PeerIdentity::Describe() const {
  switch (role) {
    case Role::kOpen: return "an unauthenticated peer";
    case Role::kNode: return "node '" + name + "'";
    default: break;
  }
  const std::string scope = ns.empty() ? "" : ", namespace '" + ns + "'";
  return "client '" + name + "' (" + RoleName(role) + scope + ")";
}

std::string IdentityUri(const PeerIdentity& id) {
  std::string uri = std::string(kScheme) + id.cluster_id;
  if (id.role == Role::kNode) return uri + "/node/" + id.name;
  uri += "/client/" + id.name + "?role=" + RoleName(id.role);
  if (!id.ns.empty()) uri += "&ns=" + id.ns;
  return uri;
}

Result<PeerIdentity> ParseIdentityUri(std::string_view uri) {
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("certificate identity '" + std::string(uri) + "': " + why);
  };
  if (uri.substr(0, kScheme.size()) != kScheme) return bad("not a ringstore:// URI");
  std::string_view rest = uri.substr(kScheme.size());
  const size_t s1 = rest.find('/');
  if (s1 == std::string_view::npos) return bad("no kind");
  PeerIdentity id;
  id.cluster_id = std::string(rest.substr(0, s1));
  rest = rest.substr(s1 + 1);
  const size_t s2 = rest.find('/');
  if (s2 == std::string_view::npos) return bad("no name");
  const std::string_view kind = rest.substr(0, s2);
  rest = rest.substr(s2 + 1);
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  id.name = std::string(rest);
  if (Status s = ValidateAdminName(id.cluster_id, "cluster"); !s.ok()) return bad(s.message());
  if (Status s = ValidateAdminName(id.name, "party"); !s.ok()) return bad(s.message());
  if (kind == "node") {
    if (!query.empty()) return bad("a node identity has no query");
    id.role = Role::kNode;
    return id;
  }
  if (kind != "client") return bad("unknown kind '" + std::string(kind) + "'");
  constexpr std::string_view kRole = "role=";
  constexpr std::string_view kNs = "&ns=";
  if (query.substr(0, kRole.size()) != kRole) return bad("a client identity needs ?role=");
  query = query.substr(kRole.size());
  if (const size_t amp = query.find(kNs); amp != std::string_view::npos) {
    id.ns = std::string(query.substr(amp + kNs.size()));
    query = query.substr(0, amp);
    if (Status s = ValidateClientNamespace(id.ns); !s.ok()) return bad(s.message());
  }
  auto role = ParseClientRole(query);
  if (!role.ok()) return bad(role.status().message());
  id.role = *role;
  if (id.role == Role::kAdmin && !id.ns.empty()) return bad("an admin identity has no namespace");
  return id;
}

}  // namespace ringstore
