// ringstore-sim: runs the real node, routing, storage and client code in a simulated world
// (virtual time, one thread) under partitions, crashes, loss, duplication, reordering, clock
// skew, corruption and churn, then checks what must hold (DESIGN.md G1-G5). One seed is one
// run, event for event.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "sim/scenario.h"

using namespace ringstore;
using namespace ringstore::sim;

namespace {

void PrintReport(const SimOptions& o, const SimReport& r, bool verbose) {
  std::printf("seed %llu: %u nodes, %u clients, %u keys, N=%u W=%u R=%u, faults %s\n",
              static_cast<unsigned long long>(o.seed), o.nodes, o.clients, o.keys, o.quorum.n, o.quorum.w, o.quorum.r,
              o.faults.empty() ? "none" : [&] {
                std::string s;
                for (const auto& f : o.faults) s += (s.empty() ? "" : ",") + f;
                return s;
              }().c_str());
  std::printf("  operations %llu (acknowledged %llu, unknown %llu), faults injected %llu\n",
              static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.acked),
              static_cast<unsigned long long>(r.unknown), static_cast<unsigned long long>(r.faults_injected));
  std::printf("  G1 lost %llu   G4 resurrected %llu   G3 stale %llu   G2 divergent keys %llu   G5 unrepaired %llu\n",
              static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.resurrected),
              static_cast<unsigned long long>(r.stale_reads), static_cast<unsigned long long>(r.divergent_keys),
              static_cast<unsigned long long>(r.unrepaired));
  std::printf("  reads that missed an earlier acknowledged write: %llu%s\n",
              static_cast<unsigned long long>(r.missed_reads),
              r.max_missed_reads < 0 ? " (allowed under faults)"
              : r.missed_reads <= static_cast<uint64_t>(r.max_missed_reads) ? " (within --max-missed-reads)"
                                                                             : " (MORE than --max-missed-reads)");
  if (r.settle_s >= 0) std::printf("  membership settled %.2f s after the heal\n", r.settle_s);
  else std::printf("  membership did NOT settle after the heal\n");
  if (r.converge_s >= 0) std::printf("  replicas converged %.2f s after that; %llu tombstones collected\n", r.converge_s,
                                     static_cast<unsigned long long>(r.tombstones_collected));
  else std::printf("  replicas did NOT converge within the limit\n");
  std::printf("  messages %llu, events %llu, virtual %.1f s, wall %.2f s, trace %016llx\n",
              static_cast<unsigned long long>(r.messages), static_cast<unsigned long long>(r.events), r.virtual_s,
              r.wall_s, static_cast<unsigned long long>(r.trace_hash));
  if (verbose) {
    for (const auto& l : r.fault_log) std::printf("  fault %s\n", l.c_str());
  }
}

