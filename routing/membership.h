// Membership: how a node learns the cluster and notices failures, with no coordinator.
// - Gossip (push-pull, digest first): every gossip_interval the node sends its table's digest
//   to one random member. A receiver whose table differs answers with its whole table; the
//   sender merges it and, if it knew something the other did not, pushes its whole table
//   back. In a quiet cluster a round is two small messages, not two tables.
//   Until some member has answered, the node pushes its whole table to its --join seeds with
//   exponential backoff and logs each miss.
// - Failure detection (SWIM): every probe_interval the node pings the next member in a shuffled
//   round. Without an ack within probe_timeout it asks indirect_probes other members to ping it
//   (PING_REQ); without any ack by the end of the round the member becomes Suspect, and Down
//   after suspicion_timeout unless it refutes (a node that hears itself suspected bumps its
//   incarnation). One lossy link therefore does not bring a node down.
// The table is persisted by no one: a restarting node rejoins through its seeds and overrides
// its old entry with a higher incarnation (the runtime persists incarnation and ring seed).
// Pure logic: Clock, Random and the sender come in through the constructor and must outlive it.
// Thread-safety: strand-confined.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dht/clock.h"
#include "dht/frame.h"
#include "dht/random.h"
#include "routing/membership_messages.h"
#include "routing/route_table.h"

namespace ringstore {

struct MembershipOptions {
  Clock::Duration gossip_interval = std::chrono::milliseconds(200);
  Clock::Duration probe_interval = std::chrono::milliseconds(1000);
  Clock::Duration probe_timeout = std::chrono::milliseconds(300);
  uint32_t indirect_probes = 3;
  Clock::Duration suspicion_timeout = std::chrono::seconds(3);
  // Joining: the first retry waits join_backoff_min, doubling up to join_backoff_max.
  Clock::Duration join_backoff_min = std::chrono::milliseconds(200);
  Clock::Duration join_backoff_max = std::chrono::seconds(5);
  // Each gossip round also tries one Down member, and one replaced member (Left, not by a
  // decommission), each with this probability: to notice recoveries, and to let a replaced
  // node that was only cut off hear it and refute.
  double gossip_to_down_probability = 0.1;
  // A member this node has seen Down for this long, while it sees a majority of the members
  // alive, is replaced: this node marks it Left (at the same incarnation, which Left
  // overrides), it leaves the ring, and its ranges go to the next nodes, which anti-entropy
  // fills from the other replicas. Time without a majority does not count. Should it come
  // back, it hears it was replaced, bumps its incarnation and rejoins as Up. Zero never
  // replaces.
  Clock::Duration replace_after = std::chrono::minutes(10);
};

// Where membership frames go. The node maps an address to a connection.
class MembershipSender {
 public:
  virtual ~MembershipSender() = default;
  virtual void SendTo(const std::string& address, std::string frame) = 0;
};

class Membership {
 public:
  Membership(MembershipOptions options, NodeEntry self, Clock& clock, Random& random,
             MembershipSender& sender, std::shared_ptr<spdlog::logger> log);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Starts the gossip and probe timers. With no seeds the node forms a cluster of one.
  void Start(std::vector<std::string> seeds);
  void Stop();
  // Handles kGossip, kGossipReply, kPing, kPingReq and kPingAck.
  Status OnFrame(const Frame& frame);

  const RouteTable& table() const { return table_; }
  const NodeEntry& self() const { return self_; }
  // True once another member has answered (or when started without seeds).
  bool joined() const { return joined_; }
  // Called after every change to the table.
  void set_on_change(std::function<void()> fn) { on_change_ = std::move(fn); }
  // Called when the node bumps its own incarnation (to persist it).
  void set_on_incarnation(std::function<void(uint64_t)> fn) { on_incarnation_ = std::move(fn); }

  // Decommission, step one: this node takes itself off the ring (leaving, at a new
  // incarnation) while it hands its data off. Step two, Depart: it is Left (a new
  // incarnation again), for good. Both spread by gossip.
  void Leave();
  void Depart();
  // Test hook: merges an entry as if it came by gossip.
  void MergeForTest(const NodeEntry& e) { Merge({e}); }

 private:
  void ArmGossip(Clock::Duration delay);
  void GossipTick();
  void ProbeTick();
  void SendIndirectProbes();
  void CheckSuspects();
  // Marks Left the members seen Down for replace_after.
  void CheckReplacements();
  void Merge(const std::vector<NodeEntry>& entries);
  void SetState(const std::string& node_id, NodeState state);
  // The other members not Left, in node-id order: live (up or suspect) and down. Rebuilt
  // when the table has changed since the last call; the pointers stay valid until then.
  struct MemberView {
    uint64_t version = 0;
    std::vector<const NodeEntry*> live, down;
    std::vector<const NodeEntry*> replaced;  // Left without leaving: replaced, maybe only cut off
  };
  const MemberView& Members() const;
  // A gossip frame with our digest, and our whole table when with_entries.
  std::string GossipFrame(Kind kind, bool with_entries) const;
  static void Track(std::set<std::string>& ids, const std::string& id, bool in);
  void OnGossip(Kind kind, const GossipMessage& m);
  void OnPing(const ProbeMessage& m);
  void OnPingReq(const ProbeMessage& m);
  void OnPingAck(const ProbeMessage& m);

  const MembershipOptions options_;
  NodeEntry self_;
  Clock& clock_;
  Random& random_;
  MembershipSender& sender_;
  std::shared_ptr<spdlog::logger> log_;
  RouteTable table_;
  std::function<void()> on_change_;
  std::function<void(uint64_t)> on_incarnation_;

  bool running_ = false;
  std::vector<std::string> seeds_;
  bool joined_ = false;
  uint32_t join_attempts_ = 0;
  Clock::Duration join_backoff_{};
  Clock::TimerId gossip_timer_ = 0, probe_timer_ = 0, indirect_timer_ = 0;

  // The probe in progress.
  struct Probe {
    std::string node_id;
    std::string address;
    uint64_t seq = 0;
    bool acked = true;
  };
  Probe probe_;
  uint64_t next_seq_ = 1;
  std::vector<std::string> probe_order_;
  // PING_REQ relays in flight: our ping seq -> (origin address, origin seq).
  struct Relay {
    std::string origin;
    uint64_t origin_seq;
    Clock::Duration expires;
  };
  std::map<uint64_t, Relay> relays_;
  // Suspected members and when we suspected them (at the suspected incarnation).
  std::map<std::string, Clock::Duration> suspect_since_;
  // The other members in state suspect, and in state down: kept by Merge, so that the probe
  // tick does not walk the whole table.
  std::set<std::string> suspects_, downs_;
  // GossipFrame's last whole-table frame, of table_ at table_frame_version_.
  mutable MemberView members_;
  mutable std::string table_frame_;
  mutable uint64_t table_frame_version_ = 0;
  mutable Kind table_frame_kind_ = Kind::kGossip;
  // Members seen Down, and since when (by this node's clock).
  std::map<std::string, Clock::Duration> down_since_;
};

}  // namespace ringstore
