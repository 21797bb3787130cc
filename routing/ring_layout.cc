#include "routing/ring_layout.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "routing/route_table.h"

namespace ringstore {

namespace {

// What placement reads of a member; equal keys mean equal layouts (SameMembers).
struct MemberKey {
  std::string node_id;
  uint64_t ring_seed;
  uint32_t vnodes;
};

struct Cached {
  uint64_t digest = 0;
  uint64_t last_use = 0;
  std::vector<MemberKey> members;
  std::shared_ptr<const RingLayout> layout;
};

// The ring ids of a seed, computed once per thread (a pure function of the seed). Bounded:
// emptied when it holds too many seeds.
const std::vector<ObjectId>& RingIdsOf(const NodeEntry& e, uint32_t n) {
  constexpr size_t kMaxSeeds = 4096;
  thread_local std::unordered_map<uint64_t, std::vector<ObjectId>> cache;
  auto it = cache.find(e.ring_seed);
  if (it == cache.end()) {
    if (cache.size() >= kMaxSeeds) cache.clear();
    it = cache.emplace(e.ring_seed, std::vector<ObjectId>()).first;
  }
  std::vector<ObjectId>& ids = it->second;
  if (ids.size() < n) {
    ids.reserve(n);
    for (uint32_t i = static_cast<uint32_t>(ids.size()); i < n; ++i) ids.push_back(e.RingId(i));
  }
  return ids;
}

uint32_t PointsOf(const NodeEntry& e) { return std::min(e.vnodes, kMaxVnodes); }

std::shared_ptr<const RingLayout> Build(const std::vector<const NodeEntry*>& members) {
  auto layout = std::make_shared<RingLayout>();
  size_t total = 0;
  for (const NodeEntry* e : members) total += PointsOf(*e);
  layout->points.reserve(total);
  for (uint32_t m = 0; m < members.size(); ++m) {
    const uint32_t n = PointsOf(*members[m]);
    const std::vector<ObjectId>& ids = RingIdsOf(*members[m], n);
    for (uint32_t i = 0; i < n; ++i) layout->points.push_back(RingLayout::Point{ids[i], m});
  }
  // By id; the 64-bit prefix decides almost every comparison without a 32-byte compare.
  // Members are in node-id order, so the member index breaks ties as the node id would.
  std::sort(layout->points.begin(), layout->points.end(), [](const RingLayout::Point& a, const RingLayout::Point& b) {
    const uint64_t pa = a.id.Prefix64(), pb = b.id.Prefix64();
    if (pa != pb) return pa < pb;
    return a.id != b.id ? a.id < b.id : a.member < b.member;
  });
  return layout;
}

bool SameMembers(const std::vector<MemberKey>& keys, const std::vector<const NodeEntry*>& members) {
  if (keys.size() != members.size()) return false;
  for (size_t i = 0; i < keys.size(); ++i) {
    const NodeEntry& e = *members[i];
    if (keys[i].ring_seed != e.ring_seed || keys[i].vnodes != PointsOf(e) || keys[i].node_id != e.node_id) return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const RingLayout> LayoutOf(const std::vector<const NodeEntry*>& members, uint64_t digest) {
  // A few rings at once: a partition or a join in progress gives members different views.
  constexpr size_t kMaxRings = 8;
  thread_local std::vector<Cached> cache;
  thread_local uint64_t uses = 0;
  ++uses;
  for (Cached& c : cache) {
    if (c.digest == digest && SameMembers(c.members, members)) {
      c.last_use = uses;
      return c.layout;
    }
  }
  Cached fresh;
  fresh.digest = digest;
  fresh.last_use = uses;
  fresh.members.reserve(members.size());
  for (const NodeEntry* e : members) fresh.members.push_back(MemberKey{e->node_id, e->ring_seed, PointsOf(*e)});
  fresh.layout = Build(members);
  if (cache.size() < kMaxRings) {
    cache.push_back(std::move(fresh));
    return cache.back().layout;
  }
  auto oldest = std::min_element(cache.begin(), cache.end(),
                                 [](const Cached& a, const Cached& b) { return a.last_use < b.last_use; });
  *oldest = std::move(fresh);
  return oldest->layout;
}

}  // namespace ringstore
