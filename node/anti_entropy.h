// AntiEntropy: a node's background repair. It keeps every record it holds on the record's N
// placement nodes, at the newest version, with no operator step (docs/repair.md):
//  - Rounds. A round scans the store (metadata only) and sorts each record by the current
//    ring: if this node is one of its N replicas, the record goes into one RangeDigest per
//    other replica (storage/range_digest.h); if not (the ring moved, a fallback copy, or the
//    node is leaving), it goes on the handoff list. A round starts every `interval`, and
//    `ring_settle` after the ring changes (a join, a replacement, a decommission).
//  - Pull. For each peer it shares keys with, the node walks the peer's digest of their
//    shared keys (SYNC_TREE) down to the leaves that differ, lists those leaves (SYNC_KEYS),
//    and copies in the records the peer has newer: many per SYNC_GET from a peer that
//    announced it (PeerLinks::Announced), else a GET each. A node that holds nothing it shares
//    with a peer whose digest is not built yet (it just joined) lists every leaf at once
//    instead of waiting for the digest (ListAll). Up to max_peers_at_once peers are pulled
//    from at once; a record one of them is already bringing is not asked of another
//    (claimed_). Every node pulls only, so each
//    missing record crosses the network once per node that lacks it, and a node that joins
//    fills itself from the other replicas of its ranges.
//  - Handoff. Records no longer placed here are offered to their N replicas (SYNC_HAVE), the
//    missing ones pushed (TXN, under the record's own timestamp), and once all N have them
//    the local copy is purged (Store purge: only that exact version). A handoff waits until
//    the ring has stayed the same for a whole round, so that the new owners pull first and
//    the data moves once.
//  - Scrub. A cursor rereads every record with its value at scrub_bytes_per_s; a record
//    that fails its checksum (and any the read path reports) is repaired from a replica
//    that has it intact. Until then the store refuses to serve it (quarantine).
//  - Tombstones. A tombstone past tombstone_grace is dropped once, in one round, every other
//    replica was compared and had it or held nothing of the key. Such a tombstone is never
//    pulled by a node that holds nothing of the key (so a dropped one does not come back),
//    but always by a node holding an older version (so the delete still wins there). And a
//    handoff offer of any version past the grace, for a key the replica holds nothing of, is
//    declined: that copy sat outside the replicas, and its key may have been deleted and
//    collected meanwhile. Unless the offerer says it was one of the key's replicas, in step
//    with every peer, lately (PlacedHereLately, PlacementHistory): such a copy cannot
//    have outlived a collected delete, and is the only one left when the key's N replicas
//    all moved (an N=1 record on a join or a decommission).
//  - Serving. It answers peers' SYNC_* requests, SCAN and NODE_STATUS.
// Repair traffic (pulls and pushes) is throttled to rate_bytes_per_s.
// Bounds: scan_batch records per store scan, max_in_flight transfers (of them, at most 4
// SYNC_GETs per peer), max_handoff records noted per round, kMaxSyncIndices/kMaxSyncEntries
// per message.
// Thread-safety: strand-confined; Store, PeerLinks, Membership and Clock must outlive it.
#pragma once

#include <spdlog/logger.h>

#include <deque>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dht/clock.h"
#include "dht/sync_messages.h"
#include "node/peer_links.h"
#include "node/placement_history.h"
#include "routing/membership.h"
#include "storage/range_digest.h"
#include "storage/store.h"

