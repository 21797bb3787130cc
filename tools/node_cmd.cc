#include "tools/node_cmd.h"

#include <cstdio>
#include <iostream>
#include <map>

#include "dht/sync_messages.h"
#include "routing/placement.h"
#include "tools/ring_cmd.h"
#include "tools/exit_status.h"

namespace ringstore {

namespace {

double Mb(uint64_t bytes) { return static_cast<double>(bytes) / 1e6; }

std::string Eta(uint64_t pending, uint64_t rate) {
  if (pending == 0) return "-";
  if (rate == 0) return "?";
  const uint64_t s = pending / rate;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                static_cast<unsigned long long>(s % 60));
  return buf;
}

Result<RepairStatus> AskStatus(Session& session, size_t client, Kind kind) {
  auto reply = session.Wait<Frame>([&](auto cb) { session.client(client).Request(kind, std::string("\x90", 1), std::move(cb)); });
  if (!reply.ok()) return reply.status();
  if (reply->header.kind == static_cast<uint16_t>(Kind::kError)) {
    auto e = DecodeError(reply->body);
    return e.ok() ? e->ToStatus() : e.status();
  }
  return DecodeRepairStatus(reply->body);
}

// Every record the member behind client i holds, by SCAN pages.
Status ScanAll(Session& session, size_t client, const std::function<void(const KeyVersion&)>& each) {
  ObjectId begin = ObjectId::Min();
  for (;;) {
    const std::string frame = EncodeScanRequest(0, ScanRequest{begin, ObjectId::Max(), static_cast<uint32_t>(kMaxSyncEntries)});
    auto reply = session.Wait<Frame>([&](auto cb) {
      session.client(client).Request(Kind::kScan, frame.substr(kFrameHeaderBytes), std::move(cb));
    });
    if (!reply.ok()) return reply.status();
    if (reply->header.kind == static_cast<uint16_t>(Kind::kError)) {
      auto e = DecodeError(reply->body);
      return e.ok() ? e->ToStatus() : e.status();
    }
    auto page = DecodeScanReply(reply->body);
    if (!page.ok()) return page.status();
    for (const KeyVersion& v : page->entries) each(v);
    if (!page->more || page->entries.empty()) return Status::Ok();
    begin = page->entries.back().id.Successor();
  }
}

int Verify(Session& session, const RouteTable& table, uint32_t replicas) {
  struct Copy {
    std::string node;
    RecordMeta meta;
  };
  std::map<ObjectId, std::vector<Copy>> copies;
  uint64_t corrupt = 0;
  size_t scanned_nodes = 0, members = 0;
  for (const auto& [id, e] : table.entries()) {
    if (e.state == NodeState::kLeft) continue;
    ++members;
    const size_t slot = session.clients();
    Status s = session.AddClient(e.address);
    uint64_t n = 0;
    if (s.ok()) {
      s = ScanAll(session, slot, [&](const KeyVersion& v) {
        ++n;
        if (v.meta.flags & kScanCorrupt) {
          ++corrupt;
          return;
        }
        copies[v.id].push_back(Copy{id, v.meta});
      });
    }
    if (!s.ok()) {
      std::printf("%s at %s: cannot list its records: %s\n", id.substr(0, 8).c_str(), e.address.c_str(),
                  s.ToString().c_str());
      continue;
    }
    ++scanned_nodes;
    std::fprintf(stderr, "listed %s at %s: %llu records\n", id.substr(0, 8).c_str(), e.address.c_str(),
                 static_cast<unsigned long long>(n));
  }
  uint64_t whole = 0, under = 0, extra = 0, objects = 0, tombstones = 0;
  std::map<uint32_t, uint64_t> by_copies;
  size_t shown = 0;
  for (const auto& [id, list] : copies) {
    ++objects;
    RecordMeta newest = list.front().meta;
    for (const Copy& c : list) {
      if (Supersedes(c.meta, newest)) newest = c.meta;
    }
    if (newest.tombstone()) ++tombstones;
    uint32_t good = 0;
    const auto placed = PlaceReplicas(table, id, newest.replicas() != 0 ? newest.replicas() : replicas);
    for (const NodeEntry* p : placed) {
      for (const Copy& c : list) {
        if (c.node == p->node_id && !Supersedes(newest, c.meta) && !Supersedes(c.meta, newest)) ++good;
      }
    }
    for (const Copy& c : list) {
      const bool placed_here = std::any_of(placed.begin(), placed.end(), [&](const NodeEntry* p) { return p->node_id == c.node; });
      if (!placed_here) ++extra;
    }
    ++by_copies[good];
    if (good >= placed.size()) {
      ++whole;
    } else {
      ++under;
      if (shown++ < 10) std::printf("under-replicated: %s has %u of %zu copies of its newest version\n", id.Hex().c_str(), good, placed.size());
    }
  }
  std::printf("%llu objects (%llu of them tombstones) on %zu nodes; N is each record's own, or %u where a record has none\n",
              static_cast<unsigned long long>(objects),
              static_cast<unsigned long long>(tombstones), scanned_nodes, replicas);
  for (const auto& [n, count] : by_copies) {
    std::printf("  %llu with %u cop%s of the newest version on their placement nodes\n",
                static_cast<unsigned long long>(count), n, n == 1 ? "y" : "ies");
  }
  std::printf("under-replicated: %llu; copies on nodes outside the placement (to be handed off): %llu; corrupt "
              "records: %llu\n",
              static_cast<unsigned long long>(under), static_cast<unsigned long long>(extra),
              static_cast<unsigned long long>(corrupt));
  const bool complete = scanned_nodes == members;
  std::printf("%s\n", under == 0 && corrupt == 0 && complete ? "OK: every object has all its copies"
                                                              : "INCOMPLETE: not every object has all its copies");
  return under == 0 && corrupt == 0 && complete ? kExitOk : kExitIncomplete;
}

int Decommission(Session& session, const RouteTable& table, const NodeArgs& args) {
  const NodeEntry* target = nullptr;
  for (const auto& [id, e] : table.entries()) {
    if (id.rfind(args.node, 0) == 0 || e.address == args.node) {
      if (target != nullptr) {
        std::cerr << "ringstore node decommission: '" << args.node << "' names more than one node\n";
        return kExitUsage;
      }
      target = &e;
    }
  }
  if (target == nullptr) {
    std::cerr << "ringstore node decommission: no node '" << args.node << "' in the route table (give its id, the "
              << "first digits of it, or its address; see `ringstore ring`)\n";
    return kExitUsage;
  }
  if (target->state == NodeState::kLeft) {
    std::printf("%s at %s has already left the cluster\n", target->node_id.c_str(), target->address.c_str());
    return kExitOk;
  }
  const std::string id = target->node_id, address = target->address;
  size_t others = 0;
  for (const auto& [nid, e] : table.entries()) others += nid != id && e.state == NodeState::kUp && !e.leaving;
  if (others == 0) {
    std::cerr << "ringstore node decommission: " << address << " is the only node: its data has nowhere to go\n";
    return kExitUsage;
  }
  const size_t slot = session.clients();
  if (Status s = session.AddClient(address); !s.ok()) {
    std::cerr << "ringstore node decommission: cannot reach " << address << ": " << s.ToString() << "\n";
    return kExitUnreachable;
  }
  auto st = AskStatus(session, slot, Kind::kDecommission);
  if (!st.ok()) {
    std::cerr << "ringstore node decommission: " << address << ": " << st.status().ToString() << "\n";
    return kExitError;
  }
  std::printf("decommissioning %s at %s: it has left the ring and hands its records to their new owners\n",
              id.substr(0, 8).c_str(), address.c_str());
  if (args.no_wait) {
    std::printf("not waiting (--no-wait); follow it with `ringstore status`, or run this command again\n");
    return kExitOk;
  }
  std::printf("(interrupting this command does not stop the decommission; run it again to follow it)\n");
  for (;;) {
    if (st->left) {
      std::printf("done: %s has handed everything off and left the cluster; its process can be stopped\n",
                  id.substr(0, 8).c_str());
      return kExitOk;
    }
    std::printf("  round %llu: %llu records (%.1f MB) still to hand off, %llu pushed, %llu dropped here, %.1f MB/s, "
                "ETA %s\n",
                static_cast<unsigned long long>(st->rounds), static_cast<unsigned long long>(st->handoff_keys),
                Mb(st->handoff_bytes), static_cast<unsigned long long>(st->pushed_records),
                static_cast<unsigned long long>(st->purged_records), Mb(st->rate_bytes_per_s),
                Eta(st->pending_bytes, st->rate_bytes_per_s).c_str());
    std::fflush(stdout);
    const auto until = session.clock().Now() + std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(args.poll_s));
    while (session.clock().Now() < until) session.io().run_for(std::chrono::milliseconds(50));
    st = AskStatus(session, slot, Kind::kNodeStatus);
    if (!st.ok()) {
      std::cerr << "ringstore node decommission: lost " << address << ": " << st.status().ToString()
                << " (the node resumes the decommission when it restarts)\n";
      return kExitUnreachable;
    }
  }
}

}  // namespace

