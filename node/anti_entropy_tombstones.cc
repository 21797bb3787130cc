// AntiEntropy: tombstone collection (see anti_entropy.h and docs/repair.md §5). A round notes
// its tombstones past the grace as candidates; each peer compared confirms a candidate by
// holding the same version or nothing of its key; once every replica did, the tombstone is
// purged.
#include <algorithm>

#include "node/anti_entropy.h"

namespace ringstore {

bool AntiEntropy::Collectable(const RecordMeta& meta) const { return meta.tombstone() && PastGrace(meta); }

bool AntiEntropy::PastGrace(const RecordMeta& meta, int64_t divisor) const {
  const int64_t grace_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.tombstone_grace).count() / divisor;
  return ringstore::PastGrace(meta.ts, clock_.WallMicros() / 1000, grace_ms);
}

int64_t AntiEntropy::VouchHorizonMs() const {
  // A delete this node missed reached the replicas at most replace_after (on fallbacks) plus a
  // round or two (digests a peer answers from) before its last comparison with them; it is
  // collected a grace after it was made. Half of what is left, for what those miss (clock
  // skew, a push's own delay; docs/repair.md §5 and §9 say what they do not cover).
  const auto horizon = (options_.tombstone_grace - options_.replace_after - 2 * options_.interval) / 2;
  return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(horizon).count());
}

bool AntiEntropy::PlacedHereLately(const ObjectId& id, const RecordMeta& meta) const {
  const int64_t horizon_ms = VouchHorizonMs();
  if (horizon_ms == 0) return false;
  return history_.PlacedSince(id, ReplicasOf(meta), self_id_, clock_.WallMicros() / 1000 - horizon_ms);
}

void AntiEntropy::NoteInStep() {
  if (!history_.Knows(ring_)) return;  // a partial view of the ring (placement_history.h)
  history_.Note(ring_, round_started_wall_ms_, clock_.WallMicros() / 1000 - VouchHorizonMs());
  if (!options_.save_placement_history) return;
  // Saved when the ring changed, else every sixteenth of the grace: a restart then finds the
  // times at most that much older than they were, which only declines more old copies.
  const int64_t every_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.tombstone_grace).count() / 16;
  if (ring_digest_ == history_saved_digest_ && round_started_wall_ms_ - history_saved_ms_ < every_ms) return;
  options_.save_placement_history(history_.Encode());
  history_saved_digest_ = ring_digest_;
  history_saved_ms_ = round_started_wall_ms_;
}

void AntiEntropy::ConfirmTombstones(const PeerRun& run) {
  // Candidates outside the leaves that differed: the peer's digest of that leaf equals ours,
  // so it holds the same versions there (as of its last scan).
  for (auto& [id, c] : gc_) {
    if (!std::binary_search(run.differing.begin(), run.differing.end(), RangeDigest::LeafOf(id))) {
      std::erase(c.pending, run.node_id);
    }
  }
}

void AntiEntropy::CollectTombstones() {
  // A peer that could not be compared may hold an older version of a key that no tombstone
  // replica of ours names (a key rewritten with a smaller N): collect nothing this round.
  if (!all_peers_ok_) {
    gc_.clear();
    return;
  }
  std::vector<WriteOp> ops;
  for (auto& [id, c] : gc_) {
    if (!c.pending.empty() || c.blocked) continue;
    WriteOp op{id, Record{c.meta, {}}};
    op.purge = true;
    ops.push_back(std::move(op));
  }
  gc_.clear();
  if (ops.empty()) return;
  const size_t n = ops.size();
  std::weak_ptr<bool> alive = alive_;
  store_.Apply(std::move(ops), [this, alive, n](Status s) {
    if (alive.expired()) return;
    if (s.ok()) {
      stats_.tombstones_collected += n;
      log_->debug("anti-entropy: collected {} tombstones every replica had", n);
    } else {
      log_->warn("anti-entropy: collecting tombstones failed: {}", s.ToString());
    }
  });
}

}  // namespace ringstore
