#include "routing/route_table.h"

#include <algorithm>
#include <cassert>
#include <set>
#include <tuple>
#include <unordered_map>

#include "dht/checksum.h"
#include "routing/ring_layout.h"

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
  index_.clear();
  index_.reserve(entries_.size());
  for (auto& [id, e] : entries_) index_.emplace(id, &e);
  local_version_ = o.local_version_;
  digest_sum_ = o.digest_sum_;
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
    ring_prefixes_ = o.ring_prefixes_;
    ring_owners_.clear();
    for (const Point& p : ring_) ring_owners_.push_back(p.node);
    ring_nodes_ = o.ring_nodes_;
    ring_zones_ = o.ring_zones_;
    ring_digest_ = o.ring_digest_;
  }
  return *this;
}

bool RouteTable::Merge(const NodeEntry& entry, std::optional<NodeState>* before) {
  auto it = index_.find(entry.node_id);
  if (before != nullptr) *before = it == index_.end() ? std::nullopt : std::optional<NodeState>(it->second->state);
  if (it == index_.end()) {
    auto added = entries_.emplace(entry.node_id, entry).first;
    index_.emplace(added->first, &added->second);
    digest_sum_ += EntryHash(entry);
    Invalidate();
    return true;
  }
  NodeEntry& old = *it->second;
  if (!entry.Overrides(old)) return false;
  // The ring holds pointers to the entries and reads their state when used, so only a change
  // of what places points (on the ring or not, seed, count, zone) rebuilds it: state flips
  // between up, suspect and down are frequent, and a rebuild hashes every ring id.
  const bool ring_changed = (old.state == NodeState::kLeft) != (entry.state == NodeState::kLeft) || old.leaving != entry.leaving ||
                            old.ring_seed != entry.ring_seed || old.vnodes != entry.vnodes || old.zone != entry.zone;
  digest_sum_ += EntryHash(entry) - EntryHash(old);
  old = entry;
  Invalidate(ring_changed);
  return true;
}

const NodeEntry* RouteTable::Find(const std::string& node_id) const {
  auto it = index_.find(node_id);
  return it == index_.end() ? nullptr : it->second;
}

uint64_t RouteTable::EntryHash(const NodeEntry& e) {
  thread_local std::string s;  // reused: this runs on every merge
  s.clear();
  s.append(e.node_id).push_back('\0');
  s.append(e.address).push_back('\0');
  s.append(e.zone).push_back('\0');
  s.push_back(static_cast<char>(e.state));
  s.push_back(e.leaving ? 1 : 0);
  for (uint64_t v : {e.incarnation, e.ring_seed, static_cast<uint64_t>(e.vnodes)}) {
    for (int b = 0; b < 8; ++b) s.push_back(static_cast<char>(v >> (8 * b)));
  }
  return Checksum64(s, 0x9e3779b97f4a7c15ULL);
}

uint64_t RouteTable::Digest() const { return Checksum64(&digest_sum_, sizeof digest_sum_, entries_.size()); }

const std::vector<RouteTable::Point>& RouteTable::ring() const {
  if (ring_valid_) return ring_;
  std::vector<const NodeEntry*> members;  // on the ring, in node-id order
  std::set<std::string> zones;
  uint64_t h = 0x52494e47ULL;
  for (const auto& [id, e] : entries_) {
    if (!OnRing(e)) continue;
    members.push_back(&e);
    zones.insert(e.zone);
    std::string s = e.node_id + '\0' + e.zone + '\0';
    for (uint64_t v : {e.ring_seed, static_cast<uint64_t>(std::min(e.vnodes, kMaxVnodes))}) {
      for (int b = 0; b < 8; ++b) s.push_back(static_cast<char>(v >> (8 * b)));
    }
    h = Checksum64(s, h);
  }
  ring_digest_ = h;
  ring_nodes_ = members.size();
  ring_zones_ = zones.size();
  const auto layout = LayoutOf(members, h);
  ring_.clear();
  ring_.reserve(layout->points.size());
  for (const RingLayout::Point& p : layout->points) ring_.push_back(Point{p.id, members[p.member]});
  ring_prefixes_.clear();
  ring_prefixes_.reserve(ring_.size());
  ring_owners_.clear();
  ring_owners_.reserve(ring_.size());
  for (const Point& p : ring_) {
    ring_prefixes_.push_back(p.id.Prefix64());
    ring_owners_.push_back(p.node);
  }
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
