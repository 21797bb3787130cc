#include "sim/scenario.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "routing/placement.h"
#include "sim/sim_node.h"

namespace ringstore::sim {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Time Seconds(double s) { return Time(static_cast<int64_t>(s * 1e9)); }
double ToSeconds(Time t) { return static_cast<double>(t.count()) / 1e9; }

std::string Fmt(Time t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", ToSeconds(t));
  return buf;
}

// Everything one run owns. Members are destroyed in reverse order: clients before nodes
// before the network before the loop.
class World {
 public:
  explicit World(const SimOptions& o) : options_(o), rng_(o.seed), net_(loop_, rng_) {
    disk_.lie = o.bug_lying_disk;
    node_options_.vnodes = o.vnodes;
    node_options_.membership.probe_interval = milliseconds(200);
    node_options_.membership.probe_timeout = milliseconds(80);
    node_options_.membership.suspicion_timeout = seconds(1);
    node_options_.membership.replace_after = Seconds(o.replace_after_s);
    node_options_.repair.replace_after = Seconds(o.replace_after_s);
    node_options_.repair.replicas = o.node_replicas != 0 ? o.node_replicas : o.quorum.n;
    node_options_.repair.interval = Seconds(o.repair_interval_s);
    node_options_.repair.first_round = seconds(1);
    node_options_.repair.ring_settle = seconds(1);
    node_options_.repair.busy_pause = seconds(1);
    node_options_.repair.request_timeout = seconds(3);
    node_options_.repair.retry_delay = milliseconds(200);
    node_options_.repair.scrub_pause = seconds(2);
    node_options_.repair.tombstone_grace = Seconds(o.tombstone_grace_s);
    node_options_.run_repair = !o.bug_no_repair;
  }

  SimNode& AddNode() {
    const uint32_t i = static_cast<uint32_t>(nodes_.size());
    char id[33];
    std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(rng_.Next()),
                  static_cast<unsigned long long>(i));
    nodes_.push_back(std::make_unique<SimNode>(loop_, net_, rng_, disk_, "node" + std::to_string(i) + ":7400", id,
                                               rng_.Next(), node_options_));
    return *nodes_.back();
  }
  // Addresses of the nodes that are up (the seeds a joiner or client may use).
  std::vector<std::string> UpAddresses() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) {
      if (n->up()) out.push_back(n->address());
    }
    return out;
  }
  // Every up node has the same table, listing every up node as up and no one else as up.
  bool Settled() const {
    const RouteTable* first = nullptr;
    size_t up = 0;
    for (const auto& n : nodes_) {
      if (!n->up()) continue;
      ++up;
      const RouteTable* t = n->table();
      if (first == nullptr) first = t;
      if (t->Digest() != first->Digest()) return false;
    }
    if (first == nullptr) return false;
    size_t listed_up = 0;
    for (const auto& [id, e] : first->entries()) {
      if (e.state == NodeState::kUp) ++listed_up;
    }
    return listed_up == up;
  }

  const SimOptions& options_;
  EventLoop loop_;
  SeededRandom rng_;
  SimNetwork net_;
  DiskFaults disk_;
  SimNodeOptions node_options_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::set<size_t> left_;  // nodes gone for good (churn)
};

// Breaks things at random moments during the workload, and undoes each break after a while.
class FaultInjector {
 public:
  FaultInjector(World& w, SimReport& report) : w_(w), report_(report) {}

  void Run(Time from, Time until) {
    until_ = until;
    if (w_.options_.faults.empty()) return;
    w_.loop_.At(from, [this] { Next(); });
  }

 private:
  bool On(const char* kind) const { return w_.options_.faults.count(kind) != 0; }
  uint64_t Pick(uint64_t n) { return w_.rng_.Uniform(n); }
  Time Between(double lo_s, double hi_s) {
    return Seconds(lo_s) + Time(static_cast<int64_t>(w_.rng_.Uniform(static_cast<uint64_t>((hi_s - lo_s) * 1e9) + 1)));
  }
  void Log(const std::string& what) {
    ++report_.faults_injected;
    report_.fault_log.push_back(Fmt(w_.loop_.now()) + " " + what);
  }
  std::vector<size_t> UpNodes() const {
    std::vector<size_t> up;
    for (size_t i = 0; i < w_.nodes_.size(); ++i) {
      if (w_.nodes_[i]->up()) up.push_back(i);
    }
    return up;
  }
  const std::string& Addr(size_t i) const { return w_.nodes_[i]->address(); }

