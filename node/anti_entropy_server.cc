// AntiEntropy: answering SYNC_TREE, SYNC_KEYS, SYNC_HAVE, SYNC_GET, SCAN and NODE_STATUS (see
// anti_entropy.h and docs/wire-protocol.md §8).
#include <algorithm>

#include "node/anti_entropy.h"
#include "dht/lww_map.h"
#include "routing/placement.h"

namespace ringstore {

bool AntiEntropy::Handles(Kind kind) {
  return kind == Kind::kScan || kind == Kind::kNodeStatus || kind == Kind::kSyncTree || kind == Kind::kSyncKeys ||
         kind == Kind::kSyncHave || kind == Kind::kSyncGet;
}

void AntiEntropy::OnRequest(const Frame& frame, std::function<void(std::string)> done) {
  const uint64_t rid = frame.header.request_id;
  auto fail = [&](const Status& s) { done(EncodeError(rid, s)); };
  switch (static_cast<Kind>(frame.header.kind)) {
    case Kind::kNodeStatus:
      return done(EncodeRepairStatus(rid, status()));
    case Kind::kScan: {
      auto m = DecodeScanRequest(frame.body);
      if (!m.ok()) return fail(m.status());
      return ServeScan(rid, *m, std::move(done));
    }
    case Kind::kSyncTree: {
      auto m = DecodeSyncTreeRequest(frame.body);
      if (!m.ok()) return fail(m.status());
      return ServeTree(rid, *m, std::move(done));
    }
    case Kind::kSyncKeys: {
      auto m = DecodeSyncKeysRequest(frame.body);
      if (!m.ok()) return fail(m.status());
      return ServeKeys(rid, std::move(*m), std::move(done));
    }
    case Kind::kSyncHave: {
      auto m = DecodeSyncHaveRequest(frame.body);
      if (!m.ok()) return fail(m.status());
      return ServeHave(rid, std::move(*m), std::move(done));
    }
    case Kind::kSyncGet: {
      auto m = DecodeSyncGetRequest(frame.body);
      if (!m.ok()) return fail(m.status());
      return ServeGet(rid, std::move(m->ids), std::move(done));
    }
    default:
      return fail(Status::ProtocolError("not a repair request"));
  }
}

// One SYNC_GET being answered: its records are read at once, and the reply goes when the
// last is in.
struct AntiEntropy::GetJob {
  uint64_t rid = 0;
  std::vector<ObjectId> ids;
  SyncGetReply reply;
  size_t left = 0;
  std::function<void(std::string)> done;
};

void AntiEntropy::ServeGet(uint64_t rid, std::vector<ObjectId> ids, std::function<void(std::string)> done) {
  auto job = std::make_shared<GetJob>();
  job->rid = rid;
  job->ids = std::move(ids);
  job->done = std::move(done);
  job->reply.records.resize(job->ids.size());
  job->left = job->ids.size();
  if (job->left == 0) return job->done(EncodeSyncGetReply(rid, job->reply));
  // Each record is checked here, as a GET's is (NodeCore::GetReply): one that fails its
  // checksum is answered as none and repaired from a replica. The values of one reply stay
  // within kMaxValueBytes (the asker's frame limit): records asked for by their listed sizes
  // may have grown since; those past it are answered as none, and asked for again.
  auto take = [this, job](size_t i, Result<Record> r) {
    if (r.ok() && !r->Intact()) r = Status::Corruption("value checksum mismatch");
    if (r.status().IsCorruption()) {
      log_->error("corrupt record {} met answering a SYNC_GET: {}", job->ids[i].Hex().substr(0, 16),
                  r.status().message());
      ReportCorrupt(job->ids[i]);
    }
    if (r.ok()) job->reply.records[i] = std::move(*r);
    if (--job->left > 0) return;
    uint64_t bytes = 0;
    for (auto& rec : job->reply.records) {
      if (!rec) continue;
      if (bytes > 0 && bytes + rec->value.size() > kMaxValueBytes) {
        rec.reset();
      } else {
        bytes += rec->value.size();
      }
    }
    job->done(EncodeSyncGetReply(job->rid, job->reply));
  };
  // (RocksDbStore::Get answers from its caches first by itself: a GetIfCached before it
  // would try them twice for every record that is not there.)
  std::weak_ptr<bool> alive = alive_;
  for (size_t i = 0; i < job->ids.size(); ++i) {
    store_.Get(job->ids[i], [alive, take, i](Result<Record> r) {
      if (!alive.expired()) take(i, std::move(r));  // (take uses this object)
    });
  }
}

void AntiEntropy::ServeTree(uint64_t rid, const SyncTreeRequest& m, std::function<void(std::string)> done) {
  if (m.scope.replicas != options_.replicas) {
    return done(EncodeError(rid, Status::InvalidArgument("this node keeps " + std::to_string(options_.replicas) +
                                                         " replicas, the peer " + std::to_string(m.scope.replicas))));
  }
  if (!answer_ready_ || answer_digest_ != m.scope.ring_digest) {
    return done(EncodeError(rid, Status::Unavailable("no digest for that ring yet")));
  }
  static const RangeDigest kEmpty = [] {
    RangeDigest d;
    d.Finish();
    return d;
  }();
  auto it = answer_trees_.find(m.scope.from);
  const RangeDigest& tree = it == answer_trees_.end() ? kEmpty : it->second;
  SyncTreeReply reply;
  for (uint32_t index : m.indices) {
    if (index >= RangeDigest::Width(m.level)) return done(EncodeError(rid, Status::ProtocolError("tree index out of range")));
    for (uint64_t h : tree.Children(m.level, index)) reply.hashes.push_back(h);
  }
  done(EncodeSyncTreeReply(rid, reply));
}

// One SYNC_KEYS being answered: the leaves one after the other, each read now, until the
// reply is full.
struct AntiEntropy::KeysJob {
  uint64_t rid = 0;
  SyncKeysRequest req;
  SyncKeysReply reply;
  size_t next = 0;
  std::function<void(std::string)> done;
};

void AntiEntropy::ServeKeys(uint64_t rid, SyncKeysRequest m, std::function<void(std::string)> done) {
  if (m.scope.replicas != options_.replicas || m.scope.ring_digest != membership_.table().RingDigest()) {
    return done(EncodeError(rid, Status::Unavailable("this node places keys by another ring")));
  }
  if (m.leaves.empty()) return done(EncodeError(rid, Status::InvalidArgument("no leaves asked for")));
  if (m.start && RangeDigest::LeafOf(*m.start) != m.leaves.front()) {
    return done(EncodeError(rid, Status::InvalidArgument("the id to list from is not in the first leaf asked for")));
  }
  auto job = std::make_shared<KeysJob>();
  job->rid = rid;
  job->req = std::move(m);
  job->done = std::move(done);
  KeysStep(std::move(job));
}

void AntiEntropy::ScanLeaves(const std::vector<uint32_t>& leaves, size_t from, const std::optional<ObjectId>& begin,
                             size_t limit, std::function<void(Result<LeafScan>)> done) {
  // The run of leaves that follow each other from `from`: one store scan covers them all.
  size_t last = from;
  while (last + 1 < leaves.size() && leaves[last + 1] == leaves[last] + 1 && last + 1 - from < kLeavesPerScan) ++last;
  const uint32_t first_leaf = leaves[from], count = static_cast<uint32_t>(last - from + 1);
  std::weak_ptr<bool> alive = alive_;
  store_.Scan(begin.value_or(RangeDigest::LeafBegin(first_leaf)), RangeDigest::LeafEnd(leaves[last]), limit + 1, false,
              [alive, first_leaf, count, limit, done](Result<std::vector<ScanEntry>> r) {
                if (alive.expired()) return;
                if (!r.ok()) return done(r.status());
                // Cut short (more than limit records): the leaves before the one it stopped in
                // were read whole; that one and those after it were not. If that is the first,
                // it goes in part: its first limit records, and where the rest begins.
                const bool short_read = r->size() > limit;
                size_t whole = short_read ? RangeDigest::LeafOf(r->back().id) - first_leaf : count;
                LeafScan scan;
                scan.leaves.resize(count);
                for (ScanEntry& e : *r) scan.leaves[RangeDigest::LeafOf(e.id) - first_leaf].push_back(std::move(e));
                if (whole == 0) {
                  scan.cut = scan.leaves[0][limit].id;  // all limit + 1 records are of the first leaf
                  scan.leaves[0].resize(limit);
                  whole = 1;
                }
                scan.leaves.resize(whole);
                done(std::move(scan));
              });
}

void AntiEntropy::KeysStep(std::shared_ptr<KeysJob> job) {
  if (job->next >= job->req.leaves.size()) return ReplyKeys(std::move(job));
  const std::optional<ObjectId> begin = job->next == 0 ? job->req.start : std::nullopt;
  ScanLeaves(job->req.leaves, job->next, begin, kMaxSyncEntries, [this, job](Result<LeafScan> r) {
    if (!r.ok()) return job->done(EncodeError(job->rid, r.status()));
    const RouteTable& table = membership_.table();
    for (const std::vector<ScanEntry>& entries : r->leaves) {
      std::vector<KeyVersion> mine;
      for (const ScanEntry& e : entries) {
        if (!e.corrupt && Shared(table, e.id, e.record.meta, job->req.scope.from)) mine.push_back(KeyVersion{e.id, e.record.meta});
      }
      // A leaf goes whole or not at all, except one too big for any reply: that one goes in
      // parts, each ending the reply with where the next begins.
      if (!job->reply.done.empty() && job->reply.entries.size() + mine.size() > kMaxSyncEntries) {
        return ReplyKeys(std::move(job));
      }
      job->reply.done.push_back(job->req.leaves[job->next]);
      job->reply.entries.insert(job->reply.entries.end(), mine.begin(), mine.end());
      ++job->next;
    }
    if (r->cut) {
      job->reply.cut = r->cut;
      return ReplyKeys(std::move(job));
    }
    KeysStep(job);
  });
}

void AntiEntropy::ReplyKeys(std::shared_ptr<KeysJob> job) {
  // A tombstone past its grace in the listing confirms it for the asker's collection
  // (docs/repair.md §5): it must survive a crash here first, so the reply waits for the store
  // barrier (as ServeHave's "have" does). Other listings go at once.
  const bool confirms = std::any_of(job->reply.entries.begin(), job->reply.entries.end(),
                                    [this](const KeyVersion& v) { return Collectable(v.meta); });
  std::string reply = EncodeSyncKeysReply(job->rid, job->reply);
  if (!confirms) return job->done(std::move(reply));
  SendDurably(job->rid, "tombstones", std::move(reply), std::move(job->done));
}

void AntiEntropy::SendDurably(uint64_t rid, const char* what, std::string reply, std::function<void(std::string)> done) {
  // A write is visible here a moment before its WAL fsync (storage/rocksdb_store.h); an empty
  // Apply completes once every write before it is durable. If it fails, so does the answer.
  std::weak_ptr<bool> alive = alive_;
  store_.Apply({}, [alive, rid, what, reply = std::move(reply), done = std::move(done)](Status s) mutable {
    if (alive.expired()) return;
    if (!s.ok()) {
      return done(EncodeError(rid, Status::FromCode(s.code(), std::string("cannot make this node's ") + what +
                                                                   " durable: " + s.message())));
    }
    done(std::move(reply));
  });
}

void AntiEntropy::ServeHave(uint64_t rid, SyncHaveRequest m, std::function<void(std::string)> done) {
  // Until its first round has reached every peer, this node is still pulling what it owns.
  // An old holder's handoff would push it the same records meanwhile (twice the traffic,
  // during the move) and purge its copies: it offers again next round (docs/repair.md §1).
  if (!caught_up_) {
    return done(EncodeError(rid, Status::Unavailable("still catching up with its peers: offer again later")));
  }
  struct State {
    SyncHaveReply reply;
    size_t waiting = 0;
    bool held = false;  // some "have" rests on a record of ours
    std::function<void(std::string)> done;
  };
  auto st = std::make_shared<State>();
  st->reply.have.assign(m.entries.size(), false);
  st->waiting = m.entries.size();
  st->done = std::move(done);
  if (st->waiting == 0) return st->done(EncodeSyncHaveReply(rid, st->reply));
  std::weak_ptr<bool> alive = alive_;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const RecordMeta want = m.entries[i].meta;
    const bool placed = i < m.placed.size() && m.placed[i];
    store_.Stat(m.entries[i].id, [this, alive, st, i, want, placed, rid](Result<RecordMeta> r) {
      if (alive.expired()) return;
      // A version older than the tombstone grace, offered for a key we hold nothing of: its
      // key may have been deleted and the tombstone collected since (a tombstone is collected
      // only once every replica has it, but this copy was outside the replicas). Declined,
      // unless the offerer was in step with the replicas as one of them lately (placed):
      // then no delete of it can have been collected since, and its copy may be the last.
      if (r.status().IsNotFound() && PastGrace(want) && !placed) st->reply.have[i] = true;
      if (r.ok()) {
        const bool same = !Supersedes(*r, want) && !Supersedes(want, *r);
        // A map has it only as the very same version (a merge may still add entries).
        st->reply.have[i] = IsMapRecord(want) || IsMapRecord(*r) ? same : (same || Supersedes(*r, want));
        st->held |= st->reply.have[i];
      }
      if (--st->waiting > 0) return;
      if (!st->held) return st->done(EncodeSyncHaveReply(rid, st->reply));
      // The offerer purges what we say we have, so what we have must survive a crash here
      // first; if it cannot, the offerer keeps its copies.
      SendDurably(rid, "copies", EncodeSyncHaveReply(rid, st->reply), std::move(st->done));
    });
  }
}

void AntiEntropy::ServeScan(uint64_t rid, const ScanRequest& m, std::function<void(std::string)> done) {
  std::weak_ptr<bool> alive = alive_;
  store_.Scan(m.begin, m.end, m.limit, false, [alive, rid, limit = m.limit, done](Result<std::vector<ScanEntry>> r) {
    if (alive.expired()) return;
    if (!r.ok()) return done(EncodeError(rid, r.status()));
    ScanReply reply;
    reply.more = r->size() >= limit;
    for (const ScanEntry& e : *r) {
      KeyVersion v{e.id, e.record.meta};
      if (e.corrupt) v.meta.flags |= kScanCorrupt;
      reply.entries.push_back(v);
    }
    done(EncodeScanReply(rid, reply));
  });
}

}  // namespace ringstore
