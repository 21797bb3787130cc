// AntiEntropy: comparing the leaves a peer listed with ours, and copying in the records it
// has newer (see anti_entropy.h and docs/repair.md §1).
#include <algorithm>
#include <map>
#include <unordered_set>

#include "dht/lww_map.h"
#include "node/anti_entropy.h"
#include "node/anti_entropy_run.h"

namespace ringstore {

namespace {
// Pulled records are stored in batches of this many records or bytes.
constexpr size_t kPullBatch = 64;
constexpr uint64_t kPullBatchBytes = 4u << 20;
// A SYNC_GET asks for at most this many bytes of values (one larger record goes alone), with
// at most this many such requests in flight per peer. Larger requests cost less CPU per
// record but make the peer answer in bursts that foreground requests wait behind: with 16 KiB
// values, a join's GET p99 was worse with 256 KiB than with 64 KiB (docs/repair.md §8.4).
constexpr uint64_t kPullRequestBytes = 64u << 10;
constexpr size_t kPullRequestsInFlight = 4;
}  // namespace

void AntiEntropy::CompareLeaves(std::shared_ptr<PeerRun> run, std::shared_ptr<LeafBatch> batch) {
  // Our side of the leaves, read now (the digest was built from an older scan): leaves that
  // follow each other in one store scan. A leaf the peer listed from an id on is read from it.
  ScanLeaves(batch->leaves, batch->next, batch->Begin(batch->leaves[batch->next]), kMaxSyncEntries + 1,
             [this, run, batch](Result<LeafScan> r) {
               if (!Current(*run)) return;
               if (!r.ok()) {
                 run->leaves_in_flight -= batch->leaves.size() - batch->next;
                 leaves_pending_ -= std::min<uint64_t>(leaves_pending_, batch->leaves.size() - batch->next);
                 return Fail(run, r.status().ToString());
               }
               for (size_t k = 0; k < r->leaves.size(); ++k) {
                 --run->leaves_in_flight;
                 const uint32_t leaf = batch->leaves[batch->next];
                 // What both sides listed of the leaf: from where the peer's listing began, to
                 // where the first of the two listings ended.
                 const ObjectId begin = batch->Begin(leaf);
                 const ObjectId end = r->cut ? std::min(batch->End(leaf), *r->cut) : batch->End(leaf);
                 CompareLeaf(run, begin, end, batch->theirs[batch->next], r->leaves[k]);
                 if (end < RangeDigest::LeafEnd(leaf)) {
                   // Compared in part: the rest is listed again from there, before other leaves.
                   run->resume[leaf] = end;
                   run->leaves.insert(run->leaves.begin(), leaf);
                 } else {
                   run->resume.erase(leaf);
                   if (leaves_pending_ > 0) --leaves_pending_;
                 }
                 ++batch->next;
               }
               if (batch->next < batch->leaves.size()) CompareLeaves(run, batch);
               PumpPulls(run);
               AskKeys(run);
             });
}

void AntiEntropy::CompareLeaf(const std::shared_ptr<PeerRun>& run, const ObjectId& begin, const ObjectId& end,
                              const std::vector<KeyVersion>& theirs_listed, const std::vector<ScanEntry>& ours) {
  const auto inside = [&](const ObjectId& id) { return !(id < begin) && id < end; };
  std::vector<KeyVersion> theirs;
  for (const KeyVersion& v : theirs_listed) {
    if (inside(v.id)) theirs.push_back(v);
  }
  // held: every intact record of the range; mine: those our copies' N places on
  // both of us (the peer's listing uses its copies' N, which can differ, R4).
  std::map<ObjectId, RecordMeta> held, mine;
  for (const ScanEntry& e : ours) {
    if (e.corrupt || !inside(e.id)) continue;
    held.emplace(e.id, e.record.meta);
    if (Shared(ring_, e.id, e.record.meta, run->node_id)) mine.emplace(e.id, e.record.meta);
  }
  std::unordered_set<ObjectId, ObjectIdHash> seen;
  for (const KeyVersion& v : theirs) {
    seen.insert(v.id);
    auto it = held.find(v.id);
    // A tombstone past its grace for a key we hold nothing of: we collected it
    // (or never had the key); pulling it would undo the collection.
    bool pull = it == held.end() && !Collectable(v.meta);
    if (it != held.end()) {
      const bool map = IsMapRecord(v.meta) || IsMapRecord(it->second);
      const bool differ = Supersedes(v.meta, it->second) || Supersedes(it->second, v.meta);
      pull = map ? differ : Supersedes(v.meta, it->second);
      const bool ours_newer = map ? differ : Supersedes(it->second, v.meta);
      if (ours_newer && mine.count(v.id) != 0) {
        if (!map) lacking_.insert(v.id);  // it pulls ours in its own round
      } else if (ours_newer) {
        Mend(run->address, v.id, it->second.size);
      }
    }
    // Another peer's copy of this version (or a newer one) is already on its way:
    // one is enough. (Maps merge, so each differing copy comes.)
    if (pull && !IsMapRecord(v.meta)) {
      auto [c, fresh] = claimed_.try_emplace(v.id, v.meta);
      if (!fresh && !Supersedes(v.meta, c->second)) {
        pull = false;
      } else {
        c->second = v.meta;
      }
    }
    if (pull) {
      run->pulls.push_back(v);
      pending_bytes_ += v.meta.size;
    }
  }
  for (const auto& [id, meta] : mine) {
    if (seen.count(id) == 0 && !Collectable(meta)) lacking_.insert(id);
  }
  // Tombstones to collect in this range: the peer confirms one by holding the same
  // version or nothing of the key.
  std::map<ObjectId, const KeyVersion*> by_id;
  for (const KeyVersion& v : theirs) by_id.emplace(v.id, &v);
  for (auto g = gc_.lower_bound(begin); g != gc_.end() && g->first < end; ++g) {
    auto t = by_id.find(g->first);
    const bool same = t == by_id.end() || (!Supersedes(t->second->meta, g->second.meta) &&
                                           !Supersedes(g->second.meta, t->second->meta));
    if (same) {
      std::erase(g->second.pending, run->node_id);
    } else {
      g->second.blocked = true;
    }
  }
}

void AntiEntropy::PumpPulls(std::shared_ptr<PeerRun> run) {
  // A peer that announced SYNC_GET is asked for many records per request, where a GET each
  // made a request and a reply per record (docs/repair.md §8.4); until its HELLO_REPLY has
  // come, and from a peer without it, each record is a GET.
  const bool batched = peers_.Announced(run->address, kSyncGetFeature);
  const size_t limit = batched ? std::min(options_.max_in_flight, kPullRequestsInFlight) : options_.max_in_flight;
  while (Current(*run) && !run->failed && !run->pulls.empty() && run->pulls_in_flight < limit) {
    std::vector<KeyVersion> vs;
    uint64_t bytes = 0;
    do {
      vs.push_back(run->pulls.front());
      bytes += run->pulls.front().meta.size;
      run->pulls.pop_front();
    } while (batched && !run->pulls.empty() && vs.size() < kMaxSyncGetIds &&
             bytes + run->pulls.front().meta.size <= kPullRequestBytes);
    ++run->pulls_in_flight;
    std::weak_ptr<bool> alive = alive_;
    Throttle(bytes, [this, alive, run, vs = std::move(vs), bytes, batched] {
      // The link may have dropped during the wait and been opened again, its HELLO_REPLY not
      // come yet: as when it drops with requests out, the run with this peer fails.
      if (batched && !peers_.Announced(run->address, kSyncGetFeature)) {
        return TakeReply(run, vs, bytes, batched, Status::Unavailable("link to peer " + run->address + " reopened"));
      }
      auto build = [&vs, batched](uint64_t rid) {
        if (!batched) return EncodeKeyRequest(Kind::kGet, rid, vs.front().id);
        SyncGetRequest req;
        for (const KeyVersion& v : vs) req.ids.push_back(v.id);
        return EncodeSyncGetRequest(rid, req);
      };
      peers_.Request(run->address, build, options_.request_timeout, [this, alive, run, vs, bytes, batched](Result<Frame> f) {
        if (!alive.expired()) TakeReply(run, vs, bytes, batched, f);
      });
    });
  }
}

void AntiEntropy::TakeReply(const std::shared_ptr<PeerRun>& run, const std::vector<KeyVersion>& vs, uint64_t bytes,
                            bool batched, const Result<Frame>& f) {
  --run->pulls_in_flight;
  pending_bytes_ -= std::min(pending_bytes_, bytes);
  const auto fail = [&run](const Status& s) {
    run->failed = true;
    if (run->why.empty()) run->why = s.ToString();
  };
  if (!f.ok()) {
    fail(f.status());
  } else if (!batched) {
    TakePulled(run, vs.front(), IntactRecord(f));
  } else if (f->header.kind == static_cast<uint16_t>(Kind::kError)) {
    // Refused (busy, shutting down): none of them came, as when a GET is refused.
    for (const KeyVersion& v : vs) TakePulled(run, v, Status::NotFound("SYNC_GET refused"));
  } else if (Result<SyncGetReply> reply = PulledRecords(*f, vs.size()); !reply.ok()) {
    fail(reply.status());
  } else {
    for (size_t k = 0; k < vs.size(); ++k) {
      std::optional<Record>& r = reply->records[k];
      TakePulled(run, vs[k], !r ? Result<Record>(Status::NotFound("not held")) :
                             r->Intact() ? Result<Record>(std::move(*r)) :
                                           Result<Record>(Status::Corruption("record fails its checksum")));
    }
  }
  // Pulled records are stored in batches: one group commit (and one fsync) for many.
  if (run->batch.size() >= kPullBatch || run->batch_bytes >= kPullBatchBytes || run->pulls_in_flight == 0) {
    StorePulls(run);
  }
  PumpPulls(run);
  AskKeys(run);
}

Result<SyncGetReply> AntiEntropy::PulledRecords(const Frame& f, size_t asked) {
  if (f.header.kind != static_cast<uint16_t>(Kind::kSyncGetReply)) {
    return Status::ProtocolError(std::string("SYNC_GET answered with ") + KindName(f.header.kind));
  }
  auto reply = DecodeSyncGetReply(f.body);
  if (reply.ok() && reply->records.size() != asked) {
    return Status::ProtocolError("SYNC_GET answered " + std::to_string(reply->records.size()) + " records of " +
                                 std::to_string(asked));
  }
  return reply;
}

void AntiEntropy::TakePulled(const std::shared_ptr<PeerRun>& run, const KeyVersion& v, Result<Record> rec) {
  if (rec.ok()) {
    run->batch_bytes += rec->value.size();
    WriteOp op{v.id, std::move(*rec)};
    op.bulk = true;  // not about to be read: around the page cache (storage/store.h)
    run->batch.push_back(std::move(op));
  } else if (auto c = claimed_.find(v.id); Current(*run) && c != claimed_.end() &&
                                               !Supersedes(c->second, v.meta) && !Supersedes(v.meta, c->second)) {
    // Not a record: gone or damaged there since it was listed. Nothing to copy; the peer
    // repairs its own copy, or pulls ours. (Only in its own round: a reply to a round that
    // ended must not touch the next one's claims.) Another peer may have listed it and left
    // it to this one: the next round pulls it from there, and this one does not count as
    // synced.
    claimed_.erase(c);
    missed_ = true;
  }
}

void AntiEntropy::StorePulls(std::shared_ptr<PeerRun> run) {
  if (run->batch.empty()) return;
  std::vector<WriteOp> ops = std::move(run->batch);
  run->batch.clear();
  const uint64_t bytes = run->batch_bytes, records = ops.size();
  run->batch_bytes = 0;
  ++run->storing;
  std::weak_ptr<bool> alive = alive_;
  store_.Apply(std::move(ops), [this, alive, run, bytes, records](Status s) {
    if (alive.expired()) return;
    --run->storing;
    if (s.ok()) {
      pulled_this_round_ += records;
      run->pulled += records;
      stats_.pulled_records += records;
      stats_.pulled_bytes += bytes;
      CountTraffic(bytes);
    } else {
      log_->warn("anti-entropy: storing pulled records failed: {}", s.ToString());
      run->failed = true;
      if (run->why.empty()) run->why = s.ToString();
    }
    PumpPulls(run);
    AskKeys(run);
  });
}

}  // namespace ringstore