namespace ringstore {

struct AntiEntropyOptions {
  uint32_t replicas = 3;  // N: the copies every record should have
  Clock::Duration interval = std::chrono::seconds(30);
  // The first round after start; until a round has completed, it is also the debounce of
  // ring changes (the ring a node learns as it joins is not news). It was 2 s, as was
  // ring_settle; then 500 ms (docs/repair.md §8 has what each step did to a join).
  Clock::Duration first_round = std::chrono::milliseconds(200);
  // A round starts this long after the ring last changed (debounce of a join's gossip).
  Clock::Duration ring_settle = std::chrono::milliseconds(500);
  // The next round after one that moved data (each round scans the store's metadata).
  Clock::Duration busy_pause = std::chrono::seconds(2);
  Clock::Duration request_timeout = std::chrono::seconds(10);
  // A peer whose digest is not ready is asked again after retry_delay, then after twice,
  // four and eight times as long, and so on at eight times, as long as the waits add up to
  // no more than max_retries × retry_delay per round.
  Clock::Duration retry_delay = std::chrono::milliseconds(500);
  uint32_t max_retries = 40;
  size_t scan_batch = 128;
  size_t max_in_flight = 32;  // transfers per peer pulled from
  // Peers compared and pulled from at once. A joiner pulled from its three peers one after the
  // other, and the last mostly listed leaves it had already filled from the others.
  size_t max_peers_at_once = 4;
  size_t max_handoff = 1'000'000;
  // Repair and rebalance traffic, bytes per second in and out (0: unlimited).
  double rate_bytes_per_s = 128.0 * 1024 * 1024;
  // Scrub reads, bytes per second (0: no scrub).
  double scrub_bytes_per_s = 16.0 * 1024 * 1024;
  Clock::Duration scrub_pause = std::chrono::seconds(10);  // after a whole pass
  // Tombstones older than this (by their timestamp's wall clock) are collected once every
  // replica of their key has them or holds nothing of the key (see docs/repair.md). 0: never.
  Clock::Duration tombstone_grace = std::chrono::hours(24);
  size_t max_gc = 100'000;  // tombstones considered per round
  // Membership's replace_after: a delete can sit on fallbacks, away from a replica, that long.
  // An offerer in step with the replicas within (grace - replace_after - 2 × interval) / 2
  // vouches for an old copy (SYNC_HAVE placed; docs/repair.md §5).
  Clock::Duration replace_after = std::chrono::minutes(10);
  // The placement history kept across restarts (node/placement_history.h): what the last
  // save_placement_history was given, or empty. save_placement_history (may be empty) gets
  // the new bytes after each round that reached every peer; it must keep them for the next
  // start, and may fail silently (an older history only declines more old copies).
  std::string placement_history;
  std::function<void(const std::string&)> save_placement_history;
};

class AntiEntropy {
 public:
  AntiEntropy(AntiEntropyOptions options, std::string self_id, Clock& clock, Store& store, PeerLinks& peers,
              Membership& membership, std::shared_ptr<spdlog::logger> log);
  ~AntiEntropy();
  AntiEntropy(const AntiEntropy&) = delete;
  AntiEntropy& operator=(const AntiEntropy&) = delete;

  void Start();
  void Stop();

  // A request from a peer or a tool: SCAN, NODE_STATUS, SYNC_TREE, SYNC_KEYS or SYNC_HAVE.
  // done gets the reply frame (an ERROR frame on failure), exactly once.
  void OnRequest(const Frame& frame, std::function<void(std::string)> done);
  static bool Handles(Kind kind);

  // True once a round has compared with every peer under the current ring: until then a
  // key this node owns but lacks may be on its previous holders (reads fall back to them).
  bool synced() const;
  // Called once, when the first round with at least one peer has compared with every peer: a
  // node that started behind (a new node, or one back from a restart) has caught up. (A peer
  // that is down keeps that from happening until it is replaced.) node_main then gives the
  // node back its normal CPU priority (--fill-nice).
  void set_on_first_sync(std::function<void()> fn) { on_first_sync_ = std::move(fn); }
  // The read path met a record that fails its checksum: repair it from a replica.
  void ReportCorrupt(const ObjectId& id);

  // Decommission: the node leaves the ring (Membership::Leave), hands every record off to
  // the new owners, and once a round finds nothing left here it departs (Left). Idempotent,
  // and resumed after a restart by calling it again.
  void Decommission();

  RepairStatus status() const;

