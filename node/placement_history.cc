#include "node/placement_history.h"

#include <algorithm>

#include "dht/frame.h"
#include "dht/messages.h"
#include "routing/membership_messages.h"
#include "routing/placement.h"

namespace ringstore {

void PlacementHistory::Note(const RouteTable& table, int64_t wall_ms, int64_t forget_before_ms) {
  const uint64_t digest = table.RingDigest();
  std::erase_if(rings_, [&](const Ring& r) { return r.digest == digest || r.wall_ms < forget_before_ms; });
  NotAfter(wall_ms);  // so the new ring, first, keeps the order: most recent first
  rings_.insert(rings_.begin(), Ring{digest, wall_ms, std::make_shared<const RouteTable>(table)});
  if (rings_.size() > kMaxRings) rings_.resize(kMaxRings);
}

void PlacementHistory::NotAfter(int64_t wall_ms) {
  for (Ring& r : rings_) r.wall_ms = std::min(r.wall_ms, wall_ms);
}

bool PlacementHistory::Knows(const RouteTable& table) const {
  if (rings_.empty()) return true;
  for (const auto& [id, e] : rings_.front().table->entries()) {
    if (RouteTable::OnRing(e) && table.Find(id) == nullptr) return false;
  }
  return true;
}

bool PlacementHistory::PlacedSince(const ObjectId& id, uint32_t n, const std::string& node_id,
                                   int64_t since_ms) const {
  for (const Ring& r : rings_) {
    if (r.wall_ms < since_ms) break;  // most recent first
    for (const NodeEntry* e : PlaceReplicas(*r.table, id, n)) {
      if (e->node_id == node_id) return true;
    }
  }
  return false;
}

// The bytes: one GOSSIP frame per ring, most recent first, each carrying the whole table and,
// in its request id, the wall time in ms. Frames bring their own checksum and bounds.
std::string PlacementHistory::Encode() const {
  std::string out;
  for (const Ring& r : rings_) {
    out += EncodeGossip(Kind::kGossip, "", *r.table, static_cast<uint64_t>(std::max<int64_t>(r.wall_ms, 0)));
  }
  return out;
}

PlacementHistory PlacementHistory::Decode(std::string_view bytes) {
  PlacementHistory h;
  FrameDecoder in;
  if (!in.Feed(bytes.data(), bytes.size()).ok() || in.MidFrame()) return h;
  while (in.HasFrame()) {
    Frame f = in.Next();
    if (f.header.kind != static_cast<uint16_t>(Kind::kGossip)) return PlacementHistory{};
    auto m = DecodeGossip(f.body);
    if (!m.ok()) return PlacementHistory{};
    auto table = std::make_shared<RouteTable>();
    for (const NodeEntry& e : m->entries) table->Merge(e);
    const uint64_t digest = table->RingDigest();
    const bool again = std::any_of(h.rings_.begin(), h.rings_.end(), [&](const Ring& r) { return r.digest == digest; });
    if (!again && h.rings_.size() < kMaxRings) {
      h.rings_.push_back(Ring{digest, static_cast<int64_t>(f.header.request_id), std::move(table)});
    }
  }
  std::stable_sort(h.rings_.begin(), h.rings_.end(), [](const Ring& a, const Ring& b) { return a.wall_ms > b.wall_ms; });
  return h;
}

}  // namespace ringstore