  void Next() {
    if (w_.loop_.now() >= until_) return;
    std::vector<std::string> kinds;
    for (const auto& k : FaultKinds()) {
      if (On(k.c_str())) kinds.push_back(k);
    }
    const std::string kind = kinds[Pick(kinds.size())];
    const Time hold = Between(0.5, 4);
    if (kind == "partition") Partition(hold);
    else if (kind == "crash") Crash(hold);
    else if (kind == "loss") NetKnob("loss", hold, [](NetFaults& f, bool on) { f.loss = on ? 0.05 : 0; });
    else if (kind == "dup") NetKnob("dup", hold, [](NetFaults& f, bool on) { f.dup = on ? 0.05 : 0; });
    else if (kind == "reorder") NetKnob("reorder", hold, [](NetFaults& f, bool on) { f.reorder_jitter = on ? milliseconds(20) : Time{0}; });
    else if (kind == "skew") Skew();
    else if (kind == "corrupt") Corrupt();
    else if (kind == "churn") Churn();
    w_.loop_.After(Between(0.3, 2), [this] { Next(); });
  }

  void Partition(Time hold) {
    const size_t n = w_.nodes_.size();
    std::vector<std::pair<size_t, size_t>> cut;  // directed links (a -> b)
    auto both = [&](size_t a, size_t b) {
      cut.push_back({a, b});
      cut.push_back({b, a});
    };
    std::string what;
    switch (Pick(5)) {
      case 0: {  // random halves
        std::vector<bool> side(n);
        for (size_t i = 0; i < n; ++i) side[i] = Pick(2) == 1;
        for (size_t a = 0; a < n; ++a)
          for (size_t b = a + 1; b < n; ++b)
            if (side[a] != side[b]) both(a, b);
        what = "partition: random halves";
        break;
      }
      case 1: {  // one node isolated
        const size_t x = Pick(n);
        for (size_t b = 0; b < n; ++b)
          if (b != x) both(x, b);
        what = "partition: " + Addr(x) + " isolated";
        break;
      }
      case 2: {  // a bridge sees both halves
        const size_t bridge = Pick(n);
        std::vector<bool> side(n);
        for (size_t i = 0; i < n; ++i) side[i] = Pick(2) == 1;
        for (size_t a = 0; a < n; ++a)
          for (size_t b = a + 1; b < n; ++b)
            if (a != bridge && b != bridge && side[a] != side[b]) both(a, b);
        what = "partition: halves bridged by " + Addr(bridge);
        break;
      }
      case 3: {  // asymmetric: x hears nobody, everyone hears x
        const size_t x = Pick(n);
        for (size_t b = 0; b < n; ++b)
          if (b != x) cut.push_back({b, x});
        what = "partition: " + Addr(x) + " deaf (asymmetric)";
        break;
      }
      default: {  // swizzle: cut links one by one, restore them in random order
        std::vector<std::pair<size_t, size_t>> links;
        for (size_t a = 0; a < n; ++a)
          for (size_t b = a + 1; b < n; ++b) links.push_back({a, b});
        for (size_t i = links.size(); i > 1; --i) std::swap(links[i - 1], links[Pick(i)]);
        links.resize(std::min<size_t>(links.size(), n));
        Log("partition: swizzle of " + std::to_string(links.size()) + " links");
        Time t{0};
        for (auto [a, b] : links) {
          t += milliseconds(100);
          w_.loop_.After(t, [this, a = a, b = b] {
            w_.net_.Cut(Addr(a), Addr(b));
            w_.net_.Cut(Addr(b), Addr(a));
          });
        }
        for (size_t i = links.size(); i > 1; --i) std::swap(links[i - 1], links[Pick(i)]);
        for (auto [a, b] : links) {
          t += milliseconds(100);
          w_.loop_.After(hold + t, [this, a = a, b = b] {
            w_.net_.Heal(Addr(a), Addr(b));
            w_.net_.Heal(Addr(b), Addr(a));
          });
        }
        return;
      }
    }
    Log(what + " for " + Fmt(hold));
    for (auto [a, b] : cut) w_.net_.Cut(Addr(a), Addr(b));
    w_.loop_.After(hold, [this, cut] {
      for (auto [a, b] : cut) w_.net_.Heal(Addr(a), Addr(b));
    });
  }