int RunNode(Session& session, const NodeArgs& args) {
  auto m = FetchTable(session, 0);
  if (!m.ok()) {
    std::cerr << "ringstore node: " << m.status().ToString() << "\n";
    return kExitUnreachable;
  }
  RouteTable table;
  for (const auto& e : m->entries) table.Merge(e);
  if (args.run_verify) return Verify(session, table, args.replicas);
  return Decommission(session, table, args);
}

void PrintRepairStatus(Session& session, const std::vector<std::pair<std::string, std::string>>& members) {
  std::printf("%-10s %-6s %-7s %10s %10s %9s %9s %8s %9s %7s %7s %7s\n", "node", "round", "synced", "records", "to hand",
              "pulled MB", "pushed MB", "MB/s", "moving MB", "ETA", "under", "hints");
  uint64_t max_under = 0, pending = 0, rate = 0, corrupt = 0, repaired = 0, hints = 0;
  int answered = 0;
  for (const auto& [id, address] : members) {
    const size_t slot = session.clients();
    Status s = session.AddClient(address);
    Result<RepairStatus> st = s.ok() ? AskStatus(session, slot, Kind::kNodeStatus) : Result<RepairStatus>(s);
    if (!st.ok()) {
      std::printf("%-10s %s\n", id.substr(0, 8).c_str(), st.status().ToString().c_str());
      continue;
    }
    ++answered;
    max_under = std::max(max_under, st->under_replicated);
    pending += st->pending_bytes;
    rate += st->rate_bytes_per_s;
    corrupt += st->corrupt_found;
    repaired += st->repaired;
    hints += st->hints_pending;
    std::string round = std::to_string(st->rounds) + (st->round_active ? "+" : "");
    std::printf("%-10s %-6s %-7s %10llu %10llu %9.1f %9.1f %8.1f %9.1f %7s %7llu %7llu%s\n", id.substr(0, 8).c_str(),
                round.c_str(), st->synced ? "yes" : "no", static_cast<unsigned long long>(st->owned_keys),
                static_cast<unsigned long long>(st->handoff_keys), Mb(st->pulled_bytes), Mb(st->pushed_bytes),
                Mb(st->rate_bytes_per_s), Mb(st->pending_bytes), Eta(st->pending_bytes, st->rate_bytes_per_s).c_str(),
                static_cast<unsigned long long>(st->under_replicated),
                static_cast<unsigned long long>(st->hints_pending), st->left ? "  (left)" : st->leaving ? "  (decommissioning)" : "");
  }
  std::printf("repair: %d node(s) answered; under-replicated objects: %llu (the most any node found in its last "
              "round; `ringstore node verify` counts exactly); moving %.1f MB at %.1f MB/s, ETA %s; corrupt records "
              "found %llu, repaired %llu; hinted writes waiting for their replicas %llu\n",
              answered, static_cast<unsigned long long>(max_under), Mb(pending), Mb(rate), Eta(pending, rate).c_str(),
              static_cast<unsigned long long>(corrupt), static_cast<unsigned long long>(repaired),
              static_cast<unsigned long long>(hints));
}

}  // namespace ringstore
