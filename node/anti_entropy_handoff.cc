// AntiEntropy: handing off records no longer placed here, scrubbing, repairing corrupt
// records, the repair throttle and the status report (see anti_entropy.h).
#include <algorithm>
#include <unordered_set>

#include "node/anti_entropy.h"
#include "dht/lww_map.h"
#include "routing/placement.h"

namespace ringstore {

namespace {
constexpr auto kTrafficWindow = std::chrono::seconds(5);
constexpr size_t kScrubBatch = 64;
}  // namespace

void AntiEntropy::BeginHandoff() {
  offers_.clear();
  awaiting_.clear();
  pushes_.clear();
  // The new owners pull first; what is still missing after a round on an unchanged ring is
  // pushed. So a handoff waits for the ring to have stayed the same for a whole round.
  const bool stable = ring_digest_ == last_round_digest_;
  if (handoff_.empty() || !stable) {
    if (handoff_.empty() && leaving_ && stable && all_peers_ok_ && !drained_) {
      drained_ = true;
      log_->warn("decommission: every record is with its new owners");
      membership_.Depart();
    }
    return EndRound(nullptr);
  }
  handoff_ran_ = true;
  const RouteTable& live = membership_.table();
  for (const KeyVersion& v : handoff_) {
    auto replicas = PlaceReplicas(ring_, v.id, ReplicasOf(v.meta));
    if (replicas.empty()) continue;
    awaiting_[v.id] = {v.meta, static_cast<uint32_t>(replicas.size())};
    for (const NodeEntry* n : replicas) {
      const NodeEntry* e = live.Find(n->node_id);
      if (e != nullptr && e->state != NodeState::kDown && e->state != NodeState::kLeft) offers_[n->node_id].push_back(v);
    }
  }
  log_->info("anti-entropy: handing off {} records ({} bytes) that are no longer placed here, to {} nodes",
             handoff_.size(), handoff_bytes_, offers_.size());
  ProbeTargets();
}

// An empty SYNC_HAVE to each target first: one still catching up declines it (ServeHave), and
// then nothing it is a replica of can be purged this round, so those records are offered to
// no one (the others would only answer that they have them: a store read each, for nothing).
void AntiEntropy::ProbeTargets() {
  auto left = std::make_shared<size_t>(offers_.size());
  auto declined = std::make_shared<std::vector<std::string>>();
  std::weak_ptr<bool> alive = alive_;
  const auto done = [this, left, declined] {
    if (--*left > 0) return;
    std::unordered_set<ObjectId, ObjectIdHash> held_back;
    for (const std::string& node_id : *declined) {
      auto it = offers_.find(node_id);
      if (it == offers_.end()) continue;
      for (const KeyVersion& v : it->second) held_back.insert(v.id);
      offers_.erase(it);
    }
    if (!held_back.empty()) {
      for (auto& [node_id, list] : offers_) std::erase_if(list, [&](const KeyVersion& v) { return held_back.count(v.id) != 0; });
      std::erase_if(offers_, [](const auto& kv) { return kv.second.empty(); });
      log_->info("anti-entropy: {} records wait for the next round: a replica of theirs is still catching up",
                 held_back.size());
    }
    handoff_probed_ = true;
    HandoffNextTarget();
  };
  if (offers_.empty()) {
    handoff_probed_ = true;
    return HandoffNextTarget();
  }
  std::vector<std::string> targets;  // (done may change offers_ while this loop runs)
  for (const auto& [node_id, list] : offers_) targets.push_back(node_id);
  for (const std::string& node_id : targets) {
    const NodeEntry* e = membership_.table().Find(node_id);
    if (e == nullptr) {
      done();
      continue;
    }
    peers_.Request(
        e->address, [](uint64_t rid) { return EncodeSyncHaveRequest(rid, SyncHaveRequest{}); }, options_.request_timeout,
        [this, alive, node_id, declined, done, round = round_no_](Result<Frame> f) {
          if (alive.expired() || !active_ || round != round_no_) return;
          if (f.ok() && ErrorIn(*f).code() == Code::kUnavailable) declined->push_back(node_id);
          done();
        });
  }
}

void AntiEntropy::HandoffNextTarget() {
  if (!active_) return;
  if (RoundStale()) return EndRound("the ring changed during the handoff");
  if (!pushes_.empty() || in_flight_ > 0) return PushNext();
  if (offers_.empty()) return EndRound(nullptr);
  auto it = offers_.begin();
  const std::string node_id = it->first;
  const NodeEntry* e = membership_.table().Find(node_id);
  if (e == nullptr || e->state == NodeState::kDown || e->state == NodeState::kLeft) {
    offers_.erase(it);
    return HandoffNextTarget();
  }
  // One SYNC_HAVE at a time per target, in chunks.
  SyncHaveRequest req;
  auto& list = it->second;
  const size_t n = std::min(list.size(), size_t{1024});
  req.entries.assign(list.end() - static_cast<long>(n), list.end());
  list.resize(list.size() - n);
  // Only an old version needs the flag (a target takes any other), and it costs a placement per
  // ring: set for versions past half the grace, so that a target whose clock is ahead (by up
  // to that) still gets it.
  req.placed.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (PastGrace(req.entries[i].meta, 2)) req.placed[i] = PlacedHereLately(req.entries[i].id, req.entries[i].meta);
  }
  if (list.empty()) offers_.erase(it);
  const std::string address = e->address;
  std::weak_ptr<bool> alive = alive_;
  peers_.Request(
      address, [req](uint64_t rid) { return EncodeSyncHaveRequest(rid, req); }, options_.request_timeout,
      [this, alive, req, address, node_id, round = round_no_](Result<Frame> f) {
        if (alive.expired() || !active_ || round != round_no_) return;
        Result<SyncHaveReply> reply = Status::Unavailable("no reply");
        if (f.ok() && f->header.kind == static_cast<uint16_t>(Kind::kSyncHaveReply)) reply = DecodeSyncHaveReply(f->body);
        if (!reply.ok() || reply->have.size() != req.entries.size()) {
          Status why = f.ok() ? ErrorIn(*f) : f.status();
          if (why.ok()) why = Status::ProtocolError("bad reply");
          log_->info("anti-entropy: handoff to {} failed: {}", address, why.ToString());
          offers_.erase(node_id);  // its other offers too
          return HandoffNextTarget();  // those keys stay here, for the next round
        }
        for (size_t i = 0; i < req.entries.size(); ++i) {
          if (reply->have[i]) {
            Confirmed(req.entries[i].id, req.entries[i].meta);
          } else {
            pushes_.emplace_back(address, req.entries[i]);
            pending_bytes_ += req.entries[i].meta.size;
          }
        }
        HandoffNextTarget();
      });
}

