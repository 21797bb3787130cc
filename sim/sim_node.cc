#include "sim/sim_node.h"

#include <spdlog/sinks/null_sink.h>

namespace ringstore::sim {

namespace {

std::shared_ptr<spdlog::logger> NullLogger() {
  static auto log = std::make_shared<spdlog::logger>("sim", std::make_shared<spdlog::sinks::null_sink_st>());
  return log;
}

constexpr int64_t kWallBaseUs = 1'800'000'000'000'000;  // the simulated epoch

}  // namespace

// ---- SimStore ---------------------------------------------------------------------------

Time SimStore::Later(std::function<void()> fn) {
  const int64_t lo = faults_.min_latency.count(), hi = faults_.max_latency.count();
  const Time lat(lo + static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(std::max<int64_t>(1, hi - lo)))));
  std::weak_ptr<bool> alive = alive_;
  loop_.After(lat, [alive, fn = std::move(fn)] {
    if (auto a = alive.lock(); a && *a) fn();
  });
  return loop_.now() + lat;
}

void SimStore::Get(const ObjectId& id, std::function<void(Result<Record>)> done) {
  std::weak_ptr<bool> alive = alive_;
  Later([this, id, alive, done = std::move(done)] {
    durable_.Get(id, [alive, done](Result<Record> r) {
      if (auto a = alive.lock(); a && *a) done(std::move(r));
    });
  });
}

void SimStore::Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) {
  std::weak_ptr<bool> alive = alive_;
  Later([this, id, alive, done = std::move(done)] {
    durable_.Stat(id, [alive, done](Result<RecordMeta> r) {
      if (auto a = alive.lock(); a && *a) done(std::move(r));
    });
  });
}

void SimStore::Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) {
  std::weak_ptr<bool> alive = alive_;
  if (faults_.lie) {
    Later([done] { done(Status::Ok()); });  // acknowledged before it is durable
    loop_.After(faults_.lie_delay, [this, alive, ops = std::move(ops)]() mutable {
      if (auto a = alive.lock(); a && *a) durable_.Apply(std::move(ops), [](Status) {});
    });
    return;
  }
  if (ops.empty()) {  // a barrier: after every write issued before it
    const Time wait = writes_due_ > loop_.now() ? writes_due_ - loop_.now() : Time(0);
    loop_.After(wait + std::chrono::microseconds(1), [alive, done = std::move(done)] {
      if (auto a = alive.lock(); a && *a) done(Status::Ok());
    });
    return;
  }
  // Durable only once the write completes: a crash before then loses it.
  writes_due_ = std::max(writes_due_, Later([this, alive, ops = std::move(ops), done = std::move(done)]() mutable {
    durable_.Apply(std::move(ops), [alive, done](Status s) {
      if (auto a = alive.lock(); a && *a) done(std::move(s));
    });
  }));
}

void SimStore::Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
                    std::function<void(Result<std::vector<ScanEntry>>)> done) {
  std::weak_ptr<bool> alive = alive_;
  Later([this, begin, end, limit, with_values, alive, done = std::move(done)] {
    durable_.Scan(begin, end, limit, with_values, [alive, done](Result<std::vector<ScanEntry>> r) {
      if (auto a = alive.lock(); a && *a) done(std::move(r));
    });
  });
}

void SimStore::Hints(const ObjectId& begin, size_t limit,
                     std::function<void(Result<std::vector<StoredHint>>)> done) {
  std::weak_ptr<bool> alive = alive_;
  Later([this, begin, limit, alive, done = std::move(done)] {
    durable_.Hints(begin, limit, [alive, done](Result<std::vector<StoredHint>> r) {
      if (auto a = alive.lock(); a && *a) done(std::move(r));
    });
  });
}

void SimStore::ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) {
  std::weak_ptr<bool> alive = alive_;
  Later([this, alive, hints = std::move(hints), done = std::move(done)]() mutable {
    durable_.ForgetHints(std::move(hints), [alive, done](Status s) {
      if (auto a = alive.lock(); a && *a) done(std::move(s));
    });
  });
}

void SimStore::Close(std::function<void(Status)> done) {
  Later([done = std::move(done)] { done(Status::Ok()); });
}

// ---- SimNode ----------------------------------------------------------------------------