 private:
  struct PeerRun;
  // Rounds.
  void Tick();
  void BeginRound();
  void ScanNext();
  // The error a peer's ERROR reply carries; Ok for any other reply.
  static Status ErrorIn(const Frame& f);
  void FinishScan();
  void NextPeer();
  void EndRound(const char* why);
  bool RoundStale() const;
  // Pull from one peer.
  void AskTree(std::shared_ptr<PeerRun> run);
  // Lists every leaf of the peer, without its digest: a peer whose digest is not ready yet,
  // when we hold nothing it shares (a node that just joined), so that every leaf it holds
  // anything in differs anyway.
  void ListAll(std::shared_ptr<PeerRun> run);
  // The peer cannot answer yet: it is asked again after the others, backing off (retry_delay).
  // False, and nothing done, once this round's waits for it are used up.
  bool RetryLater(const std::shared_ptr<PeerRun>& run);
  void AskKeys(std::shared_ptr<PeerRun> run);
  // Leaves a peer listed, to compare with ours: theirs[i] is its listing of leaves[i]; the
  // first from `start` on, and the last below `cut`, when those are set (a leaf too large for
  // one listing, listed in parts).
  struct LeafBatch {
    std::vector<uint32_t> leaves;  // ascending
    std::vector<std::vector<KeyVersion>> theirs;
    std::optional<ObjectId> start, cut;
    size_t next = 0;  // the first not compared yet
    // The ids of leaf the peer listed: [Begin, End).
    ObjectId Begin(uint32_t leaf) const {
      return start && RangeDigest::LeafOf(*start) == leaf ? *start : RangeDigest::LeafBegin(leaf);
    }
    ObjectId End(uint32_t leaf) const {
      return cut && RangeDigest::LeafOf(*cut) == leaf ? *cut : RangeDigest::LeafEnd(leaf);
    }
  };
  void CompareLeaves(std::shared_ptr<PeerRun> run, std::shared_ptr<LeafBatch> batch);
  // Compares the ids in [begin, end) of one leaf: theirs and ours may hold more, outside it.
  void CompareLeaf(const std::shared_ptr<PeerRun>& run, const ObjectId& begin, const ObjectId& end,
                   const std::vector<KeyVersion>& theirs, const std::vector<ScanEntry>& ours);
  void PumpPulls(std::shared_ptr<PeerRun> run);
  // Takes one pulled record into the run's batch; an error means the peer sent no intact
  // record of v (gone or damaged there since it was listed).
  void TakePulled(const std::shared_ptr<PeerRun>& run, const KeyVersion& v, Result<Record> rec);
  // Takes a peer's reply to a pull of vs (bytes of values; batched: a SYNC_GET, else a GET
  // of vs[0]), then stores and pulls more.
  void TakeReply(const std::shared_ptr<PeerRun>& run, const std::vector<KeyVersion>& vs, uint64_t bytes, bool batched,
                 const Result<Frame>& reply);
  // The records of a peer's SYNC_GET_REPLY to `asked` ids; an error if it is not one.
  static Result<SyncGetReply> PulledRecords(const Frame& reply, size_t asked);
  void StorePulls(std::shared_ptr<PeerRun> run);
  void Fail(std::shared_ptr<PeerRun> run, const std::string& why);
  // Ends the peer's pull once nothing of it is in flight, and moves to the next peer.
  void MaybeFinish(std::shared_ptr<PeerRun> run);
  bool Current(const PeerRun& run) const;
  // Handoff.
  void BeginHandoff();
  void ProbeTargets();  // which targets decline offers (still catching up), before any offer
  void HandoffNextTarget();
  void PushNext();
  void Confirmed(const ObjectId& id, const RecordMeta& meta);
  // Sends our copy of id to a peer that listed an older version of it which our copy's N does
  // not place with it (the key was rewritten with a smaller N, R4): the peer would otherwise
  // keep the old version, and never pull ours, which we do not list to it.
  void Mend(const std::string& address, const ObjectId& id, uint64_t size);
  // Throttled, reads our copy of id and sends it to address as a TXN under its own timestamp;
  // done gets the version sent once the peer acknowledged it (nullopt: not sent, or not
  // acknowledged). Neither runs once this is destroyed.
  void SendCopy(const std::string& address, const ObjectId& id, uint64_t size,
                std::function<void(std::optional<RecordMeta>)> done);
  // Tombstone collection.
  // A tombstone past tombstone_grace; any version past it (or past a divisor-th of it).
  bool Collectable(const RecordMeta& meta) const;
  bool PastGrace(const RecordMeta& meta, int64_t divisor = 1) const;
  // Whether this node held id as one of its replicas in a round that reached every peer lately:
  // within (grace - replace_after - 2 × interval) / 2 (a handoff offer says so; docs/repair.md §5).
  bool PlacedHereLately(const ObjectId& id, const RecordMeta& meta) const;
  // That horizon in ms (0: never vouch).
  int64_t VouchHorizonMs() const;
  // This round reached every peer: note its ring in history_, and save it now and then.
  void NoteInStep();
  void ConfirmTombstones(const PeerRun& run);
  void CollectTombstones();
  // Scrub and repair.
  void ScrubNext();
  void Repair(const ObjectId& id, std::vector<std::string> addresses);
  // Serving.
  void ServeTree(uint64_t rid, const SyncTreeRequest& m, std::function<void(std::string)> done);
  void ServeKeys(uint64_t rid, SyncKeysRequest m, std::function<void(std::string)> done);
  struct KeysJob;
  void KeysStep(std::shared_ptr<KeysJob> job);
  // Sends the SYNC_KEYS reply, after the store barrier if it lists a tombstone past grace.
  void ReplyKeys(std::shared_ptr<KeysJob> job);
  // Sends reply once every write so far is durable (an empty Store::Apply), or an ERROR that
  // this node's `what` cannot be made durable.
  void SendDurably(uint64_t rid, const char* what, std::string reply, std::function<void(std::string)> done);
  // Reads leaves[from] (from `begin` on, when set) and the leaves right after it that follow it
  // in number (at most kLeavesPerScan), as one store scan of at most limit records. done gets
  // the records of each leaf read whole, in order: at least the first, which, if it alone
  // holds more than limit records from where it was read, is read only below `cut`.
  static constexpr size_t kLeavesPerScan = 64;
  struct LeafScan {
    std::vector<std::vector<ScanEntry>> leaves;
    std::optional<ObjectId> cut;  // set: the only leaf read was read only below it
  };
  void ScanLeaves(const std::vector<uint32_t>& leaves, size_t from, const std::optional<ObjectId>& begin, size_t limit,
                  std::function<void(Result<LeafScan>)> done);
  void ServeHave(uint64_t rid, SyncHaveRequest m, std::function<void(std::string)> done);
  struct GetJob;
  void ServeGet(uint64_t rid, std::vector<ObjectId> ids, std::function<void(std::string)> done);
  void ServeScan(uint64_t rid, const ScanRequest& m, std::function<void(std::string)> done);
  // Whether both this node and peer are among id's N replicas in table.
  bool Shared(const RouteTable& table, const ObjectId& id, const RecordMeta& meta, const std::string& peer) const;
  // The N a record is kept at: its own (RecordMeta::replicas), else --replicas (R4).
  uint32_t ReplicasOf(const RecordMeta& meta) const { return meta.replicas() != 0 ? meta.replicas() : options_.replicas; }
  // Waits until bytes fit the repair rate, then runs fn.
  void Throttle(uint64_t bytes, std::function<void()> fn);
  void CountTraffic(uint64_t bytes);
  // The record in a peer's reply to GET, if the reply is one and the record is intact.
  static Result<Record> IntactRecord(const Result<Frame>& reply);
  // Runs fn on the strand, later (never inline), unless this object is gone.
  void Later(Clock::Duration d, std::function<void()> fn);