void AntiEntropy::PushNext() {
  while (!pushes_.empty() && in_flight_ < options_.max_in_flight) {
    auto [address, v] = pushes_.front();
    pushes_.pop_front();
    ++in_flight_;
    SendCopy(address, v.id, v.meta.size, [this, v, round = round_no_](std::optional<RecordMeta> sent) {
      --in_flight_;
      pending_bytes_ -= std::min(pending_bytes_, v.meta.size);
      if (round != round_no_) {
        // An earlier round's push: it counts for no purge now (that round's replicas may not
        // be this one's), but a later round's handoff may be waiting for in_flight_ to drop.
        if (active_ && handoff_probed_) HandoffNextTarget();
        return;
      }
      if (sent && !Supersedes(*sent, v.meta) && !Supersedes(v.meta, *sent)) Confirmed(v.id, v.meta);
      if (active_) HandoffNextTarget();
    });
  }
}

void AntiEntropy::Mend(const std::string& address, const ObjectId& id, uint64_t size) {
  if (mends_in_flight_ >= options_.max_in_flight) return;  // the next round finds it again
  ++mends_in_flight_;
  SendCopy(address, id, size, [this](std::optional<RecordMeta>) { --mends_in_flight_; });
}

void AntiEntropy::SendCopy(const std::string& address, const ObjectId& id, uint64_t size,
                           std::function<void(std::optional<RecordMeta>)> done) {
  std::weak_ptr<bool> alive = alive_;
  Throttle(size, [this, alive, address, id, done = std::move(done)]() mutable {
    if (alive.expired()) return;
    store_.Get(id, [this, alive, address, id, done = std::move(done)](Result<Record> r) mutable {
      if (alive.expired()) return;
      if (!r.ok()) return done(std::nullopt);  // gone (purged, or damaged: the scrub repairs it)
      const RecordMeta meta = r->meta;
      const uint64_t bytes = r->value.size();
      const Txn txn = CopyRecordTxn(id, std::move(*r));
      peers_.Request(
          address, [txn](uint64_t rid) { return EncodeTxn(rid, txn); }, options_.request_timeout,
          [this, alive, meta, bytes, done = std::move(done)](Result<Frame> f) {
            if (alive.expired()) return;
            const bool acked = f.ok() && f->header.kind == static_cast<uint16_t>(Kind::kAck);
            if (acked) {
              ++stats_.pushed_records;
              stats_.pushed_bytes += bytes;
              CountTraffic(bytes);
            }
            done(acked ? std::optional<RecordMeta>(meta) : std::nullopt);
          });
    });
  });
}

