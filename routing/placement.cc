#include "routing/placement.h"

#include <algorithm>
#include <cassert>

namespace ringstore {

ObjectId ReplicaId(const ObjectId& id, uint32_t replica) {
  if (replica == 0) return id;
  char in[ObjectId::kSize + 4];
  std::copy(id.bytes().begin(), id.bytes().end(), in);
  for (int b = 0; b < 4; ++b) in[ObjectId::kSize + b] = static_cast<char>(replica >> (8 * b));
  return ObjectId::Sha256(std::string_view(in, sizeof in));
}

std::vector<const NodeEntry*> PlaceReplicas(const RouteTable& table, const ObjectId& id, uint32_t n) {
  std::vector<const NodeEntry*> chosen;
  const auto& ring = table.ring();
  const auto& prefixes = table.ring_prefixes();
  const auto& owners = table.ring_owners();
  if (ring.empty() || n == 0) return chosen;
  n = std::min(n, kMaxReplicas);
  chosen.reserve(n);

  std::vector<const std::string*> zones_used;  // the chosen nodes' zones, each once
  auto zone_used = [&](const NodeEntry* e) {
    return std::any_of(zones_used.begin(), zones_used.end(), [e](const std::string* z) { return *z == e->zone; });
  };
  auto taken = [&](const NodeEntry* e) { return std::find(chosen.begin(), chosen.end(), e) != chosen.end(); };

  for (uint32_t r = 0; r < n && chosen.size() < table.ring_nodes(); ++r) {
    const ObjectId rid = ReplicaId(id, r);
    // The first point at or after rid. The 64-bit prefixes decide almost every step (and
    // fit the cache); points sharing rid's prefix are then compared whole.
    const uint64_t rp = rid.Prefix64();
    size_t at = static_cast<size_t>(std::lower_bound(prefixes.begin(), prefixes.end(), rp) - prefixes.begin());
    while (at < ring.size() && prefixes[at] == rp && ring[at].id < rid) ++at;
    const size_t first = at % ring.size();
    // Prefer a node in an unused zone while there is one; otherwise any unchosen node.
    const bool want_new_zone = zones_used.size() < table.ring_zones();
    const NodeEntry* pick = nullptr;
    for (int pass = want_new_zone ? 0 : 1; pass < 2 && pick == nullptr; ++pass) {
      for (size_t k = 0, i = first; k < ring.size(); ++k, i = i + 1 == ring.size() ? 0 : i + 1) {
        const NodeEntry* e = owners[i];
        if (taken(e) || (pass == 0 && zone_used(e))) continue;
        pick = e;
        break;
      }
    }
    if (pick == nullptr) break;
    chosen.push_back(pick);
    if (!zone_used(pick)) zones_used.push_back(&pick->zone);
  }
  return chosen;
}

int PreferenceRank(const RouteTable& table, const ObjectId& id, const std::string& node_id, uint32_t limit) {
  if (table.ring().empty()) return 0;
  int rank = 0;
  for (const NodeEntry* e : PlaceReplicas(table, id, std::min(limit, kMaxReplicas))) {
    if (e->node_id == node_id) return rank;
    ++rank;
  }
  return -1;
}

bool InPreferenceWindow(const RouteTable& table, const ObjectId& id, const std::string& node_id, uint32_t window) {
  return PreferenceRank(table, id, node_id, window) >= 0;
}

}  // namespace ringstore