  const AntiEntropyOptions options_;
  const std::string self_id_;
  Clock& clock_;
  Store& store_;
  PeerLinks& peers_;
  Membership& membership_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool running_ = false;

  // The digests peers are answered from: the last completed scan, under ring answer_digest_.
  std::map<std::string, RangeDigest> answer_trees_;
  uint64_t answer_digest_ = 0;
  bool answer_ready_ = false;

  // The round in progress.
  bool active_ = false;
  uint64_t round_no_ = 0;
  size_t runs_in_flight_ = 0;  // peers being pulled from (at most max_peers_at_once)
  bool picking_ = false, repick_ = false;  // NextPeer is starting runs (re-entry guard)
  bool handoff_begun_ = false;             // this round's handoff has started
  bool handoff_probed_ = false;            // and its targets have answered the probe
  // Records being pulled (or pulled) this round, by the version asked for: a record two peers
  // list at the same version is pulled from the first only.
  std::unordered_map<ObjectId, RecordMeta, ObjectIdHash> claimed_;
  bool missed_ = false;  // a claimed record did not come: the round is not synced
  size_t retries_waiting_ = 0;  // peers to ask again after retry_delay
  RouteTable ring_;  // the table this round places keys by
  uint64_t ring_digest_ = 0;
  uint64_t last_round_digest_ = 0;  // the ring of the last completed round
  uint64_t synced_digest_ = 0;      // the ring of the last round that reached every peer
  bool synced_once_ = false;
  std::function<void()> on_first_sync_;
  // A round with at least one peer reached every peer: the node has caught up since it
  // started (on_first_sync_ has run; handoff offers are answered).
  bool caught_up_ = false;
  Clock::Duration round_started_{};
  int64_t round_started_wall_ms_ = 0;
  PlacementHistory history_;  // rings this node was in step with every peer under, and when
  uint64_t history_saved_digest_ = 0;
  int64_t history_saved_ms_ = 0;
  ObjectId scan_cursor_;
  std::map<std::string, RangeDigest> building_;
  std::vector<KeyVersion> handoff_;
  uint64_t owned_keys_ = 0, owned_bytes_ = 0, handoff_bytes_ = 0;
  std::deque<std::string> peer_queue_;  // node ids still to pull from this round
  // Per peer this round: how often its digest was not ready yet, and how long we waited.
  struct Retry {
    uint32_t count = 0;
    Clock::Duration waited{0};
  };
  std::map<std::string, Retry> retries_;
  bool all_peers_ok_ = true;
  std::unordered_set<ObjectId, ObjectIdHash> lacking_;  // owned keys a replica lacked this round
  uint64_t unreachable_keys_ = 0;
  uint64_t pulled_this_round_ = 0;
  uint64_t moved_at_start_ = 0;  // pushed + purged when the round began
  bool handoff_ran_ = false;
  uint64_t leaves_pending_ = 0, pending_bytes_ = 0;
  size_t peers_total_ = 0, peers_done_ = 0;