void AntiEntropy::Confirmed(const ObjectId& id, const RecordMeta& meta) {
  auto it = awaiting_.find(id);
  if (it == awaiting_.end()) return;
  if (--it->second.second > 0) return;
  awaiting_.erase(it);
  // Every replica has this version or a newer one: drop our copy, unless it changed since.
  WriteOp op{id, Record{meta, {}}};
  op.purge = true;
  std::weak_ptr<bool> alive = alive_;
  store_.Apply({op}, [this, alive](Status s) {
    if (alive.expired()) return;
    if (s.ok()) {
      ++stats_.purged_records;
    } else {
      log_->warn("anti-entropy: dropping a handed-off copy failed: {}", s.ToString());
    }
  });
}

void AntiEntropy::Decommission() {
  if (leaving_) return;
  leaving_ = true;
  membership_.Leave();
}

// ---- scrub and repair ---------------------------------------------------------------

void AntiEntropy::ScrubNext() {
  if (!running_ || options_.scrub_bytes_per_s <= 0) return;
  std::weak_ptr<bool> alive = alive_;
  store_.Scan(scrub_cursor_, ObjectId::Max(), kScrubBatch, /*with_values=*/true,
              [this, alive](Result<std::vector<ScanEntry>> r) {
                if (alive.expired() || !running_) return;
                Clock::Duration wait = options_.scrub_pause;
                if (r.ok()) {
                  uint64_t bytes = 0;
                  for (const ScanEntry& e : *r) {
                    ++stats_.scrubbed;
                    bytes += e.record.value.size();
                    if (e.corrupt) {
                      ++stats_.corrupt_found;
                      log_->error("scrub: record {} fails its checksum: quarantined until it is repaired", e.id.Hex());
                      ReportCorrupt(e.id);
                    }
                  }
                  if (r->size() == kScrubBatch) {
                    scrub_cursor_ = r->back().id.Successor();
                    wait = std::chrono::duration_cast<Clock::Duration>(
                        std::chrono::duration<double>(static_cast<double>(bytes + 4096 * r->size()) / options_.scrub_bytes_per_s));
                  } else {
                    scrub_cursor_ = ObjectId::Min();  // a whole pass done
                  }
                } else {
                  log_->warn("scrub: store scan failed: {}", r.status().ToString());
                }
                Later(wait, [this] { ScrubNext(); });
              });
}

