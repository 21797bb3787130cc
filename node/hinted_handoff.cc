#include "node/hinted_handoff.h"

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
  for (auto& [id, hint] : hints_) {
    if (in_flight_ >= options_.max_in_flight) break;
    if (hint.busy) continue;
    hint.busy = true;
    HandOff(id, hint.route_n, hint.generation);
  }
  // Orders compact: ids already handed off are dropped from the front.
  while (!order_.empty() && hints_.count(order_.front()) == 0) order_.pop_front();
  Arm();
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
    struct Round {
      size_t waiting = 0, acked = 0, wanted = 0;
    };
    auto round = std::make_shared<Round>();
    round->wanted = replicas.size();
    std::vector<std::string> targets;
    for (const NodeEntry* e : replicas) {
      if (e->state != NodeState::kDown) targets.push_back(e->address);
    }
    if (targets.empty()) return Done(id, generation, false, sent);
    round->waiting = targets.size();
    auto frame_of = [txn](uint64_t rid) { return EncodeTxn(rid, txn); };
    for (const auto& address : targets) {
      peers_.Request(address, frame_of, options_.request_timeout, [this, alive, id, round, generation, sent](Result<Frame> f) {
        if (alive.expired()) return;
        if (f.ok() && f->header.kind == static_cast<uint16_t>(Kind::kAck)) ++round->acked;
        if (--round->waiting == 0) Done(id, generation, round->acked == round->wanted, sent);
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
