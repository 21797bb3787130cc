// NodeCore: one storage node's logic, driven by frames from the Transport and completions
// from the Store. It speaks the handshake, then PUT/GET/DEL/STAT/TXN, and answers every
// request with exactly one reply. It has no I/O of its own: Clock, Transport and Store come
// in through the constructor and must outlive it.
// Thread-safety: strand-confined. Every method and callback runs on the owner's strand.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "dht/clock.h"
#include "dht/hlc.h"
#include "dht/messages.h"
#include "dht/transport.h"
#include "node/anti_entropy.h"
#include "node/hinted_handoff.h"
#include "node/peer_links.h"
#include "routing/membership.h"
#include "storage/store.h"

namespace ringstore {

struct NodeOptions {
  std::string cluster_id = "ringstore";
  std::string node_id;  // hex, persisted by the runtime
  // Requests being served at once; one more gets a Busy error.
  size_t max_in_flight_per_conn = 4096;
  size_t max_in_flight_total = 65536;
  // A write stamped further than this ahead of the node's clock is refused: one record from a
  // runaway clock would otherwise win every later write.
  int64_t max_future_skew_ms = 60'000;
  // How long a read forwarded to the key's replica may take before the client gets
  // Unavailable.
  Clock::Duration forward_timeout = std::chrono::seconds(5);
  // The disk under the store, for DISK_USAGE requests (unset: such requests get Unavailable).
  std::function<DiskUsage()> disk_usage;
};

struct NodeStats {
  uint64_t requests = 0;
  uint64_t errors_sent = 0;
  uint64_t stream_errors = 0;
  uint64_t handshakes_refused = 0;
  uint64_t permission_denied = 0;  // requests refused by the access policy (certificate role)
  uint64_t corruptions = 0;
  uint64_t not_mine = 0;   // writes refused with NotMine
  uint64_t forwarded = 0;  // reads forwarded to a replica
  uint64_t fallback_reads = 0;  // reads of owned but missing keys sent on, before a sync
  uint64_t gets = 0;            // GET requests (a STAT is not one)
  size_t connections = 0;
  size_t in_flight = 0;
};

class NodeCore final : public TransportHandler {
 public:
  NodeCore(NodeOptions options, Clock& clock, Transport& transport, Store& store,
           std::shared_ptr<spdlog::logger> log);
  NodeCore(const NodeCore&) = delete;
  NodeCore& operator=(const NodeCore&) = delete;

  // Installs itself as the transport's handler.
  void Start();
  // Joins the node to a ring: membership frames go to m, and the transport events of the
  // links this node opened go to peers. Both must outlive the core.
  void AttachMembership(Membership* m, PeerLinks* peers) {
    membership_ = m;
    peers_ = peers;
  }
  // Writes this node takes in as a fallback are noted there, to be handed to the replicas.
  void AttachHandoff(HintedHandoff* h) { handoff_ = h; }
  // Repair: it serves SCAN, NODE_STATUS and SYNC_*; reads that meet a corrupt record report it
  // there; and until it has synced under the current ring, a read of a key this node owns
  // but lacks is forwarded to another replica (the data may not have moved here yet).
  void AttachRepair(AntiEntropy* r) { repair_ = r; }
  // NODE_STATUS's answer: the repair's counters and the hints' (needs a repair attached).
  RepairStatus RepairState() const;
  // Graceful stop: refuses new requests, finishes the ones in flight, closes the store,
  // then calls done once.
  void Shutdown(std::function<void(Status)> done);

  const NodeStats& stats() const { return stats_; }
  const NodeOptions& options() const { return options_; }

  void OnAccepted(ConnId conn, const std::string& peer_address) override;
  void OnConnected(ConnId conn) override;
  void OnFrame(ConnId conn, Frame frame) override;
  void OnStreamError(ConnId conn, const Status& status) override;
  void OnClosed(ConnId conn, const Status& why) override;
  void OnRefused(const std::string& peer_address, const Status& why) override;

