// Membership over a deterministic fake world: one FakeClock, messages delivered after a
// fixed latency, with per-link drops and whole-node crashes. Seeded; no wall time.
#include "routing/membership.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include <memory>
#include <set>

#include "tests/support/fake_clock.h"

namespace ringstore {
namespace {

constexpr auto kLatency = std::chrono::milliseconds(2);

class World {
 public:
  struct Node;
  class Sender final : public MembershipSender {
   public:
    Sender(World& w, std::string from) : w_(w), from_(std::move(from)) {}
    void SendTo(const std::string& to, std::string frame) override { w_.Deliver(from_, to, std::move(frame)); }

   private:
    World& w_;
    std::string from_;
  };
  struct Node {
    std::string address;
    std::unique_ptr<Sender> sender;
    std::unique_ptr<SeededRandom> random;
    std::unique_ptr<Membership> m;
    bool up = true;
  };

  explicit World(uint64_t seed, Clock::Duration replace_after = Clock::Duration::zero())
      : seed_(seed), replace_after_(replace_after) {}

  MembershipOptions Options() const {
    MembershipOptions o;
    o.probe_interval = std::chrono::milliseconds(500);
    o.probe_timeout = std::chrono::milliseconds(100);
    o.suspicion_timeout = std::chrono::seconds(2);
    o.replace_after = replace_after_;
    return o;
  }

