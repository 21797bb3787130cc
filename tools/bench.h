// `ringstore bench`: a closed-loop load generator over the client library. It keeps a fixed
// number of requests in flight over several connections and reports throughput and latency
// percentiles. bench/node_bench.sh prints its figures beside redis-benchmark and fio.
// Thread-safety: single-threaded.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "dht/client.h"
#include "dht/cluster_client.h"
#include "node/runtime/tls.h"

namespace ringstore {

struct BenchOptions {
  std::string op = "get";  // put, get, fill (each key once) or check (read each key once, verify)
  size_t value_bytes = 1024;
  size_t keys = 10000;
  double duration_s = 5;
  size_t in_flight = 64;
  double rate = 0;         // requests/s on a fixed schedule (open loop); 0: closed loop
  size_t connections = 4;  // per node
  std::string ns = "bench";
  bool prefill = true;
  std::string latency_log;  // a file: one line per request (when sent, latency)
};

void AddBenchOptions(CLI::App& cmd, BenchOptions& o);
// Returns a process exit status (0, 3 unreachable, 4 errors during the run).
// tls: for a TLS cluster (--tls-dir), else null.
int RunBench(const std::vector<std::string>& seeds, const ClientOptions& client_options, Quorum quorum,
             const BenchOptions& o, std::shared_ptr<TlsContext> tls);

}  // namespace ringstore