  void Crash(Time hold) {
    auto up = UpNodes();
    // Keep a majority up, so that the ring and its quorums can go on.
    if (up.size() * 2 <= w_.nodes_.size() + 1 || up.size() <= 1) return;
    const size_t x = up[Pick(up.size())];
    Log("crash " + Addr(x) + ", restart in " + Fmt(hold));
    w_.nodes_[x]->Crash();
    w_.loop_.After(hold, [this, x] {
      if (w_.left_.count(x) == 0 && !w_.nodes_[x]->up()) w_.nodes_[x]->Start(w_.UpAddresses());
    });
  }

  template <typename F>
  void NetKnob(const std::string& name, Time hold, F set) {
    Log(name + " on for " + Fmt(hold));
    set(w_.net_.faults(), true);
    w_.loop_.After(hold, [this, set] { set(w_.net_.faults(), false); });
  }

  void Skew() {
    const size_t x = Pick(w_.nodes_.size());
    const int64_t offset_us = static_cast<int64_t>(Pick(4'000'001)) - 2'000'000;  // +-2 s
    const double drift = static_cast<double>(static_cast<int64_t>(Pick(401)) - 200);  // +-200 ppm
    Log("skew " + Addr(x) + ": " + std::to_string(offset_us / 1000) + " ms, " + std::to_string(static_cast<int>(drift)) +
        " ppm");
    w_.nodes_[x]->SetSkew(offset_us, drift);
  }

  void Corrupt() {
    const size_t x = Pick(w_.nodes_.size());
    const uint32_t key = static_cast<uint32_t>(Pick(w_.options_.keys));
    if (w_.left_.count(x) != 0) return;  // its disk is gone with it
    Record* r = w_.nodes_[x]->records().MutableRecordForTest(KeyId(key));
    if (r == nullptr || r->value.empty()) return;
    r->value[Pick(r->value.size())] ^= static_cast<char>(1 + Pick(255));
    Log("corrupt key " + std::to_string(key) + " on " + Addr(x));
    corrupted_.push_back({x, key});
  }

  void Churn() {
    // A new node joins; or, with enough nodes, one leaves for good (never below N + 2).
    // At most N - W leave in a run: past that, a write's every holder may be gone for good,
    // which G1 does not promise to survive until re-replication exists.
    const uint32_t n = w_.options_.quorum.n;
    const uint32_t may_leave = n - std::min(n, w_.options_.quorum.w);
    auto up = UpNodes();
    if (Pick(2) == 0 || up.size() <= n + 2 || w_.left_.size() >= may_leave) {
      SimNode& node = w_.AddNode();
      node.Start(w_.UpAddresses());
      Log("churn: " + node.address() + " joins");
      return;
    }
    const size_t x = up[Pick(up.size())];
    w_.left_.insert(x);
    w_.nodes_[x]->Crash();
    Log("churn: " + Addr(x) + " leaves for good");
  }

 public:
  std::vector<std::pair<size_t, uint32_t>> corrupted_;

 private:
  World& w_;
  SimReport& report_;
  Time until_{0};
};

// Runs the loop until cond holds or the limit passes; true if it held.
template <typename F>
bool RunUntil(EventLoop& loop, Time limit, F cond) {
  while (!cond()) {
    if (loop.now() >= limit || !loop.RunOne()) return cond();
  }
  return true;
}

}  // namespace

const std::vector<std::string>& FaultKinds() {
  static const std::vector<std::string> kinds = {"partition", "crash", "loss", "dup", "reorder", "skew", "corrupt", "churn"};
  return kinds;
}

