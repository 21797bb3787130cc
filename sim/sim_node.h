// SimNode: one ringstore node in the simulator, running the real NodeCore, PeerLinks and
// Membership over a SimTransport, a SimClock and a SimStore. Its records (a MemoryStore)
// and its identity survive a crash; everything else is rebuilt on restart, with the
// incarnation bumped, as ringstore-node does from DIR/MEMBERSHIP.
//
// SimStore is the simulated disk: every read and write takes a random latency, and a write
// becomes durable only when it completes, so a crash before then loses it (it was never
// acknowledged). An empty Apply (the Store barrier) completes after every write issued
// before it. Corrupt() flips a byte of a stored value, which the record checksum catches.
// Thread-safety: single-threaded.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "node/node_core.h"
#include "node/peer_links.h"
#include "routing/membership.h"
#include "sim/event_loop.h"
#include "sim/sim_network.h"
#include "storage/memory_store.h"

namespace ringstore::sim {

struct DiskFaults {
  Time min_latency = std::chrono::microseconds(50);
  Time max_latency = std::chrono::microseconds(500);
  // A planted bug: writes are acknowledged at once and become durable only after
  // lie_delay, so a crash in between loses acknowledged writes.
  bool lie = false;
  Time lie_delay = std::chrono::seconds(1);
};

class SimStore final : public Store {
 public:
  SimStore(EventLoop& loop, Random& rng, const DiskFaults& faults, MemoryStore& durable, std::shared_ptr<bool> alive)
      : loop_(loop), rng_(rng), faults_(faults), durable_(durable), alive_(std::move(alive)) {}

  void Get(const ObjectId& id, std::function<void(Result<Record>)> done) override;
  void Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) override;
  void Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) override;
  void Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
            std::function<void(Result<std::vector<ScanEntry>>)> done) override;
  void Hints(const ObjectId& begin, size_t limit, std::function<void(Result<std::vector<StoredHint>>)> done) override;
  // Durable once it completes, as Apply. (Calls here may complete out of order, so a hint can
  // outlive the handoff that forgot it: then it is handed off once more after a crash.)
  void ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) override;
  void Close(std::function<void(Status)> done) override;

 private:
  // Runs fn after a disk latency, unless the node has crashed by then; returns when.
  Time Later(std::function<void()> fn);
  EventLoop& loop_;
  Random& rng_;
  const DiskFaults& faults_;
  MemoryStore& durable_;
  std::shared_ptr<bool> alive_;
  Time writes_due_{0};  // when the last write issued so far completes (for barriers)
};

struct SimNodeOptions {
  uint32_t vnodes = 16;
  MembershipOptions membership;
  NodeOptions node;
  AntiEntropyOptions repair;
  bool run_repair = true;  // off: no anti-entropy, handoff of moved ranges or scrub (to see G2/G5 fail)
};

class SimNode {
 public:
  SimNode(EventLoop& loop, SimNetwork& net, Random& rng, const DiskFaults& disk, std::string address,
          std::string node_id, uint64_t ring_seed, SimNodeOptions options);
  ~SimNode();

  // Starts an instance that joins through seeds (none: a new ring).
  void Start(const std::vector<std::string>& seeds);
  // The process dies at once: no goodbye, unfinished writes lost.
  void Crash();
  bool up() const { return instance_ != nullptr; }

  const std::string& address() const { return address_; }
  const std::string& node_id() const { return node_id_; }
  MemoryStore& records() { return records_; }
  // The node's current route table (nullptr while down).
  const RouteTable* table() const;
  const NodeStats* stats() const;
  // The node's repair (nullptr while down, or when it runs none).
  const AntiEntropy* repair() const;
  // The machine's clock is off by offset_us and runs drift_ppm fast; kept across restarts.
  void SetSkew(int64_t offset_us, double drift_ppm);
  uint64_t incarnation() const { return incarnation_; }

 private:
  struct Instance;
  EventLoop& loop_;
  SimNetwork& net_;
  Random& rng_;
  const DiskFaults& disk_;
  const std::string address_;
  const std::string node_id_;
  const uint64_t ring_seed_;
  const SimNodeOptions options_;
  MemoryStore records_;
  uint64_t incarnation_ = 0;
  std::string placement_history_;  // what the node's anti-entropy saved (its DIR/PLACEMENT_HISTORY)
  int64_t skew_us_ = 0;
  double drift_ppm_ = 0;
  std::unique_ptr<Instance> instance_;
};

}  // namespace ringstore::sim
