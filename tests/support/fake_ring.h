// Ring: a whole ring in one process for unit tests: real NodeCores, MemoryStores, PeerLinks
// and Membership over the fake network, driven by one fake clock. Seeded. Clients connect to
// it with FakeTransports on the same network (tests/dht/cluster_client_test.cc).
// Thread-safety: single-threaded, like the fake network.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dht/random.h"
#include "node/hinted_handoff.h"
#include "node/node_core.h"
#include "node/peer_links.h"
#include "routing/membership.h"
#include "storage/memory_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_network.h"
#include "tests/support/null_log.h"

namespace ringstore::testing {

class Ring {
 public:
  struct Node {
    std::string address;
    std::unique_ptr<FakeTransport> transport;
    std::unique_ptr<MemoryStore> store;
    std::unique_ptr<NodeCore> core;
    std::unique_ptr<SeededRandom> random;
    std::unique_ptr<PeerLinks> peers;
    std::unique_ptr<Membership> membership;
    std::unique_ptr<HintedHandoff> handoff;  // attached by the tests that want it
  };

  Ring(int n, uint64_t seed) : seed_(seed) {
    for (int i = 0; i < n; ++i) AddNode(i);
  }
  void AddNode(int i) {
    const uint64_t seed = seed_;
    auto node = std::make_unique<Node>();
    node->address = "node" + std::to_string(i) + ":7400";
    char id[33];
    std::snprintf(id, sizeof id, "%032d", i);
    node->transport = std::make_unique<FakeTransport>(net, node->address);
    node->store = std::make_unique<MemoryStore>(net.executor());
    NodeOptions no;
    no.node_id = id;
    node->core = std::make_unique<NodeCore>(no, clock, *node->transport, *node->store, NullLog());
    node->core->Start();
    node->random = std::make_unique<SeededRandom>(seed * 31 + static_cast<uint64_t>(i));
    node->peers = std::make_unique<PeerLinks>(PeerLinkOptions{}, "ringstore", id, *node->transport, clock, NullLog());
    NodeEntry self;
    self.node_id = id;
    self.address = node->address;
    self.ring_seed = seed * 1000 + static_cast<uint64_t>(i);
    self.vnodes = 64;
    MembershipOptions mo;
    mo.probe_interval = std::chrono::milliseconds(300);
    mo.probe_timeout = std::chrono::milliseconds(100);
    mo.suspicion_timeout = std::chrono::seconds(1);
    node->membership = std::make_unique<Membership>(mo, self, clock, *node->random, *node->peers, NullLog());
    node->core->AttachMembership(node->membership.get(), node->peers.get());
    node->membership->Start(i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"node0:7400"});
    nodes.push_back(std::move(node));
  }
  ~Ring() {
    for (auto& n : nodes) {
      n->handoff.reset();
      n->membership->Stop();
    }
  }
  // Lets virtual time pass, delivering everything that is due.
  void Pump(Clock::Duration d) {
    const auto end = clock.Now() + d;
    while (clock.Now() < end) {
      net.RunUntilIdle();
      clock.Advance(std::chrono::milliseconds(5));
    }
    net.RunUntilIdle();
  }
  bool Converged() {
    for (auto& n : nodes) {
      if (n->membership->table().size() != nodes.size() ||
          n->membership->table().Digest() != nodes[0]->membership->table().Digest()) {
        return false;
      }
    }
    return true;
  }
  Node* ByAddress(const std::string& a) {
    for (auto& n : nodes) {
      if (n->address == a) return n.get();
    }
    return nullptr;
  }

  FakeNetwork net;
  FakeClock clock;
  std::vector<std::unique_ptr<Node>> nodes;
  uint64_t seed_;
};

}  // namespace ringstore::testing
