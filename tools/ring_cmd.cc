#include "tools/ring_cmd.h"

#include <cstdio>
#include <iostream>
#include <map>

#include "routing/membership_messages.h"
#include "routing/placement.h"

namespace ringstore {

namespace {
constexpr int kSampleKeys = 20000;  // replica shares are estimated from this many random ids
}

int RunRing(Session& session, uint32_t replicas) {
  auto reply = session.Wait<Frame>([&](auto cb) {
    session.client().Request(Kind::kRouteTable, std::string("\x90", 1), std::move(cb));
  });
  if (!reply.ok()) {
    std::cerr << "ringstore ring: " << reply.status().ToString() << "\n";
    return 4;
  }
  auto m = DecodeGossip(reply->body);
  if (!m.ok()) {
    std::cerr << "ringstore ring: bad route table: " << m.status().ToString() << "\n";
    return 4;
  }
  RouteTable table;
  for (const auto& e : m->entries) table.Merge(e);
  const auto ring_shares = table.RingShares();
  std::map<std::string, int> replica_counts;
  SeededRandom rnd(1);
  for (int i = 0; i < kSampleKeys; ++i) {
    for (const NodeEntry* e : PlaceReplicas(table, ObjectId::Of("ring-sample", std::to_string(rnd.Next())), replicas)) {
      ++replica_counts[e->node_id];
    }
  }
  std::map<NodeState, int> by_state;
  for (const auto& [id, e] : table.entries()) ++by_state[e.state];
  std::printf("ring seen by %s: %zu nodes (%d up, %d suspect, %d down, %d left), table digest %016llx\n",
              m->from.c_str(), table.size(), by_state[NodeState::kUp], by_state[NodeState::kSuspect],
              by_state[NodeState::kDown], by_state[NodeState::kLeft], static_cast<unsigned long long>(m->digest));
  std::printf("%-10s %-22s %-8s %-8s %6s %9s %12s\n", "node", "address", "zone", "state", "ids", "ring %",
              "replicas %");
  for (const auto& [id, e] : table.entries()) {
    const auto share = ring_shares.find(id);
    const double ring_pct = share == ring_shares.end() ? 0.0 : 100.0 * share->second;
    const double rep_pct = 100.0 * replica_counts[id] / kSampleKeys;
    std::printf("%-10s %-22s %-8s %-8s %6u %8.2f%% %11.2f%%\n", id.substr(0, 8).c_str(), e.address.c_str(),
                e.zone.empty() ? "-" : e.zone.c_str(), NodeStateName(e.state), e.vnodes, ring_pct, rep_pct);
  }
  const uint32_t copies = std::min<uint32_t>(replicas, static_cast<uint32_t>(table.ring_nodes()));
  std::printf("replicas %% = share of objects with a replica on the node (N=%u: %u cop%s each, so the column "
              "sums to %u00%%)\n",
              replicas, copies, copies == 1 ? "y" : "ies", copies);
  return 0;
}

}  // namespace ringstore
