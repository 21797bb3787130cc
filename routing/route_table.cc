#include "routing/route_table.h"

#include <algorithm>
#include <cassert>
#include <set>
#include <tuple>
#include <unordered_map>

#include "dht/checksum.h"

namespace ringstore {

const char* NodeStateName(NodeState s) {
  switch (s) {
    case NodeState::kUp: return "up";
    case NodeState::kSuspect: return "suspect";
    case NodeState::kDown: return "down";
    case NodeState::kLeft: return "left";
  }
  return "unknown";
}

ObjectId NodeEntry::RingId(uint32_t i) const {
  char in[12];
  for (int b = 0; b < 8; ++b) in[b] = static_cast<char>(ring_seed >> (8 * b));
  for (int b = 0; b < 4; ++b) in[8 + b] = static_cast<char>(i >> (8 * b));
  return ObjectId::Sha256(std::string_view(in, sizeof in));
}

bool NodeEntry::Overrides(const NodeEntry& other) const {
  if (incarnation != other.incarnation) return incarnation > other.incarnation;
  if (state != other.state) return static_cast<uint8_t>(state) > static_cast<uint8_t>(other.state);
  // Same incarnation and state but different details (address, zone): the node itself is
  // the only writer of those and bumps its incarnation when they change, so this is a tie
  // between two versions nobody should produce; break it deterministically.
  return std::tie(address, zone, ring_seed, vnodes, leaving) >
         std::tie(other.address, other.zone, other.ring_seed, other.vnodes, other.leaving);
}

RouteTable& RouteTable::operator=(const RouteTable& o) {
  if (this == &o) return *this;
  entries_ = o.entries_;
  local_version_ = o.local_version_;
  digest_valid_ = o.digest_valid_;
  digest_ = o.digest_;
  ring_valid_ = o.ring_valid_;
  ring_.clear();
  if (ring_valid_) {
    // Both maps hold the same keys in the same order: map each entry of o to ours.
    std::unordered_map<const NodeEntry*, const NodeEntry*> to_mine;
    to_mine.reserve(entries_.size());
    auto b = entries_.cbegin();
    for (auto a = o.entries_.cbegin(); a != o.entries_.cend(); ++a, ++b) {
      to_mine.emplace(&a->second, &b->second);
    }
    ring_.reserve(o.ring_.size());
    for (const Point& p : o.ring_) ring_.push_back(Point{p.id, to_mine.at(p.node)});
    ring_nodes_ = o.ring_nodes_;
    ring_zones_ = o.ring_zones_;
    ring_digest_ = o.ring_digest_;
  }
  return *this;
}

bool RouteTable::Merge(const NodeEntry& entry) {
  auto it = entries_.find(entry.node_id);
  if (it == entries_.end()) {
    entries_.emplace(entry.node_id, entry);
    Invalidate();
    return true;
  }
  if (!entry.Overrides(it->second)) return false;
  // The ring holds pointers to the entries and reads their state when used, so only a change
  // of what places points (on the ring or not, seed, count, zone) rebuilds it: state flips
  // between up, suspect and down are frequent, and a rebuild hashes every ring id.
  const NodeEntry& old = it->second;
  const bool ring_changed = (old.state == NodeState::kLeft) != (entry.state == NodeState::kLeft) || old.leaving != entry.leaving ||
                            old.ring_seed != entry.ring_seed || old.vnodes != entry.vnodes || old.zone != entry.zone;
  it->second = entry;
  Invalidate(ring_changed);
  return true;
}

const NodeEntry* RouteTable::Find(const std::string& node_id) const {
  auto it = entries_.find(node_id);
  return it == entries_.end() ? nullptr : &it->second;
}

uint64_t RouteTable::Digest() const {
  if (digest_valid_) return digest_;
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (const auto& [id, e] : entries_) {
    std::string s = e.node_id + '\0' + e.address + '\0' + e.zone + '\0';
    s.push_back(static_cast<char>(e.state));
    s.push_back(e.leaving ? 1 : 0);
    for (uint64_t v : {e.incarnation, e.ring_seed, static_cast<uint64_t>(e.vnodes)}) {
      for (int b = 0; b < 8; ++b) s.push_back(static_cast<char>(v >> (8 * b)));
    }
    h = Checksum64(s, h);
  }
  digest_ = h;
  digest_valid_ = true;
  return h;
}

const std::vector<RouteTable::Point>& RouteTable::ring() const {
  if (ring_valid_) return ring_;
  ring_.clear();
  ring_nodes_ = 0;
  std::set<std::string> zones;
  for (const auto& [id, e] : entries_) {
    if (e.state == NodeState::kLeft || e.leaving) continue;
    ++ring_nodes_;
    zones.insert(e.zone);
    const uint32_t n = std::min(e.vnodes, kMaxVnodes);
    for (uint32_t i = 0; i < n; ++i) ring_.push_back(Point{e.RingId(i), &e});
  }
  std::sort(ring_.begin(), ring_.end(), [](const Point& a, const Point& b) {
    return a.id != b.id ? a.id < b.id : a.node->node_id < b.node->node_id;
  });
  ring_zones_ = zones.size();
  uint64_t h = 0x52494e47ULL;
  for (const auto& [id, e] : entries_) {
    if (e.state == NodeState::kLeft || e.leaving) continue;
    std::string s = e.node_id + '\0' + e.zone + '\0';
    for (uint64_t v : {e.ring_seed, static_cast<uint64_t>(std::min(e.vnodes, kMaxVnodes))}) {
      for (int b = 0; b < 8; ++b) s.push_back(static_cast<char>(v >> (8 * b)));
    }
    h = Checksum64(s, h);
  }
  ring_digest_ = h;
  ring_valid_ = true;
  return ring_;
}

uint64_t RouteTable::RingDigest() const {
  ring();
  return ring_digest_;
}

namespace {
// The ring as a fraction: the 64-bit prefix is plenty of precision for shares.
double Position(const ObjectId& id) { return static_cast<double>(id.Prefix64()) / 18446744073709551616.0; }
}  // namespace

std::map<std::string, double> RouteTable::RingShares() const {
  std::map<std::string, double> shares;
  const auto& r = ring();
  if (r.empty()) return shares;
  // A point owns the range from its predecessor (exclusive) up to itself (inclusive).
  for (size_t i = 0; i < r.size(); ++i) {
    const double prev = Position(r[(i + r.size() - 1) % r.size()].id);
    double width = Position(r[i].id) - prev;
    if (width < 0 || r.size() == 1) width += 1.0;
    shares[r[i].node->node_id] += width;
  }
  return shares;
}

}  // namespace ringstore