struct SimNode::Instance {
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::unique_ptr<SimClock> clock;
  std::unique_ptr<SimTransport> transport;
  std::unique_ptr<SimStore> store;
  std::unique_ptr<SeededRandom> random;
  std::unique_ptr<NodeCore> core;
  std::unique_ptr<PeerLinks> peers;
  std::unique_ptr<Membership> membership;
  std::unique_ptr<HintedHandoff> handoff;
  std::unique_ptr<AntiEntropy> repair;

  ~Instance() {
    *alive = false;
    repair.reset();
    handoff.reset();
    membership.reset();
    peers.reset();
    transport->SetHandler(nullptr);
    core.reset();
    store.reset();
    transport.reset();  // the peers hear of the crash
    clock.reset();      // every timer left is cancelled
  }
};

SimNode::SimNode(EventLoop& loop, SimNetwork& net, Random& rng, const DiskFaults& disk, std::string address,
                 std::string node_id, uint64_t ring_seed, SimNodeOptions options)
    : loop_(loop),
      net_(net),
      rng_(rng),
      disk_(disk),
      address_(std::move(address)),
      node_id_(std::move(node_id)),
      ring_seed_(ring_seed),
      options_(std::move(options)),
      records_([&loop](std::function<void()> fn) { loop.After(Time{0}, std::move(fn)); }) {}

SimNode::~SimNode() { instance_.reset(); }

void SimNode::Start(const std::vector<std::string>& seeds) {
  if (instance_) return;
  ++incarnation_;
  auto in = std::make_unique<Instance>();
  in->clock = std::make_unique<SimClock>(loop_, kWallBaseUs);
  in->clock->SetSkew(skew_us_, drift_ppm_);
  in->transport = std::make_unique<SimTransport>(net_, address_, /*listen=*/true);
  in->store = std::make_unique<SimStore>(loop_, rng_, disk_, records_, in->alive);
  in->random = std::make_unique<SeededRandom>(rng_.Next());
  NodeOptions no = options_.node;
  no.node_id = node_id_;
  in->core = std::make_unique<NodeCore>(no, *in->clock, *in->transport, *in->store, NullLogger());
  in->core->Start();
  in->peers = std::make_unique<PeerLinks>(PeerLinkOptions{}, no.cluster_id, node_id_, *in->transport, *in->clock,
                                          NullLogger());
  NodeEntry self;
  self.node_id = node_id_;
  self.address = address_;
  self.ring_seed = ring_seed_;
  self.incarnation = incarnation_;
  self.vnodes = options_.vnodes;
  in->membership = std::make_unique<Membership>(options_.membership, self, *in->clock, *in->random, *in->peers,
                                                NullLogger());
  in->core->AttachMembership(in->membership.get(), in->peers.get());
  HandoffOptions handoff;
  handoff.tombstone_grace = options_.repair.tombstone_grace;
  in->handoff = std::make_unique<HintedHandoff>(handoff, node_id_, *in->clock, *in->store, *in->peers,
                                                *in->membership, NullLogger());
  in->core->AttachHandoff(in->handoff.get());
  in->handoff->Start();
  if (options_.run_repair) {
    AntiEntropyOptions repair = options_.repair;
    repair.placement_history = placement_history_;  // kept across crashes, as DIR/PLACEMENT_HISTORY is
    repair.save_placement_history = [this](const std::string& bytes) { placement_history_ = bytes; };
    in->repair = std::make_unique<AntiEntropy>(repair, node_id_, *in->clock, *in->store, *in->peers,
                                               *in->membership, NullLogger());
    in->core->AttachRepair(in->repair.get());
  }
  in->membership->Start(seeds);
  if (in->repair) in->repair->Start();
  instance_ = std::move(in);
}

void SimNode::Crash() { instance_.reset(); }

const RouteTable* SimNode::table() const { return instance_ ? &instance_->membership->table() : nullptr; }

const AntiEntropy* SimNode::repair() const { return instance_ ? instance_->repair.get() : nullptr; }

const NodeStats* SimNode::stats() const { return instance_ ? &instance_->core->stats() : nullptr; }

void SimNode::SetSkew(int64_t offset_us, double drift_ppm) {
  skew_us_ = offset_us;
  drift_ppm_ = drift_ppm;
  if (instance_) instance_->clock->SetSkew(offset_us, drift_ppm);
}

}  // namespace ringstore::sim