 private:
  struct Conn {
    std::string peer;
    PeerIdentity identity;  // what the peer's certificate proves (Role::kOpen without TLS)
    bool hello_done = false;
    size_t in_flight = 0;
    std::vector<ObjectId> watching;  // channels (WATCH), at most kMaxWatchesPerConn
  };
  static constexpr size_t kMaxWatchesPerConn = 256;
  static constexpr size_t kMaxChannels = 65536;

  void HandleHello(ConnId conn, Conn& c, const Frame& frame);
  void HandleWrite(ConnId conn, const Frame& frame);
  void HandleGet(ConnId conn, const Frame& frame);
  void HandleStat(ConnId conn, const Frame& frame);
  void HandleMembership(ConnId conn, const Frame& frame);
  // WATCH and NOTIFY: change notification between the clients of this node.
  void HandleChannel(ConnId conn, Conn& c, const Frame& frame);
  void Unwatch(ConnId conn, Conn& c);
  // This node's place among the first route_n + kRouteSlack nodes of id's preference list:
  // -1 when outside them (not ours), >= route_n for a fallback. 0 when the sender did not
  // say (route_n 0) or there is no ring: everything is ours.
  int Rank(const ObjectId& id, uint32_t route_n) const;
  bool Mine(const ObjectId& id, uint32_t route_n) const { return Rank(id, route_n) >= 0; }
  // A read (kGet or kStat) of a key this node lacks, and either does not own or owns before
  // it has synced: asks the other live nodes of the key's window (its first route_n +
  // kRouteSlack nodes) in preference order, and relays the first answer that is not
  // NotFound as the reply to rid (a record re-encoded with `from`, the node it came from,
  // so that a client counts that node once); then Finish. Going down the list finds the former holders
  // while every replica of the key is new: a join puts the joiner ahead of them, so up to
  // kRouteSlack joins leave them inside the window.
  void Forward(ConnId conn, uint64_t rid, Kind kind, const ObjectId& id, uint32_t route_n);
  // One step of Forward: asks (*targets)[i]. miss is the reply if no one has the key.
  void ForwardTo(ConnId conn, uint64_t rid, Kind kind, const ObjectId& id,
                 std::shared_ptr<const std::vector<std::string>> targets, size_t i, Status miss);
  // The reply to a GET: the record, or the error (counting corruption).
  SharedFrame GetReply(uint64_t rid, const ObjectId& id, Result<Record> r);
  void SendError(ConnId conn, uint64_t request_id, const Status& status);
  // What conn's peer proved.
  const PeerIdentity& Identity(ConnId conn) const;
  // Refuses a request the access policy denied: counts, logs and answers it.
  void Deny(ConnId conn, uint64_t request_id, const Status& why);
  // Counts a request in flight on conn; false (and a Busy reply) when a bound is hit.
  bool Admit(ConnId conn, uint64_t request_id);
  // Ends a request: sends its reply if the connection is still there.
  void Finish(ConnId conn, std::string reply);
  void Finish(ConnId conn, SharedFrame reply);
  // A frame sent from its pieces (a GET reply's value is one of its own).
  void Send(ConnId conn, SharedFrame reply);
  void MaybeFinishShutdown();

  const NodeOptions options_;
  Clock& clock_;
  Transport& transport_;
  Store& store_;
  std::shared_ptr<spdlog::logger> log_;
  HlcClock hlc_;
  std::unordered_map<ConnId, Conn> conns_;
  // Who watches each channel (WATCH); emptied as connections close.
  std::unordered_map<ObjectId, std::vector<ConnId>, ObjectIdHash> watchers_;
  NodeStats stats_;
  bool shutting_down_ = false;
  std::function<void(Status)> shutdown_done_;
  Membership* membership_ = nullptr;
  PeerLinks* peers_ = nullptr;
  HintedHandoff* handoff_ = nullptr;
  AntiEntropy* repair_ = nullptr;
};

}  // namespace ringstore