SimReport RunScenario(const SimOptions& o) {
  const auto wall_start = std::chrono::steady_clock::now();
  SimReport report;
  World w(o);
  // The ring forms: node 0 starts it, the others join through it.
  for (uint32_t i = 0; i < o.nodes; ++i) {
    SimNode& n = w.AddNode();
    n.Start(i == 0 ? std::vector<std::string>{} : std::vector<std::string>{w.nodes_[0]->address()});
  }
  RunUntil(w.loop_, seconds(10), [&] { return w.Settled(); });
  const Time start = w.loop_.now();
  const Time end = start + Seconds(o.duration_s);

  WorkloadOptions wo;
  wo.clients = o.clients;
  wo.keys = o.keys;
  wo.quorum = o.quorum;
  wo.early_stamp_n = o.early_stamp_n;
  wo.early_until = w.loop_.now() + Seconds(o.early_s);
  wo.fallbacks = o.fallbacks;
  auto workload = std::make_unique<Workload>(w.loop_, w.net_, w.rng_, wo);
  workload->Start(w.UpAddresses(), end);
  FaultInjector faults(w, report);
  faults.Run(start + seconds(1), end);
  w.loop_.RunUntil(end);

  // Faults stop: heal, restart, let the clients finish, and let the membership settle.
  w.net_.HealAll();
  w.net_.faults() = NetFaults{};
  for (size_t i = 0; i < w.nodes_.size(); ++i) {
    if (!w.nodes_[i]->up() && w.left_.count(i) == 0) w.nodes_[i]->Start(w.UpAddresses());
  }
  const Time healed = w.loop_.now();
  const bool settled = RunUntil(w.loop_, healed + Seconds(o.settle_limit_s), [&] { return w.Settled() && workload->idle(); });
  report.settle_s = settled ? ToSeconds(w.loop_.now() - healed) : -1;
  // Let client tables catch up with the settled ring.
  w.loop_.RunUntil(w.loop_.now() + seconds(2));

  // The ring the checks place keys by: the table of the first node that is up (after
  // settling, every up node holds the same one).
  auto settled_table = [&]() -> const RouteTable* {
    for (const auto& n : w.nodes_) {
      if (n->up()) return n->table();
    }
    return nullptr;
  };
  // G2 and G5: once the faults stop, anti-entropy and scrub bring every key's N placement
  // nodes to the same record and repair every corrupted one, within converge_limit_s. Checked
  // before the final reads, whose read repair would otherwise do part of the work.
  auto divergence = [&](std::vector<Finding>* out) {
    uint64_t divergent = 0, unrepaired = 0;
    const RouteTable* table = settled_table();
    std::map<std::string, SimNode*> by_address;
    for (const auto& n : w.nodes_) by_address[n->address()] = n.get();
    if (table != nullptr) {
      for (uint32_t k = 0; k < o.keys; ++k) {
        std::optional<std::pair<Timestamp, uint64_t>> first;
        bool differ = false;
        std::string held;
        for (const NodeEntry* e : PlaceReplicas(*table, KeyId(k), o.quorum.n)) {
          Record* r = by_address[e->address]->records().MutableRecordForTest(KeyId(k));
          const std::pair<Timestamp, uint64_t> v =
              r ? std::make_pair(r->meta.ts, r->meta.checksum) : std::make_pair(Timestamp{0}, uint64_t{0});
          if (!first) first = v;
          else if (*first != v) differ = true;
          held += " " + e->address + "=" +
                  (r == nullptr ? std::string("none") : (r->meta.tombstone() ? "del@" : "put@") + std::to_string(r->meta.ts));
        }
        if (differ) {
          ++divergent;
          if (out) {
            out->push_back({"G2", k, "replicas still differ " + Fmt(Seconds(o.converge_limit_s)) + " after the faults stopped:" + held});
          }
        }
      }
    }
    for (auto [node, key] : faults.corrupted_) {
      if (w.left_.count(node) != 0) continue;  // gone for good, with its disk
      Record* r = w.nodes_[node]->records().MutableRecordForTest(KeyId(key));
      if (r != nullptr && !r->Intact()) {
        ++unrepaired;
        if (out) out->push_back({"G5", key, "record corrupted on " + w.nodes_[node]->address() + " is still corrupt"});
      }
    }
    return std::make_pair(divergent, unrepaired);
  };
  // Repair is done when every node that is up has finished a round under the ring it holds
  // now, and no node outside a key's replicas holds a newer record of it than they do. A
  // former holder hands a record off only after a round on an unchanged ring, so until then
  // the new replicas may all agree that they have nothing (seed 163497538531148939: two
  // joins and a replacement moved all three replicas of a key; the check passed at once and
  // the final reads found nothing).
  auto repaired = [&] {
    const bool synced = std::all_of(w.nodes_.begin(), w.nodes_.end(), [](const std::unique_ptr<SimNode>& n) {
      return !n->up() || n->repair() == nullptr || n->repair()->synced();
    });
    if (!synced) return false;
    const RouteTable* table = settled_table();
    if (table == nullptr) return true;
    for (uint32_t k = 0; k < o.keys; ++k) {
      std::set<std::string> replicas;
      std::optional<RecordMeta> newest_placed;
      for (const NodeEntry* e : PlaceReplicas(*table, KeyId(k), o.quorum.n)) replicas.insert(e->address);
      for (const auto& n : w.nodes_) {
        const Record* r = n->up() ? n->records().MutableRecordForTest(KeyId(k)) : nullptr;
        if (r != nullptr && replicas.count(n->address()) != 0 && (!newest_placed || Supersedes(r->meta, *newest_placed))) {
          newest_placed = r->meta;
        }
      }
      for (const auto& n : w.nodes_) {
        const Record* r = n->up() && replicas.count(n->address()) == 0 ? n->records().MutableRecordForTest(KeyId(k)) : nullptr;
        if (r != nullptr && (!newest_placed || Supersedes(r->meta, *newest_placed))) return false;  // not handed off yet
      }
    }
    return true;
  };
  const Time quiet = w.loop_.now();
  Time next_poll{0};
  const bool converged = RunUntil(w.loop_, quiet + Seconds(o.converge_limit_s), [&] {
    // Polled twice a virtual second, not at every event.
    if (w.loop_.now() < next_poll) return false;
    next_poll = w.loop_.now() + milliseconds(500);
    return repaired() && divergence(nullptr) == std::make_pair(uint64_t{0}, uint64_t{0});
  });
  report.converge_s = converged ? ToSeconds(w.loop_.now() - quiet) : -1;
  if (o.linger_s > 0) {
    w.loop_.RunUntil(w.loop_.now() + Seconds(o.linger_s));
    RunUntil(w.loop_, w.loop_.now() + Seconds(o.converge_limit_s), [&] {
      if (w.loop_.now() < next_poll) return false;
      next_poll = w.loop_.now() + milliseconds(500);
      return repaired() && divergence(nullptr) == std::make_pair(uint64_t{0}, uint64_t{0});
    });
  }
  for (const auto& n : w.nodes_) {
    if (n->repair() != nullptr) report.tombstones_collected += n->repair()->status().tombstones_collected;
  }
  std::vector<Finding> convergence_findings;
  std::tie(report.divergent_keys, report.unrepaired) = divergence(&convergence_findings);
  if (const RouteTable* table = settled_table()) {
    const uint32_t node_n = o.node_replicas != 0 ? o.node_replicas : o.quorum.n;
    for (uint32_t k = 0; k < o.keys; ++k) {
      const Record* newest = nullptr;
      for (const auto& n : w.nodes_) {
        const Record* r = n->up() ? n->records().MutableRecordForTest(KeyId(k)) : nullptr;
        if (r != nullptr && (newest == nullptr || Supersedes(r->meta, newest->meta))) newest = r;
      }
      if (newest == nullptr) continue;
      const uint32_t n_of = newest->meta.replicas() != 0 ? newest->meta.replicas() : node_n;
      std::set<std::string> replicas;
      for (const NodeEntry* e : PlaceReplicas(*table, KeyId(k), n_of)) replicas.insert(e->address);
      for (const auto& n : w.nodes_) {
        if (n->up() && replicas.count(n->address()) == 0 && n->records().MutableRecordForTest(KeyId(k)) != nullptr) {
          ++report.extra_copies;
        }
      }
    }
  }

  // Final reads at R = N, through a fresh client: R = the key's replicas that are up, when a
  // replica left for good too late to be replaced (a fallback's NotFound does not count).
  const Quorum all = FitToRing(Quorum{o.quorum.n, o.quorum.w, o.quorum.n}, w.UpAddresses().size());
  auto checker = workload->NewClient(w.UpAddresses(), "checker");
  std::map<uint32_t, FinalRecord> final;
  if (checker != nullptr) {
    for (uint32_t k = 0; k < o.keys; ++k) {
      Quorum qk = all;
      if (const RouteTable* t = settled_table()) {
        uint32_t up = 0;
        for (const NodeEntry* e : PlaceReplicas(*t, KeyId(k), all.n)) {
          for (const auto& n : w.nodes_) up += n->address() == e->address && n->up() ? 1 : 0;
        }
        qk.r = std::clamp<uint32_t>(up, 1, all.r);
      }
      std::optional<Result<Record>> got;
      checker->Get(KeyId(k), qk, [&](Result<Record> r) { got.emplace(std::move(r)); });
      RunUntil(w.loop_, w.loop_.now() + seconds(30), [&] { return got.has_value(); });
      FinalRecord& f = final[k];
      for (const auto& n : w.nodes_) {
        f.newest_tombstone_stored = std::max(f.newest_tombstone_stored, n->records().NewestTombstoneStored(KeyId(k)));
      }
      if (!got) {
        f.error = "no answer";
      } else if (got->ok()) {
        f.read_ok = f.exists = true;
        f.meta = (*got)->meta;
        f.value = (*got)->value;
      } else if (got->status().IsNotFound()) {
        f.read_ok = true;
      } else {
        f.error = got->status().ToString();
      }
    }
  }
  report.history = workload->history();
  auto found = CheckAcknowledgedWrites(report.history, final);
  found.insert(found.end(), convergence_findings.begin(), convergence_findings.end());

  // G3 in the quiet phase: a write then a read of the same key, one after the other.
  if (checker != nullptr) {
    for (uint32_t k = 0; k < std::min<uint32_t>(o.keys, 16); ++k) {
      const std::string v = "quiet-" + std::to_string(k);
      std::optional<Result<Ack>> put;
      checker->Put(KeyId(k), v, o.quorum, [&](Result<Ack> r) { put.emplace(std::move(r)); });
      RunUntil(w.loop_, w.loop_.now() + seconds(30), [&] { return put.has_value(); });
      if (!put || !put->ok()) {
        found.push_back({"G3", k, "quiet-phase write failed: " + (put ? put->status().ToString() : std::string("no answer"))});
        continue;
      }
      std::optional<Result<Record>> got;
      checker->Get(KeyId(k), o.quorum, [&](Result<Record> r) { got.emplace(std::move(r)); });
      RunUntil(w.loop_, w.loop_.now() + seconds(30), [&] { return got.has_value(); });
      if (!got || !got->ok() || (*got)->value != v) {
        found.push_back({"G3", k, "quiet-phase read after an acknowledged write did not return it: " +
                                      (got && got->ok() ? "'" + (*got)->value + "'" : got ? got->status().ToString() : "no answer")});
      }
    }
  }
  checker.reset();

  for (const HistoryOp& op : report.history) {
    ++report.ops;
    if (op.type == OpType::kGet) ++report.reads;
    if (op.outcome == Outcome::kOk) ++report.acked;
    if (op.outcome == Outcome::kUnknown) ++report.unknown;
  }
  for (const Finding& f : found) {
    if (f.check == "G1") ++report.lost;
    if (f.check == "G4") ++report.resurrected;
    if (f.check == "G3") ++report.stale_reads;
  }
  report.missed_reads = CountMissedReads(report.history);
  report.max_missed_reads = o.max_missed_reads;
  report.findings = std::move(found);
  report.messages = w.net_.stats().frames_delivered;
  report.events = w.loop_.events_run();
  report.virtual_s = ToSeconds(w.loop_.now());
  for (const HistoryOp& op : report.history) {
    w.net_.Trace(static_cast<uint64_t>(op.invoke.count()), static_cast<uint64_t>(op.complete.count()), op.ts);
  }
  report.trace_hash = w.net_.trace_hash();
  workload.reset();
  report.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return report;
}

}  // namespace ringstore::sim