void AntiEntropy::ReportCorrupt(const ObjectId& id) {
  if (!repairing_.insert(id).second) return;
  std::vector<std::string> addresses;
  const RouteTable& live = membership_.table();
  for (const NodeEntry* n : PlaceReplicas(live, id, options_.replicas)) {
    if (n->node_id != self_id_ && n->state != NodeState::kDown) addresses.push_back(n->address);
  }
  Repair(id, std::move(addresses));
}

void AntiEntropy::Repair(const ObjectId& id, std::vector<std::string> addresses) {
  if (addresses.empty()) {
    repairing_.erase(id);
    log_->error("repair: no replica could give an intact copy of {} (it stays quarantined; the next scrub tries again)",
                id.Hex());
    return;
  }
  const std::string address = addresses.back();
  addresses.pop_back();
  std::weak_ptr<bool> alive = alive_;
  peers_.Request(
      address, [id](uint64_t rid) { return EncodeKeyRequest(Kind::kGet, rid, id); }, options_.request_timeout,
      [this, alive, id, addresses = std::move(addresses)](Result<Frame> f) mutable {
        if (alive.expired()) return;
        Result<Record> rec = IntactRecord(f);
        if (!rec.ok()) return Repair(id, std::move(addresses));
        // The same version rewrites damaged bytes; a newer one replaces them (Store::Apply).
        store_.Apply({WriteOp{id, std::move(*rec)}}, [this, alive, id, addresses = std::move(addresses)](Status s) mutable {
          if (alive.expired()) return;
          if (!s.ok()) return Repair(id, std::move(addresses));
          repairing_.erase(id);
          ++stats_.repaired;
          log_->info("repair: record {} restored from a replica", id.Hex().substr(0, 16));
        });
      });
}

// ---- throttle and status ------------------------------------------------------------

Result<Record> AntiEntropy::IntactRecord(const Result<Frame>& reply) {
  if (!reply.ok()) return reply.status();
  if (reply->header.kind != static_cast<uint16_t>(Kind::kGetReply)) return Status::NotFound("not a record");
  auto rec = DecodeRecordReply(Kind::kGetReply, reply->body);
  if (rec.ok() && !rec->Intact()) return Status::Corruption("record fails its checksum");
  return rec;
}

void AntiEntropy::Throttle(uint64_t bytes, std::function<void()> fn) {
  const double rate = options_.rate_bytes_per_s;
  if (rate <= 0) return fn();
  const auto now = clock_.Now();
  const double elapsed = std::chrono::duration<double>(now - tokens_at_).count();
  tokens_ = std::min(tokens_ + elapsed * rate, rate * 0.25);  // a quarter second of burst
  tokens_at_ = now;
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) return fn();
  Later(std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(-tokens_ / rate)), std::move(fn));
}

void AntiEntropy::CountTraffic(uint64_t bytes) {
  const auto now = clock_.Now();
  traffic_.emplace_back(now, bytes);
  while (!traffic_.empty() && now - traffic_.front().first > kTrafficWindow) traffic_.pop_front();
}

RepairStatus AntiEntropy::status() const {
  RepairStatus s = stats_;
  s.round_active = active_ ? 1 : 0;
  s.synced = synced() ? 1 : 0;
  s.leaves_pending = leaves_pending_;
  s.pending_bytes = pending_bytes_;
  if (active_ && !awaiting_.empty()) s.pending_bytes += handoff_bytes_;
  uint64_t recent = 0;
  const auto now = clock_.Now();
  for (const auto& [t, b] : traffic_) {
    if (now - t <= kTrafficWindow) recent += b;
  }
  s.rate_bytes_per_s = recent / static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(kTrafficWindow).count());
  if (!awaiting_.empty()) {  // still waiting for their new owners
    s.handoff_keys = awaiting_.size();
    s.handoff_bytes = 0;
    for (const auto& [id, w] : awaiting_) s.handoff_bytes += w.first.size;
  }
  s.leaving = leaving_ ? 1 : 0;
  s.left = drained_ ? 1 : 0;
  return s;
}

}  // namespace ringstore
