#include "node/hinted_handoff.h"

#include <algorithm>

#include "dht/hlc.h"
#include "dht/messages.h"
#include "routing/placement.h"

namespace ringstore {

HintedHandoff::HintedHandoff(HandoffOptions options, std::string self_id, Clock& clock, Store& store,
                             PeerLinks& peers, Membership& membership, std::shared_ptr<spdlog::logger> log)
    : options_(options),
      self_id_(std::move(self_id)),
      clock_(clock),
      store_(store),
      peers_(peers),
      membership_(membership),
      log_(std::move(log)) {}

HintedHandoff::~HintedHandoff() {
  *alive_ = false;
  if (armed_) clock_.Cancel(timer_);
}

namespace {
constexpr size_t kLoadBatch = 1024;
}  // namespace

void HintedHandoff::Start() { Load(ObjectId::Min()); }

void HintedHandoff::Load(const ObjectId& from) {
  std::weak_ptr<bool> alive = alive_;
  store_.Hints(from, kLoadBatch, [this, alive](Result<std::vector<StoredHint>> r) {
    if (alive.expired()) return;
    if (!r.ok()) {
      // Their records stay; anti-entropy hands them off in its own rounds.
      log_->warn("hinted handoff: cannot load the kept hints: {}", r.status().ToString());
      return;
    }
    for (const StoredHint& h : *r) {
      if (hints_.count(h.id) == 0) ++stats_.loaded;
      Note(h.id, h.route_n, h.ts);
    }
    if (r->size() == kLoadBatch && stats_.loaded < options_.max_hints) {
      if (r->back().id != ObjectId::Max()) return Load(r->back().id.Successor());
    }
    if (stats_.loaded > 0) log_->info("hinted handoff: {} hints kept by an earlier run", stats_.loaded);
  });
}

void HintedHandoff::Note(const ObjectId& id, uint32_t route_n, Timestamp ts) {
  auto [it, fresh] = hints_.try_emplace(id);
  it->second.route_n = std::max(it->second.route_n, route_n);
  it->second.ts = std::max(it->second.ts, ts);
  ++it->second.generation;
  it->second.acked.clear();  // a newer version: every replica needs it
  if (fresh) {
    ++stats_.hinted;
    order_.push_back(id);
    while (hints_.size() > options_.max_hints && !order_.empty()) {
      auto old = hints_.find(order_.front());
      order_.pop_front();
      if (old == hints_.end() || old->second.busy) continue;
      Forget(old->first, old->second.ts);
      hints_.erase(old);
      if (++stats_.dropped % 1000 == 1) log_->warn("hinted handoff: over {} hints, dropping the oldest", options_.max_hints);
    }
  }
  stats_.pending = hints_.size();
  Arm();
}

void HintedHandoff::Forget(const ObjectId& id, Timestamp ts) {
  std::weak_ptr<bool> alive = alive_;
  store_.ForgetHints({StoredHint{id, 0, ts}}, [this, alive, id](Status s) {
    if (alive.expired() || s.ok()) return;
    // It stays in the store: a restart hands the record off once more (harmless).
    log_->warn("hinted handoff: cannot forget the hint of {}: {}", id.Hex().substr(0, 16), s.ToString());
  });
}

void HintedHandoff::Arm() {
  if (armed_ || hints_.empty()) return;
  armed_ = true;
  timer_ = clock_.Schedule(options_.interval, [this] {
    armed_ = false;
    Pass();
  });
}

void HintedHandoff::Pass() {
  // Until the node has heard from the ring (a restart), its table holds itself alone: every
  // key would look placed here, and the hints would end unsent. (joined() is not enough: a
  // node started without --join counts as joined at once.) A fallback write needs a ring of
  // more than N nodes, so a hint never belongs to a ring of one.
  if (!membership_.joined() || membership_.table().size() < 2) return Arm();
  // From where the last pass stopped, so that hints waiting for a replica that is down do not
  // keep the ones after them waiting; a bounded number per pass.
  const size_t budget = std::min(hints_.size(), std::max<size_t>(256, 4 * options_.max_in_flight));
  auto it = hints_.upper_bound(cursor_);
  for (size_t seen = 0; seen < budget && in_flight_ < options_.max_in_flight; ++seen) {
    if (it == hints_.end()) it = hints_.begin();
    const ObjectId id = it->first;  // (a hand-off that ends at once erases its hint: it is past it)
    Hint& hint = (it++)->second;
    cursor_ = id;
    if (hint.busy || !AnyToSend(id, hint)) continue;
    hint.busy = true;
    HandOff(id, hint.route_n, hint.generation);
  }
  // Orders compact: ids already handed off are dropped from the front.
  while (!order_.empty() && hints_.count(order_.front()) == 0) order_.pop_front();
  Arm();
}

namespace {
bool Acked(const std::vector<std::string>& acked, const std::string& node_id) {
  return std::find(acked.begin(), acked.end(), node_id) != acked.end();
}
// A replica the hint's record goes to now: up, and without it yet.
bool Wants(const NodeEntry& e, const std::vector<std::string>& acked) {
  return e.state != NodeState::kDown && !Acked(acked, e.node_id);
}
}  // namespace

bool HintedHandoff::AnyToSend(const ObjectId& id, const Hint& hint) const {
  for (const NodeEntry* e : PlaceReplicas(membership_.table(), id, hint.route_n)) {
    // (This node a replica now: the hand-off ends the hint.)
    if (e->node_id == self_id_ || Wants(*e, hint.acked)) return true;
  }
  return false;
}

void HintedHandoff::HandOff(const ObjectId& id, uint32_t route_n, uint64_t generation) {
  ++in_flight_;
  std::weak_ptr<bool> alive = alive_;
  store_.Get(id, [this, alive, id, route_n, generation](Result<Record> r) {
    if (alive.expired()) return;
    if (!r.ok()) return Done(id, generation, r.status().IsNotFound(), 0);  // nothing left to hand off
    const Timestamp sent = r->meta.ts;
    const int64_t grace_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.tombstone_grace).count();
    if (PastGrace(r->meta.ts, clock_.WallMicros() / 1000, grace_ms)) {
      log_->info("handoff: the hinted copy of {} is older than the tombstone grace: dropped, not handed off", id.Hex());
      return Done(id, generation, true, sent, /*dropped=*/true);
    }
    std::vector<const NodeEntry*> replicas = PlaceReplicas(membership_.table(), id, route_n);
    for (const NodeEntry* e : replicas) {
      if (e->node_id == self_id_) return Done(id, generation, true, sent);  // a replica now: nothing to hand
    }
    const Txn txn = CopyRecordTxn(id, std::move(*r));
    // To each replica that is up and has not acknowledged this generation's record yet; the
    // hint ends once every replica has (a down one is waited for, not sent to).
    auto it = hints_.find(id);
    if (it == hints_.end()) return Done(id, generation, false, sent);
    std::vector<std::string> all;
    std::vector<std::pair<std::string, std::string>> targets;  // node id, address
    for (const NodeEntry* e : replicas) {
      all.push_back(e->node_id);
      if (Wants(*e, it->second.acked)) targets.emplace_back(e->node_id, e->address);
    }
    auto covered = [this, id, generation, all] {
      auto h = hints_.find(id);
      if (h == hints_.end() || h->second.generation != generation) return false;
      return std::all_of(all.begin(), all.end(), [&](const std::string& n) { return Acked(h->second.acked, n); });
    };
    if (targets.empty()) return Done(id, generation, covered(), sent);
    auto waiting = std::make_shared<size_t>(targets.size());
    auto frame_of = [txn](uint64_t rid) { return EncodeTxn(rid, txn); };
    for (const auto& [node_id, address] : targets) {
      ++stats_.copies_sent;
      peers_.Request(address, frame_of, options_.request_timeout,
                     [this, alive, id, waiting, generation, sent, node_id = node_id, covered](Result<Frame> f) {
                       if (alive.expired()) return;
                       auto h = hints_.find(id);
                       if (f.ok() && f->header.kind == static_cast<uint16_t>(Kind::kAck) && h != hints_.end() &&
                           h->second.generation == generation) {
                         h->second.acked.push_back(node_id);
                       }
                       if (--*waiting == 0) Done(id, generation, covered(), sent);
                     });
    }
  });
}

void HintedHandoff::Done(const ObjectId& id, uint64_t generation, bool all_acked, Timestamp sent, bool dropped) {
  --in_flight_;
  auto it = hints_.find(id);
  if (it == hints_.end()) return;
  if (all_acked && it->second.generation == generation) {
    // No write landed since the record was read: every hint kept up to now is covered.
    Forget(id, std::max(sent, it->second.ts));
    hints_.erase(it);
    ++(dropped ? stats_.dropped : stats_.handed_off);
  } else {
    it->second.busy = false;
  }
  stats_.pending = hints_.size();
}

}  // namespace ringstore
