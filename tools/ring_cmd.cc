#include "tools/ring_cmd.h"

#include <cstdio>
#include <iostream>
#include <map>

#include "routing/membership_messages.h"
#include "routing/placement.h"
#include "tools/node_cmd.h"

namespace ringstore {

namespace {
constexpr int kSampleKeys = 20000;  // replica shares are estimated from this many random ids
}

Result<GossipMessage> FetchTable(Session& session, size_t i) {
  auto reply = session.Wait<Frame>([&](auto cb) {
    session.client(i).Request(Kind::kRouteTable, std::string("\x90", 1), std::move(cb));
  });
  if (!reply.ok()) return reply.status();
  return DecodeGossip(reply->body);
}

int RunStatus(Session& session) {
  auto first = FetchTable(session, 0);
  if (!first.ok()) {
    std::cerr << "ringstore status: " << first.status().ToString() << "\n";
    return 4;
  }
  RouteTable table;
  for (const auto& e : first->entries) table.Merge(e);
  std::printf("%-10s %-22s %-8s %-10s %8s %s\n", "node", "address", "state", "reachable", "rtt ms", "table");
  int reachable = 0, agree = 0, unreachable_up = 0;
  std::map<NodeState, int> by_state;
  for (const auto& [id, e] : table.entries()) {
    ++by_state[e.state];
    if (e.state == NodeState::kLeft) continue;
    const size_t slot = session.clients();
    const auto t0 = session.clock().Now();
    Status s = session.AddClient(e.address);
    Result<GossipMessage> view = s.ok() ? FetchTable(session, slot) : Result<GossipMessage>(s);
    const double rtt_ms = std::chrono::duration<double, std::milli>(session.clock().Now() - t0).count();
    const bool same = view.ok() && view->digest == first->digest;
    reachable += view.ok();
    agree += same;
    if (!view.ok() && e.state == NodeState::kUp) ++unreachable_up;
    std::printf("%-10s %-22s %-8s %-10s %8s %s\n", id.substr(0, 8).c_str(), e.address.c_str(), NodeStateName(e.state),
                view.ok() ? "yes" : "no", view.ok() ? std::to_string(static_cast<int>(rtt_ms + 0.5)).c_str() : "-",
                !view.ok() ? view.status().ToString().c_str() : same ? "same" : "differs (gossip still spreading?)");
  }
  const int members = static_cast<int>(table.size()) - by_state[NodeState::kLeft];
  const bool healthy = by_state[NodeState::kUp] == members && reachable == members && agree == members;
  std::printf("\n%s: %d members (%d up, %d suspect, %d down); %d reachable; %d agree on the route table (%016llx)\n",
              healthy ? "HEALTHY" : "DEGRADED", members, by_state[NodeState::kUp], by_state[NodeState::kSuspect],
              by_state[NodeState::kDown], reachable, agree, static_cast<unsigned long long>(first->digest));
  if (unreachable_up > 0) std::printf("%d member(s) marked up did not answer\n", unreachable_up);
  std::vector<std::pair<std::string, std::string>> live;
  for (const auto& [id, e] : table.entries()) {
    if (e.state != NodeState::kLeft && e.state != NodeState::kDown) live.emplace_back(id, e.address);
  }
  std::printf("\n");
  PrintRepairStatus(session, live);
  return 0;
}

int RunRing(Session& session, uint32_t replicas) {
  auto m = FetchTable(session, 0);
  if (!m.ok()) {
    std::cerr << "ringstore ring: " << m.status().ToString() << "\n";
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
