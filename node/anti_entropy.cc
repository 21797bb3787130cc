// AntiEntropy: rounds, the store scan, and pulling from peers. Handoff, scrub and the
// throttle are in anti_entropy_handoff.cc; serving peers' requests in anti_entropy_server.cc;
// comparing listed leaves and copying records in in anti_entropy_pull.cc; tombstone collection
// in anti_entropy_tombstones.cc.
#include "node/anti_entropy.h"
#include "node/anti_entropy_run.h"

#include <algorithm>

#include "dht/lww_map.h"
#include "routing/placement.h"

namespace ringstore {

namespace {
constexpr auto kTick = std::chrono::milliseconds(50);
int64_t Ms(Clock::Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }
}  // namespace

Status AntiEntropy::ErrorIn(const Frame& f) {
  if (f.header.kind != static_cast<uint16_t>(Kind::kError)) return Status::Ok();
  auto e = DecodeError(f.body);
  return e.ok() ? e->ToStatus() : e.status();
}


AntiEntropy::AntiEntropy(AntiEntropyOptions options, std::string self_id, Clock& clock, Store& store,
                         PeerLinks& peers, Membership& membership, std::shared_ptr<spdlog::logger> log)
    : options_(options),
      self_id_(std::move(self_id)),
      clock_(clock),
      store_(store),
      peers_(peers),
      membership_(membership),
      log_(std::move(log)),
      history_(PlacementHistory::Decode(options_.placement_history)) {
  stats_.node_id = self_id_;
  history_.NotAfter(clock_.WallMicros() / 1000);
}

AntiEntropy::~AntiEntropy() {
  *alive_ = false;
  Stop();
}

void AntiEntropy::Start() {
  if (running_) return;
  running_ = true;
  next_round_at_ = clock_.Now() + options_.first_round;
  tick_timer_ = clock_.Schedule(kTick, [this] { Tick(); });
  if (options_.scrub_bytes_per_s > 0) {
    scrub_armed_ = true;
    Later(options_.first_round, [this] {
      scrub_armed_ = false;
      ScrubNext();
    });
  }
}

void AntiEntropy::Stop() {
  if (!running_) return;
  running_ = false;
  clock_.Cancel(tick_timer_);
}

void AntiEntropy::Later(Clock::Duration d, std::function<void()> fn) {
  std::weak_ptr<bool> alive = alive_;
  clock_.Schedule(d, [alive, fn = std::move(fn)] {
    if (auto a = alive.lock(); a && *a) fn();
  });
}

bool AntiEntropy::synced() const {
  return synced_once_ && synced_digest_ == membership_.table().RingDigest();
}

void AntiEntropy::Tick() {
  if (!running_) return;
  tick_timer_ = clock_.Schedule(kTick, [this] { Tick(); });
  const auto now = clock_.Now();
  const uint64_t ring = membership_.table().RingDigest();
  // Before its first round, the ring a node learns as it joins is no news to debounce: it
  // waits first_round at most.
  const Clock::Duration settle = stats_.rounds == 0 ? std::min(options_.first_round, options_.ring_settle)
                                                    : options_.ring_settle;
  if (ring != seen_ring_) {
    seen_ring_ = ring;
    ring_changed_at_ = now;
    if (ring != last_round_digest_) next_round_at_ = std::min(next_round_at_, now + settle);
  }
  if (active_ || !membership_.joined() || now < next_round_at_) return;
  if (now - ring_changed_at_ < settle) return;
  BeginRound();
}

bool AntiEntropy::RoundStale() const { return !running_ || membership_.table().RingDigest() != ring_digest_; }

void AntiEntropy::BeginRound() {
  active_ = true;
  ++round_no_;
  runs_in_flight_ = 0;
  retries_waiting_ = 0;
  handoff_begun_ = false;
  handoff_probed_ = false;
  claimed_.clear();
  missed_ = false;
  ring_ = membership_.table();
  ring_digest_ = ring_.RingDigest();
  round_started_ = clock_.Now();
  round_started_wall_ms_ = clock_.WallMicros() / 1000;
  scan_cursor_ = ObjectId::Min();
  building_.clear();
  handoff_.clear();
  owned_keys_ = owned_bytes_ = handoff_bytes_ = 0;
  lacking_.clear();
  unreachable_keys_ = 0;
  pulled_this_round_ = 0;
  moved_at_start_ = stats_.pushed_records + stats_.purged_records;
  handoff_ran_ = false;
  gc_.clear();
  leaves_pending_ = pending_bytes_ = 0;
  all_peers_ok_ = true;
  retries_.clear();
  // Every other node on the ring gets a digest, empty or not: a peer that shares keys with us
  // but holds none of them must still find out what it lacks.
  // (By entry, in key order: the nodes with points on the ring.)
  for (const auto& [id, e] : ring_.entries()) {
    if (RouteTable::OnRing(e) && e.vnodes > 0 && id != self_id_) building_.emplace_hint(building_.end(), id, RangeDigest());
  }
  stats_.round_active = 1;
  log_->debug("anti-entropy round {}: {} peers on the ring", stats_.rounds + 1, building_.size());
  ScanNext();
}

void AntiEntropy::ScanNext() {
  if (RoundStale()) return EndRound("the ring changed during the scan");
  std::weak_ptr<bool> alive = alive_;
  store_.Scan(scan_cursor_, ObjectId::Max(), options_.scan_batch, /*with_values=*/false,
              [this, alive, round = round_no_](Result<std::vector<ScanEntry>> r) {
                if (alive.expired() || !active_ || round != round_no_) return;
                if (!r.ok()) {
                  log_->warn("anti-entropy: store scan failed: {}", r.status().ToString());
                  return EndRound("scan failed");
                }
                for (const ScanEntry& e : *r) {
                  if (e.corrupt) {
                    ReportCorrupt(e.id);
                    continue;
                  }
                  auto replicas = PlaceReplicas(ring_, e.id, ReplicasOf(e.record.meta));
                  const bool mine = std::any_of(replicas.begin(), replicas.end(),
                                                [&](const NodeEntry* n) { return n->node_id == self_id_; });
                  if (!mine) {
                    if (handoff_.size() < options_.max_handoff) handoff_.push_back(KeyVersion{e.id, e.record.meta});
                    handoff_bytes_ += e.record.meta.size;
                    continue;
                  }
                  ++owned_keys_;
                  owned_bytes_ += e.record.meta.size;
                  if (Collectable(e.record.meta) && gc_.size() < options_.max_gc) {
                    GcCandidate& c = gc_[e.id];
                    c.meta = e.record.meta;
                    for (const NodeEntry* n : replicas) {
                      if (n->node_id != self_id_) c.pending.push_back(n->node_id);
                    }
                  }
                  for (const NodeEntry* n : replicas) {
                    if (n->node_id == self_id_) continue;
                    RangeDigest& d = building_[n->node_id];
                    d.Add(e.id, e.record.meta);
                    d.CountEntry();
                  }
                }
                if (r->size() < options_.scan_batch) return FinishScan();
                scan_cursor_ = r->back().id.Successor();
                // Yield to the strand between batches: requests keep flowing during a scan.
                Later(Clock::Duration::zero(), [this, round] {
                  if (active_ && round == round_no_) ScanNext();
                });
              });
}

void AntiEntropy::FinishScan() {
  for (auto& [id, d] : building_) d.Finish();
  answer_trees_ = std::move(building_);
  building_.clear();
  answer_digest_ = ring_digest_;
  answer_ready_ = true;
  stats_.owned_keys = owned_keys_;
  stats_.owned_bytes = owned_bytes_;
  stats_.handoff_keys = handoff_.size();
  stats_.handoff_bytes = handoff_bytes_;
  peer_queue_.clear();
  for (const auto& [id, d] : answer_trees_) peer_queue_.push_back(id);
  peers_total_ = peer_queue_.size();
  peers_done_ = 0;
  stats_.peers = peers_total_;
  stats_.peers_synced = 0;
  log_->debug("anti-entropy: scan done in {} ms: {} owned, {} to hand off, {} peers", Ms(clock_.Now() - round_started_),
              owned_keys_, handoff_.size(), peers_total_);
  NextPeer();
}

void AntiEntropy::NextPeer() {
  if (picking_) {
    repick_ = true;  // a run that ended at once, inside the loop below: it looks again
    return;
  }
  if (RoundStale()) return EndRound("the ring changed");
  const uint64_t round = round_no_;
  picking_ = true;
  do {
    repick_ = false;
    while (active_ && round == round_no_ && !peer_queue_.empty() &&
           runs_in_flight_ < std::max<size_t>(1, options_.max_peers_at_once)) {
      const std::string id = peer_queue_.front();
      peer_queue_.pop_front();
      const NodeEntry* live = membership_.table().Find(id);
      auto tree = answer_trees_.find(id);
      if (live == nullptr || live->state == NodeState::kDown || live->state == NodeState::kLeft) {
        // Its copies cannot be checked: every key shared with it counts as under-replicated.
        all_peers_ok_ = false;
        if (tree != answer_trees_.end()) unreachable_keys_ += tree->second.entries();
        ++peers_done_;
        continue;
      }
      auto run = std::make_shared<PeerRun>();
      run->round = round_no_;
      run->node_id = id;
      run->address = live->address;
      run->level = 0;
      run->indices = {0};
      run->started = clock_.Now();
      ++runs_in_flight_;
      AskTree(run);
    }
  } while (repick_ && active_ && round == round_no_);
  picking_ = false;
  if (active_ && round == round_no_ && peer_queue_.empty() && runs_in_flight_ == 0 && retries_waiting_ == 0 &&
      !handoff_begun_) {
    handoff_begun_ = true;
    BeginHandoff();
  }
}

bool AntiEntropy::Current(const PeerRun& run) const { return active_ && run.round == round_no_; }

void AntiEntropy::AskTree(std::shared_ptr<PeerRun> run) {
  if (!Current(*run)) return;
  if (RoundStale()) return EndRound("the ring changed");
  if (run->indices.empty()) {
    // This level is done: descend, or list the differing leaves.
    std::sort(run->next.begin(), run->next.end());
    if (run->level + 1 >= RangeDigest::kDepth) {
      run->leaves = std::move(run->next);
      run->next.clear();
      run->differing = run->leaves;
      leaves_pending_ += run->leaves.size();
      return AskKeys(run);
    }
    ++run->level;
    run->indices = std::move(run->next);
    run->next.clear();
    if (run->indices.empty()) return MaybeFinish(run);
  }
  SyncTreeRequest req;
  req.scope = SyncScope{ring_digest_, options_.replicas, self_id_};
  req.level = run->level;
  const size_t n = std::min(run->indices.size(), kMaxSyncIndices);
  req.indices.assign(run->indices.begin(), run->indices.begin() + static_cast<long>(n));
  run->indices.erase(run->indices.begin(), run->indices.begin() + static_cast<long>(n));
  run->asking = true;
  std::weak_ptr<bool> alive = alive_;
  peers_.Request(
      run->address, [req](uint64_t rid) { return EncodeSyncTreeRequest(rid, req); }, options_.request_timeout,
      [this, alive, run, req](Result<Frame> f) {
        if (alive.expired()) return;
        run->asking = false;
        if (!Current(*run)) return;
        if (!f.ok()) return Fail(run, f.status().ToString());
        if (const Status s = ErrorIn(*f); !s.ok()) {
          if (s.code() == Code::kUnavailable) {
            // Its digest for this ring is not built yet (a peer builds it in its own round,
            // which may be seconds away). If we hold nothing it shares with us (we just
            // joined), every leaf where it holds anything differs: there is nothing for its
            // digest to narrow down, so list them all now. Otherwise ask again later.
            if (!run->listing_all && answer_trees_[run->node_id].entries() == 0) return ListAll(run);
            if (RetryLater(run)) return;
          }
          return Fail(run, s.ToString());
        }
        auto reply = DecodeSyncTreeReply(f->body);
        if (!reply.ok() || reply->hashes.size() != req.indices.size() * RangeDigest::kFanout) {
          return Fail(run, "bad SYNC_TREE reply");
        }
        const RangeDigest& mine = answer_trees_[run->node_id];
        for (size_t i = 0; i < req.indices.size(); ++i) {
          const auto children = mine.Children(req.level, req.indices[i]);
          for (uint32_t c = 0; c < RangeDigest::kFanout; ++c) {
            if (children[c] != reply->hashes[i * RangeDigest::kFanout + c]) {
              run->next.push_back(req.indices[i] * RangeDigest::kFanout + c);
            }
          }
        }
        AskTree(run);
      });
}

bool AntiEntropy::RetryLater(const std::shared_ptr<PeerRun>& run) {
  Retry& retry = retries_[run->node_id];
  const Clock::Duration wait = options_.retry_delay * (1u << std::min<uint32_t>(retry.count, 3));
  if (retry.waited + wait > options_.retry_delay * options_.max_retries) return false;
  // Come back to it after the others, backing off.
  ++retry.count;
  retry.waited += wait;
  --runs_in_flight_;
  run->round = 0;
  ++retries_waiting_;
  const uint64_t round = round_no_;
  Later(wait, [this, id = run->node_id, round] {
    if (!active_ || round != round_no_) return;
    --retries_waiting_;
    peer_queue_.push_back(id);
    NextPeer();
  });
  NextPeer();
  return true;
}

void AntiEntropy::ListAll(std::shared_ptr<PeerRun> run) {
  run->listing_all = true;
  run->indices.clear();
  run->next.clear();
  run->leaves.resize(RangeDigest::kLeaves);
  for (uint32_t leaf = 0; leaf < RangeDigest::kLeaves; ++leaf) run->leaves[leaf] = leaf;
  run->differing = run->leaves;
  leaves_pending_ += run->leaves.size();
  AskKeys(run);
}

void AntiEntropy::AskKeys(std::shared_ptr<PeerRun> run) {
  if (!Current(*run)) return;
  if (RoundStale()) return EndRound("the ring changed");
  if (run->failed || run->leaves.empty()) return MaybeFinish(run);
  if (run->asking || run->pulls.size() > 4 * kMaxSyncEntries) return;  // one listing at a time, bounded backlog
  SyncKeysRequest req;
  req.scope = SyncScope{ring_digest_, options_.replicas, self_id_};
  if (auto part = run->resume.find(run->leaves.front()); part != run->resume.end()) {
    // The rest of a leaf compared in part: alone, from where the last part ended.
    req.leaves = {part->first};
    req.start = part->second;
  } else {
    for (uint32_t leaf : run->leaves) {
      if (req.leaves.size() == 64 || run->resume.count(leaf) != 0) break;
      req.leaves.push_back(leaf);
    }
  }
  run->asking = true;
  std::weak_ptr<bool> alive = alive_;
  peers_.Request(
      run->address, [req](uint64_t rid) { return EncodeSyncKeysRequest(rid, req); }, options_.request_timeout,
      [this, alive, run, start = req.start](Result<Frame> f) {
        if (alive.expired()) return;
        run->asking = false;
        if (!Current(*run)) return;
        if (!f.ok()) return Fail(run, f.status().ToString());
        if (f->header.kind != static_cast<uint16_t>(Kind::kSyncKeysReply)) {
          // Listing all before its digest was ready, the first listing can find the peer not
          // placing keys by this ring yet (it has not heard of the join): ask again later.
          if (ErrorIn(*f).code() == Code::kUnavailable && run->listing_all && !run->listed) {
            leaves_pending_ -= std::min<uint64_t>(leaves_pending_, run->leaves.size());
            run->leaves.clear();
            run->differing.clear();
            if (RetryLater(run)) return;
          }
          return Fail(run, "SYNC_KEYS refused");
        }
        auto reply = DecodeSyncKeysReply(f->body);
        if (!reply.ok() || reply->done.empty() ||
            (reply->cut && (RangeDigest::LeafOf(*reply->cut) != reply->done.back() || (start && *reply->cut <= *start))) ||
            (start && (reply->done.size() != 1 || reply->done[0] != RangeDigest::LeafOf(*start)))) {
          return Fail(run, "bad SYNC_KEYS reply");
        }
        // Their entries, by leaf; the leaves answered leave the to-do list.
        std::map<uint32_t, std::vector<KeyVersion>> by_leaf;
        for (uint32_t leaf : reply->done) by_leaf[leaf];
        for (auto& v : reply->entries) {
          auto it = by_leaf.find(RangeDigest::LeafOf(v.id));
          if (it != by_leaf.end()) it->second.push_back(v);
        }
        run->listed = true;
        std::erase_if(run->leaves, [&](uint32_t l) { return by_leaf.count(l) != 0; });
        auto batch = std::make_shared<LeafBatch>();
        batch->start = start;
        batch->cut = reply->cut;
        for (auto& [leaf, theirs] : by_leaf) {
          ++run->leaves_in_flight;
          batch->leaves.push_back(leaf);
          batch->theirs.push_back(std::move(theirs));
        }
        if (!batch->leaves.empty()) CompareLeaves(run, batch);
        AskKeys(run);
      });
}

void AntiEntropy::Fail(std::shared_ptr<PeerRun> run, const std::string& why) {
  run->failed = true;
  if (run->why.empty()) run->why = why;
  MaybeFinish(run);
}

void AntiEntropy::MaybeFinish(std::shared_ptr<PeerRun> run) {
  if (!Current(*run) || run->asking || run->leaves_in_flight > 0 || run->pulls_in_flight > 0 || run->storing > 0) return;
  StorePulls(run);  // a failed run may hold a partial batch
  if (run->storing > 0) return;
  if (!run->failed && (!run->leaves.empty() || !run->pulls.empty() || !run->indices.empty())) return;
  if (!run->failed) ConfirmTombstones(*run);
  if (run->failed) {
    all_peers_ok_ = false;
    if (auto t = answer_trees_.find(run->node_id); t != answer_trees_.end()) unreachable_keys_ += t->second.entries();
    log_->info("anti-entropy: could not compare with {} at {}: {}", run->node_id.substr(0, 8), run->address, run->why);
  }
  leaves_pending_ -= std::min<uint64_t>(leaves_pending_, run->leaves.size());
  log_->debug("anti-entropy: {} {}: {} leaves differed{}, {} records pulled, in {} ms", run->failed ? "gave up on" : "compared with",
              run->node_id.substr(0, 8), run->differing.size(), run->listing_all ? " (all listed)" : "", run->pulled,
              Ms(clock_.Now() - run->started));
  run->round = 0;  // done: late callbacks see a stale run
  --runs_in_flight_;
  ++peers_done_;
  stats_.peers_synced = peers_done_;
  NextPeer();
}

void AntiEntropy::EndRound(const char* why) {
  if (!active_) return;
  active_ = false;
  stats_.round_active = 0;
  const auto took = clock_.Now() - round_started_;
  const bool complete = why == nullptr;
  if (complete) {
    ++stats_.rounds;
    stats_.last_round_ms = static_cast<uint64_t>(Ms(took));
    stats_.under_replicated = lacking_.size() + unreachable_keys_;
    last_round_digest_ = ring_digest_;
    CollectTombstones();
    if (all_peers_ok_ && !missed_) {
      synced_digest_ = ring_digest_;
      synced_once_ = true;
      NoteInStep();
      // (A node that joined with a table of only itself has no peer to catch up with yet.)
      if (!caught_up_ && peers_total_ > 0) {
        caught_up_ = true;
        if (on_first_sync_) on_first_sync_();
      }
    }
    stats_.synced = synced() ? 1 : 0;
    if (stats_.pulled_records > 0 || !handoff_.empty() || !all_peers_ok_) {
      log_->info("anti-entropy round {} done in {} ms: {} owned records, {} handed off or waiting, pulled {} records "
                 "({} bytes) so far, {} under-replicated{}",
                 stats_.rounds, Ms(took), owned_keys_, handoff_.size(), stats_.pulled_records, stats_.pulled_bytes,
                 stats_.under_replicated, all_peers_ok_ ? "" : " (some peers could not be compared)");
    }
    // A round that moved data, or left some to hand off, is followed soon by another, so that
    // a join or a decommission finishes in a few rounds, not a few intervals.
    // (Work that could not progress is not a reason: an unreachable peer, or a handoff whose
    // replica is down, will not get anywhere sooner.)
    const bool busy = pulled_this_round_ > 0 || stats_.pushed_records + stats_.purged_records > moved_at_start_ ||
                      (!handoff_.empty() && !handoff_ran_) || leaving_;
    next_round_at_ = clock_.Now() + (busy && !drained_ ? options_.busy_pause : options_.interval);
  } else {
    log_->info("anti-entropy round stopped after {} ms: {}", Ms(took), why);
    next_round_at_ = clock_.Now();  // again, once the ring has settled
  }
  pending_bytes_ = 0;
  leaves_pending_ = 0;
  // What is still here to hand off: all of it when the handoff waited, else what it could not place.
  if (complete && handoff_ran_) {
    stats_.handoff_keys = awaiting_.size();
    stats_.handoff_bytes = 0;
    for (const auto& [id, w] : awaiting_) stats_.handoff_bytes += w.first.size;
  }
  awaiting_.clear();
}

bool AntiEntropy::Shared(const RouteTable& table, const ObjectId& id, const RecordMeta& meta,
                         const std::string& peer) const {
  bool me = false, them = false;
  for (const NodeEntry* n : PlaceReplicas(table, id, ReplicasOf(meta))) {
    me |= n->node_id == self_id_;
    them |= n->node_id == peer;
  }
  return me && them;
}

}  // namespace ringstore
