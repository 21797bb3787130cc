// HintedHandoff: writes that a node took in as a fallback (it is past the key's first N nodes
// by its table: a client went there because replicas failed) are handed to the key's N
// replicas once they can be reached, so that quorum reads, which ask the N replicas, see
// them (the Dynamo "hinted handoff"). A hint is the key and its N; the record itself is read
// from the store when it is handed off, so the newest version goes. A hint is dropped once
// every one of the key's N replicas has acknowledged the record, when this node becomes one
// of them, or when the record is older than the tombstone grace (HandoffOptions).
//
// Persistence: the store keeps each hint in the same atomic write as the fallback record
// (WriteOp::hint_n, set by NodeCore), and Start loads the kept ones, so a fallback that
// restarts hands off what it took in. A hint that ends is forgotten in the store too, up to
// the version handed off (Store::ForgetHints): a newer fallback write's hint stays.
// A hint remembers which replicas acknowledged its record and sends only to the others that
// are up; one waiting for a replica that is down costs nothing until it is up or replaced.
// Bounds: at most max_hints (the oldest are dropped beyond, with a log line, in the store as
// well; anti-entropy still moves their records), at most max_in_flight keys being handed off
// at once, one pass every interval over at most max(256, 4 * max_in_flight) hints, from where
// the last one stopped.
// Thread-safety: strand-confined; Store, PeerLinks, Membership and Clock must outlive it.
#pragma once

#include <spdlog/logger.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dht/clock.h"
#include "dht/record.h"
#include "node/peer_links.h"
#include "routing/membership.h"
#include "storage/store.h"

namespace ringstore {

struct HandoffOptions {
  Clock::Duration interval = std::chrono::milliseconds(500);
  Clock::Duration request_timeout = std::chrono::seconds(5);
  size_t max_hints = 100000;
  size_t max_in_flight = 64;
  // A hinted record older than this (by its timestamp's wall clock) is not handed off: the
  // hint is dropped. A newer delete of its key may have been collected on the replicas
  // (a tombstone goes once its own grace is past, and it is newer than the record), and
  // handing the record off would bring the key back. Anti-entropy's offers decline such a
  // copy too (docs/repair.md §5). 0: no limit.
  Clock::Duration tombstone_grace = Clock::Duration::zero();
};

struct HandoffStats {
  uint64_t hinted = 0, handed_off = 0, dropped = 0;
  uint64_t copies_sent = 0;  // records sent to replicas
  uint64_t loaded = 0;  // hints an earlier run kept, loaded by Start
  size_t pending = 0;
};

class HintedHandoff {
 public:
  HintedHandoff(HandoffOptions options, std::string self_id, Clock& clock, Store& store, PeerLinks& peers,
                Membership& membership, std::shared_ptr<spdlog::logger> log);
  ~HintedHandoff();

  // Loads the hints the store kept (an earlier run's), then hands them off like new ones.
  void Start();
  // A write of id at ts, placed with N = route_n, was applied here as a fallback (with its
  // hint kept in the store), or such a hint was loaded from the store. Adds or widens a hint.
  void Note(const ObjectId& id, uint32_t route_n, Timestamp ts);
  const HandoffStats& stats() const { return stats_; }

 private:
  struct Hint {
    uint32_t route_n = 0;
    Timestamp ts = 0;  // the newest fallback write's
    bool busy = false;
    uint64_t generation = 0;  // bumped by every Note: a write that lands during a handoff keeps the hint
    // Replicas (node ids) that acknowledged the record of this generation: not sent to again.
    std::vector<std::string> acked;
  };
  // Whether some replica of id still lacks the hint's record and is not down (worth a send).
  bool AnyToSend(const ObjectId& id, const Hint& hint) const;
  void Load(const ObjectId& from);
  void Arm();
  void Pass();
  void HandOff(const ObjectId& id, uint32_t route_n, uint64_t generation);
  // all_acked (or dropped: not to be handed off) ends the hint unless a write landed since;
  // sent is the timestamp of the version handed off (0: none was read).
  void Done(const ObjectId& id, uint64_t generation, bool all_acked, Timestamp sent, bool dropped = false);
  // Forgets the stored hint of id up to ts.
  void Forget(const ObjectId& id, Timestamp ts);

  const HandoffOptions options_;
  const std::string self_id_;
  Clock& clock_;
  Store& store_;
  PeerLinks& peers_;
  Membership& membership_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<ObjectId, Hint> hints_;
  ObjectId cursor_ = ObjectId::Min();  // the last hint a pass looked at
  std::deque<ObjectId> order_;  // oldest first, for the bound (may hold ids already done)
  size_t in_flight_ = 0;
  Clock::TimerId timer_ = 0;
  bool armed_ = false;
  HandoffStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringstore
