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

void HintedHandoff::Note(const ObjectId& id, uint32_t route_n) {
  auto [it, fresh] = hints_.try_emplace(id);
  it->second.route_n = std::max(it->second.route_n, route_n);
  ++it->second.generation;
  if (fresh) {
    ++stats_.hinted;
    order_.push_back(id);
    while (hints_.size() > options_.max_hints && !order_.empty()) {
      auto old = hints_.find(order_.front());
      order_.pop_front();
      if (old == hints_.end() || old->second.busy) continue;
      hints_.erase(old);
      if (++stats_.dropped % 1000 == 1) log_->warn("hinted handoff: over {} hints, dropping the oldest", options_.max_hints);
    }
  }
  stats_.pending = hints_.size();
  Arm();
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
    if (!r.ok()) return Done(id, generation, r.status().IsNotFound());  // nothing left to hand off
    const int64_t grace_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.tombstone_grace).count();
    if (PastGrace(r->meta.ts, clock_.WallMicros() / 1000, grace_ms)) {
      log_->info("handoff: the hinted copy of {} is older than the tombstone grace: dropped, not handed off", id.Hex());
      return Done(id, generation, true, /*dropped=*/true);
    }
    std::vector<const NodeEntry*> replicas = PlaceReplicas(membership_.table(), id, route_n);
    for (const NodeEntry* e : replicas) {
      if (e->node_id == self_id_) return Done(id, generation, true);  // a replica now: nothing to hand
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
    if (targets.empty()) return Done(id, generation, false);
    round->waiting = targets.size();
    auto frame_of = [txn](uint64_t rid) { return EncodeTxn(rid, txn); };
    for (const auto& address : targets) {
      peers_.Request(address, frame_of, options_.request_timeout, [this, alive, id, round, generation](Result<Frame> f) {
        if (alive.expired()) return;
        if (f.ok() && f->header.kind == static_cast<uint16_t>(Kind::kAck)) ++round->acked;
        if (--round->waiting == 0) Done(id, generation, round->acked == round->wanted);
      });
    }
  });
}

void HintedHandoff::Done(const ObjectId& id, uint64_t generation, bool all_acked, bool dropped) {
  --in_flight_;
  auto it = hints_.find(id);
  if (it == hints_.end()) return;
  if (all_acked && it->second.generation == generation) {
    hints_.erase(it);
    ++(dropped ? stats_.dropped : stats_.handed_off);
  } else {
    it->second.busy = false;
  }
  stats_.pending = hints_.size();
}

}  // namespace ringstore