  // Adds and starts a node; ring_seed and incarnation default from the world's seed.
  Node& Add(int index, std::vector<std::string> seeds, uint64_t incarnation = 0) {
    auto n = std::make_unique<Node>();
    n->address = "node" + std::to_string(index) + ":7400";
    NodeEntry self;
    char id[33];
    std::snprintf(id, sizeof id, "%032d", index);
    self.node_id = id;
    self.address = n->address;
    self.ring_seed = seed_ * 1000 + static_cast<uint64_t>(index);
    self.vnodes = 16;
    self.incarnation = incarnation;
    n->sender = std::make_unique<Sender>(*this, n->address);
    n->random = std::make_unique<SeededRandom>(seed_ * 7919 + static_cast<uint64_t>(index));
    auto log = std::make_shared<spdlog::logger>("m", std::make_shared<spdlog::sinks::null_sink_mt>());
    n->m = std::make_unique<Membership>(Options(), self, clock, *n->random, *n->sender, log);
    n->m->Start(std::move(seeds));
    Node& ref = *n;
    nodes_[n->address] = std::move(n);
    return ref;
  }
  void Crash(const std::string& address) {
    nodes_.at(address)->up = false;
    nodes_.at(address)->m->Stop();
  }
  // Forgets a crashed node so it can be added again (a restart).
  void Remove(const std::string& address) { nodes_.erase(address); }
  void Cut(const std::string& a, const std::string& b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void Heal() { cut_.clear(); }
  void Run(Clock::Duration d) { clock.Advance(d); }
  Membership& at(const std::string& address) { return *nodes_.at(address)->m; }
  std::vector<Node*> up_nodes() {
    std::vector<Node*> v;
    for (auto& [a, n] : nodes_) {
      if (n->up) v.push_back(n.get());
    }
    return v;
  }
  // True when every live node has the same table digest.
  bool Converged() {
    std::set<uint64_t> digests;
    for (auto* n : up_nodes()) digests.insert(n->m->table().Digest());
    return digests.size() == 1;
  }
  // Advances in small steps until pred holds; returns the virtual time it took, or -1.
  double RunUntil(const std::function<bool()>& pred, Clock::Duration bound) {
    const auto start = clock.Now();
    while (clock.Now() - start < bound) {
      if (pred()) return std::chrono::duration<double>(clock.Now() - start).count();
      clock.Advance(std::chrono::milliseconds(50));
    }
    return pred() ? std::chrono::duration<double>(bound).count() : -1;
  }
  uint64_t messages() const { return messages_; }
  uint64_t pushes_by(const std::string& address) { return pushes_by_[address]; }

  testing::FakeClock clock;

 private:
  void Deliver(const std::string& from, const std::string& to, std::string frame) {
    ++messages_;
    const auto kind = static_cast<uint16_t>(static_cast<uint8_t>(frame[6]) | static_cast<uint8_t>(frame[7]) << 8);
    if (kind == static_cast<uint16_t>(Kind::kGossip)) ++pushes_by_[from];
    if (cut_.count({from, to})) return;
    clock.Schedule(kLatency, [this, to, frame = std::move(frame)] {
      auto it = nodes_.find(to);
      if (it == nodes_.end() || !it->second->up) return;
      FrameDecoder d;
      ASSERT_TRUE(d.Feed(frame.data(), frame.size()).ok());
      ASSERT_TRUE(d.HasFrame());
      ASSERT_TRUE(it->second->m->OnFrame(d.Next()).ok());
    });
  }

  uint64_t seed_;
  Clock::Duration replace_after_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  std::set<std::pair<std::string, std::string>> cut_;
  uint64_t messages_ = 0;
  std::map<std::string, uint64_t> pushes_by_;
};

NodeState StateIn(Membership& viewer, const std::string& node_id) {
  const NodeEntry* e = viewer.table().Find(node_id);
  return e ? e->state : NodeState::kLeft;
}

// Starts node0 alone and nodes 1..n-1 told only node0's address, and waits for one table.
void StartCluster(World& w, int n) {
  w.Add(0, {});
  for (int i = 1; i < n; ++i) w.Add(i, {"node0:7400"});
  ASSERT_GE(w.RunUntil([&] { return w.Converged() && w.at("node0:7400").table().size() == static_cast<size_t>(n); },
                       std::chrono::seconds(10)), 0)
      << "no convergence within 10 s";
}

TEST(MembershipTest, FiveNodesToldOnlyTheFirstConvergeOnOneTable) {
  for (uint64_t seed : {1, 2, 3}) {
    World w(seed);
    w.Add(0, {});
    for (int i = 1; i < 5; ++i) w.Add(i, {"node0:7400"});
    const double t = w.RunUntil([&] { return w.Converged() && w.at("node0:7400").table().size() == 5; },
                                std::chrono::seconds(10));
    ASSERT_GE(t, 0) << "no convergence within 10 s, seed " << seed;
    EXPECT_LE(t, 3.0) << "seed " << seed;
    for (auto* n : w.up_nodes()) {
      EXPECT_TRUE(n->m->joined());
      for (const auto& [id, e] : n->m->table().entries()) EXPECT_EQ(e.state, NodeState::kUp);
    }
  }
}

TEST(MembershipTest, ACrashedNodeIsDeclaredDownByEveryoneWithinTheBound) {
  World w(7);
  StartCluster(w, 5);
  const std::string dead_id = w.at("node3:7400").self().node_id;
  w.Crash("node3:7400");
  // Bound: every live member probes node3 within one round (4 members x 0.5 s), then
  // suspicion (2 s) and gossip spread. We allow 8 s.
  const double t = w.RunUntil([&] {
    for (auto* n : w.up_nodes()) {
      if (StateIn(*n->m, dead_id) != NodeState::kDown) return false;
    }
    return true;
  }, std::chrono::seconds(8));
  ASSERT_GE(t, 0) << "node3 not declared down everywhere within 8 s";
  EXPECT_TRUE(w.Converged());
}

TEST(MembershipTest, OneLossyLinkDoesNotBringANodeDown) {
  World w(11);
  StartCluster(w, 5);
  w.Cut("node1:7400", "node2:7400");  // both directions, for good
  w.Run(std::chrono::seconds(30));
  for (auto* n : w.up_nodes()) {
    for (const auto& [id, e] : n->m->table().entries()) {
      EXPECT_EQ(e.state, NodeState::kUp) << n->address << " thinks " << e.address << " is " << NodeStateName(e.state);
    }
  }
}

TEST(MembershipTest, ANodeCutOffReplacesNoOneAndRejoinsOnceTheCutHeals) {
  World w(17, std::chrono::seconds(5));
  StartCluster(w, 5);
  const std::string lone = "node0:7400";
  const std::string lone_id = w.at(lone).self().node_id;
  for (int i = 1; i < 5; ++i) w.Cut(lone, "node" + std::to_string(i) + ":7400");
  w.Run(std::chrono::seconds(20));  // suspicion, down, and well past replace_after
  // The majority replaced the cut-off node; the cut-off node, seeing no majority, replaced no one.
  for (auto* n : w.up_nodes()) {
    if (n->address == lone) continue;
    EXPECT_EQ(StateIn(*n->m, lone_id), NodeState::kLeft) << n->address;
  }
  for (const auto& [id, e] : w.at(lone).table().entries()) {
    if (id != lone_id) {
      EXPECT_NE(e.state, NodeState::kLeft) << lone << " replaced " << e.address;
    }
  }
  w.Heal();
  const double t = w.RunUntil([&] {
    if (!w.Converged()) return false;
    for (const auto& [id, e] : w.at(lone).table().entries()) {
      if (e.state != NodeState::kUp) return false;
    }
    return true;
  }, std::chrono::seconds(20));
  EXPECT_GE(t, 0) << "the ring did not come back together within 20 s of the heal";
}

TEST(MembershipTest, TwoSidesThatReplacedEachOtherComeBackTogether) {
  // {0,1} | {2,3,4}: the three replace 0 and 1. Then {0,1,4} | {2,3}: 4 hears 0 and 1
  // refute, and both sides see a majority of the members they count, so they replace each
  // other. Only gossip with replaced members brings them together after the heal.
  World w(19, std::chrono::seconds(5));
  StartCluster(w, 5);
  const auto cut = [&](std::vector<int> a, std::vector<int> b) {
    w.Heal();
    for (int i : a) {
      for (int j : b) w.Cut("node" + std::to_string(i) + ":7400", "node" + std::to_string(j) + ":7400");
    }
  };
  cut({0, 1}, {2, 3, 4});
  w.Run(std::chrono::seconds(20));
  cut({0, 1, 4}, {2, 3});
  w.Run(std::chrono::seconds(20));
  w.Heal();
  const double t = w.RunUntil([&] {
    if (!w.Converged()) return false;
    for (const auto& [id, e] : w.at("node0:7400").table().entries()) {
      if (e.state != NodeState::kUp) return false;
    }
    return true;
  }, std::chrono::seconds(60));
  EXPECT_GE(t, 0) << "the ring did not come back together within 60 s of the heal";
}

TEST(MembershipTest, ASuspectedNodeThatIsAliveRefutes) {
  World w(13);
  StartCluster(w, 4);
  NodeEntry rumour = w.at("node2:7400").self();
  rumour.state = NodeState::kSuspect;
  w.at("node0:7400").MergeForTest(rumour);
  const double t = w.RunUntil([&] {
    if (!w.Converged()) return false;
    const NodeEntry* e = w.at("node0:7400").table().Find(rumour.node_id);
    return e->state == NodeState::kUp && e->incarnation == rumour.incarnation + 1;
  }, std::chrono::seconds(5));
  EXPECT_GE(t, 0) << "the rumour was not refuted";
}

TEST(MembershipTest, ARestartedNodeComesBackWithTheSameIdentity) {
  World w(17);
  StartCluster(w, 4);
  const NodeEntry before = w.at("node2:7400").self();
  w.Crash("node2:7400");
  ASSERT_GE(w.RunUntil([&] { return StateIn(w.at("node0:7400"), before.node_id) == NodeState::kDown; },
                       std::chrono::seconds(10)), 0);
  w.Remove("node2:7400");
  w.Add(2, {"node0:7400"}, before.incarnation + 1);  // the runtime persisted and bumped it
  const double t = w.RunUntil([&] {
    if (!w.Converged()) return false;
    const NodeEntry* e = w.at("node1:7400").table().Find(before.node_id);
    return e && e->state == NodeState::kUp;
  }, std::chrono::seconds(10));
  ASSERT_GE(t, 0) << "the restarted node was not seen up again";
  const NodeEntry* e = w.at("node1:7400").table().Find(before.node_id);
  EXPECT_EQ(e->ring_seed, before.ring_seed);  // same ring IDs
  EXPECT_EQ(e->RingId(0), before.RingId(0));
}

TEST(MembershipTest, AJoinWithNoAnsweringSeedBacksOffAndSucceedsLater) {
  World w(19);
  w.Add(1, {"node0:7400"});  // the seed does not exist yet
  const uint64_t before = w.messages();
  w.Run(std::chrono::seconds(20));
  const uint64_t attempts = w.messages() - before;
  EXPECT_FALSE(w.at("node1:7400").joined());
  // 200 ms doubling to 5 s: about 8 attempts in 20 s, not 100.
  EXPECT_LE(attempts, 12u);
  EXPECT_GE(attempts, 5u);
  w.Add(0, {});
  ASSERT_GE(w.RunUntil([&] { return w.at("node1:7400").joined() && w.Converged(); }, std::chrono::seconds(10)), 0);
}

TEST(MembershipTest, AJoinedMemberGossipsOncePerInterval) {
  // Joining used to leave the join-retry timer running beside the regular gossip timer: two
  // gossip chains for good (and one Stop() did not cancel).
  World w(23);
  StartCluster(w, 3);
  const uint64_t before = w.pushes_by("node2:7400");
  w.Run(std::chrono::seconds(10));
  const uint64_t pushes = w.pushes_by("node2:7400") - before;
  // 10 s / 200 ms = 50 rounds, plus the odd push to a member believed down.
  EXPECT_GE(pushes, 45u);
  EXPECT_LE(pushes, 60u);
}

TEST(MembershipTest, MessagesRoundTripAndMalformedOnesAreRejected) {
  GossipMessage g;
  g.from = "a:1";
  g.digest = 99;
  NodeEntry e;
  e.node_id = "x";
  e.address = "x:1";
  e.zone = "z";
  e.state = NodeState::kSuspect;
  e.incarnation = 4;
  e.ring_seed = 77;
  e.vnodes = 12;
  g.entries = {e};
  std::string f = EncodeGossip(Kind::kGossip, g);
  auto back = DecodeGossip(std::string_view(f).substr(kFrameHeaderBytes));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->entries.at(0), e);
  EXPECT_EQ(back->digest, 99u);
  auto p = DecodeProbe(std::string_view(EncodeProbe(Kind::kPing, ProbeMessage{"a", 5, "b"})).substr(kFrameHeaderBytes));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->seq, 5u);
  EXPECT_EQ(p->target, "b");
  e.vnodes = 0;
  g.entries = {e};
  f = EncodeGossip(Kind::kGossip, g);
  EXPECT_FALSE(DecodeGossip(std::string_view(f).substr(kFrameHeaderBytes)).ok());
  EXPECT_FALSE(DecodeProbe("\x93\x01\x02\x03").ok());
}

}  // namespace
}  // namespace ringstore