void PrintFindings(const SimReport& r, size_t max) {
  size_t shown = 0;
  for (const Finding& f : r.findings) {
    if (shown++ == max) {
      std::printf("  ... %zu more findings\n", r.findings.size() - max);
      break;
    }
    std::printf("  %s key %s: %s\n", f.check.c_str(), KeyName(f.key).c_str(), f.what.c_str());
    if (f.check == "G1" || f.check == "G4" || f.check == "G3") {
      for (const auto& line : KeyHistory(r.history, f.key, 8)) std::printf("      %s\n", line.c_str());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ringstore-sim: deterministic fault simulation of a ringstore cluster. It runs the real node,\n"
      "routing, storage and client code in virtual time, injects faults, then checks G1 (no\n"
      "acknowledged write lost), G3 (quiet-phase reads see the last write), G4 (no deleted key\n"
      "comes back), G2 (every key's N replicas converge once the faults stop) and G5 (corrupted\n"
      "records are repaired).\n"
      "Exit status: 0 when G1 to G5 hold, the membership settles and --max-missed-reads (if given)\n"
      "holds; 1 otherwise; 2 usage."};
  SimOptions o;
  std::string faults;
  uint64_t replay = 0, seeds = 1;
  int64_t trace_key = -1;
  double budget_s = 0;
  bool verbose = false;
  app.add_option("--nodes", o.nodes, "Nodes in the ring at the start")->check(CLI::Range(1u, 10000u))->capture_default_str();
  app.add_option("--clients", o.clients, "Concurrent clients")->check(CLI::Range(1u, 1000u))->capture_default_str();
  app.add_option("--keys", o.keys, "Keys the clients work on")->check(CLI::Range(1u, 1000000u))->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the (first) run")->capture_default_str();
  app.add_option("--seeds", seeds, "Runs, with seeds seed, seed+1, ...")->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))->capture_default_str();
  app.add_option("--time-budget", budget_s, "Instead of --seeds: run random seeds until this many wall seconds have passed");
  app.add_option("--duration", o.duration_s, "Virtual seconds of workload under faults")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--faults", faults, "Comma-separated: partition,crash,loss,dup,reorder,skew,corrupt,churn (or all)");
  app.add_option("--n", o.quorum.n, "N: replicas")->check(CLI::Range(1u, 16u))->capture_default_str();
  app.add_option("--w", o.quorum.w, "W: write acknowledgements")->check(CLI::Range(1u, 16u))->capture_default_str();
  app.add_option("--r", o.quorum.r, "R: read replies")->check(CLI::Range(1u, 16u))->capture_default_str();
  app.add_option("--fallbacks", o.fallbacks, "Nodes a client tries past N when replicas fail (0: strict quorum)")
      ->check(CLI::Range(0u, 8u))
      ->capture_default_str();
  app.add_option("--vnodes", o.vnodes, "Ring ids per node")->check(CLI::Range(1u, 1024u))->capture_default_str();
  app.add_option("--replay", replay, "Run this one seed again (same options) and print its trace hash");
  app.add_option("--trace", trace_key, "With --replay: print the full history of key number KEY");
  app.add_option("--replace-after", o.replace_after_s, "Virtual seconds a node may stay down before it is replaced")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--tombstone-grace", o.tombstone_grace_s,
                 "Virtual seconds before a tombstone may be collected (once every replica has it; 0: never)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--repair-interval", o.repair_interval_s, "Virtual seconds between anti-entropy rounds on each node")
      ->check(CLI::Range(0.1, 1e6))
      ->capture_default_str();
  app.add_option("--linger", o.linger_s,
                 "Virtual seconds to run on after the replicas converge, before the final reads (tombstones "
                 "past their grace are collected meanwhile)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--converge-limit", o.converge_limit_s,
                 "Virtual seconds repair may take, once the membership settles, to make replicas agree (G2, G5)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--plant-bug-lying-disk", o.bug_lying_disk,
               "Plant a bug (the disk acknowledges writes before they are durable) to see the checkers fail");
  app.add_flag("--plant-bug-no-repair", o.bug_no_repair,
               "Plant a bug (the nodes run no anti-entropy, handoff or scrub) to see G2 and G5 fail");
  app.add_option("--max-missed-reads", o.max_missed_reads,
                 "Fail when more workload reads than this returned an older record than a write acknowledged "
                 "before they began (-1: count them only; faults such as partitions allow some)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "Print every fault injected");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.tombstone_grace_s > 0 && o.replace_after_s > 0 && o.tombstone_grace_s <= o.replace_after_s) {
    std::cerr << "ringstore-sim: --tombstone-grace must exceed --replace-after\n";
    return 2;
  }
  if (o.quorum.w > o.quorum.n || o.quorum.r > o.quorum.n) {
    std::cerr << "ringstore-sim: need W <= N and R <= N\n";
    return 2;
  }
  std::stringstream ss(faults);
  for (std::string f; std::getline(ss, f, ',');) {
    if (f.empty()) continue;
    if (f == "all") {
      for (const auto& k : FaultKinds()) o.faults.insert(k);
      continue;
    }
    if (std::find(FaultKinds().begin(), FaultKinds().end(), f) == FaultKinds().end()) {
      std::cerr << "ringstore-sim: unknown fault '" << f << "' (partition,crash,loss,dup,reorder,skew,corrupt,churn)\n";
      return 2;
    }
    o.faults.insert(f);
  }

  if (replay != 0 || app.count("--replay") > 0) {
    o.seed = replay;
    const SimReport r = RunScenario(o);
    PrintReport(o, r, true);
    PrintFindings(r, 50);
    if (trace_key >= 0) {
      std::printf("history of %s:\n", KeyName(static_cast<uint32_t>(trace_key)).c_str());
      for (const auto& l : KeyHistory(r.history, static_cast<uint32_t>(trace_key))) std::printf("  %s\n", l.c_str());
    }
    return r.ok() ? 0 : 1;
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t runs = 0, failed = 0;
  for (uint64_t i = 0;; ++i) {
    if (budget_s > 0) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= budget_s) break;
      if (i > 0) o.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^ (i * 0x9e3779b97f4a7c15ull);
    } else if (i >= seeds) {
      break;
    } else if (i > 0) {
      ++o.seed;
    }
    const SimReport r = RunScenario(o);
    ++runs;
    const bool pass = r.ok();
    PrintReport(o, r, verbose);
    if (!pass) {
      ++failed;
      std::printf("FAILED seed %llu; replay with: ringstore-sim <same options> --replay %llu [--trace KEY]\n",
                  static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(o.seed));
      PrintFindings(r, 20);
    } else if (!r.findings.empty()) {
      PrintFindings(r, 5);
    }
  }
  std::printf("%llu run(s), %llu failed\n", static_cast<unsigned long long>(runs), static_cast<unsigned long long>(failed));
  return failed == 0 ? 0 : 1;
}