  // Handoff in progress: per target node, the versions to offer; per key, confirmations due.
  std::map<std::string, std::vector<KeyVersion>> offers_;
  std::map<ObjectId, std::pair<RecordMeta, uint32_t>> awaiting_;
  std::deque<std::pair<std::string, KeyVersion>> pushes_;  // (address, version) to push
  size_t in_flight_ = 0;
  size_t mends_in_flight_ = 0;

  // Tombstones past their grace this round: who must still confirm each.
  struct GcCandidate {
    RecordMeta meta;
    std::vector<std::string> pending;  // replicas not yet seen with it (or without the key)
    bool blocked = false;              // a replica holds another version
  };
  std::map<ObjectId, GcCandidate> gc_;

  // Leaving.
  bool leaving_ = false;
  bool drained_ = false;

  // Scrub.
  ObjectId scrub_cursor_;
  bool scrub_armed_ = false;
  std::unordered_set<ObjectId, ObjectIdHash> repairing_;

  // Throttle and traffic counters.
  double tokens_ = 0;
  Clock::Duration tokens_at_{};
  std::deque<std::pair<Clock::Duration, uint64_t>> traffic_;  // recent (time, bytes)

  Clock::TimerId tick_timer_ = 0;
  Clock::Duration next_round_at_{};
  uint64_t seen_ring_ = 0;
  Clock::Duration ring_changed_at_{};
  RepairStatus stats_;
};

}  // namespace ringstore
