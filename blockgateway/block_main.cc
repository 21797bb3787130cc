// ringstore-block: an NBD server whose exports are the ringstore volumes of a cluster.
// Create volumes with `ringstore volume create NAME SIZE`; attach them with any NBD client
// (nbdinfo, nbdcopy, nbdfuse, qemu, the kernel's nbd-client) by export name.
#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "blockgateway/nbd_server.h"
#include "dht/random.h"
#include "node/runtime/address.h"
#include "node/runtime/asio_clock.h"
#include "node/runtime/asio_transport.h"

using namespace ringstore;
using namespace ringstore::block;

int main(int argc, char** argv) {
  CLI::App app{
      "ringstore-block: serves ringstore volumes over NBD (fixed newstyle; export name = volume name).\n"
      "Writes are cached in memory and written back in whole chunks; an NBD FLUSH or FUA is answered\n"
      "only once the data is durable at W replicas. SIGTERM or SIGINT writes back all dirty data, then exits."};
  std::string cluster, listen = "127.0.0.1:10809", cluster_id = "ringstore", log_level = "info", ready_file;
  bool read_only = false;
  uint64_t cache_mb = 256, dirty_mb = 256;
  double io_timeout_s = 30;
  app.add_option("--cluster", cluster, "Any node(s) of the cluster, HOST:PORT[,HOST:PORT...]")
      ->envname("RINGSTORE_CLUSTER")
      ->required();
  app.add_option("--listen", listen, "Address to serve NBD on (port 0 picks one)")->capture_default_str();
  app.add_option("--cluster-id", cluster_id, "Cluster id to expect")
      ->envname("RINGSTORE_CLUSTER_ID")
      ->capture_default_str();
  std::string tls_dir;
  app.add_option("--tls-dir", tls_dir,
                 "TLS on both sides: DIR holds ca.crt, tls.crt and tls.key (`ringstore cert issue client NAME --role "
                 "read-write --host HOST`). The gateway connects to the nodes with it, and NBD clients must use "
                 "STARTTLS (FORCEDTLS) with a certificate from the same CA; a read-only one sees exports read-only")
      ->envname("RINGSTORE_TLS_DIR");
  app.add_flag("--read-only", read_only, "Serve every volume read-only (writes get EPERM)");
  app.add_option("--cache-mb", cache_mb, "Memory for chunks, per volume, in MiB: dirty ones count too, and clean ones are dropped, least recently used first, to stay under it")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--dirty-mb", dirty_mb, "Unwritten data per volume before writes wait, in MiB")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--io-timeout", io_timeout_s,
                 "Seconds a chunk read or write keeps retrying while replicas are unreachable, before EIO")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")->capture_default_str();
  app.add_option("--ready-file", ready_file, "Write the listening address to this file once serving");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto seeds = SplitAddresses(cluster);
  if (!seeds.ok() || seeds->empty()) {
    std::cerr << "ringstore-block: --cluster: " << (seeds.ok() ? "names no node" : seeds.status().message()) << "\n";
    return 2;
  }
  auto log = spdlog::stderr_color_mt("block");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  log->set_level(spdlog::level::from_str(log_level));
  log->flush_on(spdlog::level::info);

  boost::asio::io_context io(1);
  AsioClock clock(io);
  SeededRandom random(OsRandomSeed());
  ClusterClientOptions cco;
  cco.connection.cluster_id = cluster_id;
  cco.connection.request_timeout = std::chrono::seconds(10);
  cco.connection.connect_timeout = std::chrono::seconds(3);
  AsioTransportOptions transport_options;
  if (!tls_dir.empty()) {
    auto t = TlsContext::Load(tls_dir, cluster_id);
    if (!t.ok()) {
      log->error("{}", t.status().message());
      return 2;
    }
    const bool was_read_only = read_only;
    if (Status s = CheckGatewayIdentity((*t)->self(), tls_dir, &read_only); !s.ok()) {
      log->error("{}", s.message());
      return 2;
    }
    if (read_only && !was_read_only) {
      log->warn("{} has a read-only certificate: serving every volume read-only", (*t)->self().Describe());
    }
    transport_options.tls = std::move(*t);
  }
  ClusterClient client(cco, clock, random,
                       [&io, transport_options] { return std::make_unique<AsioTransport>(io, transport_options); });

  std::optional<Status> connected;
  client.Connect(*seeds, [&](Status s) { connected = s; });
  while (!connected) io.run_one();
  if (!connected->ok()) {
    log->error("cluster unreachable at {}: {}", cluster, connected->ToString());
    return 3;
  }

  ServerOptions so;
  so.read_only = read_only;
  so.tls = transport_options.tls;
  so.session.require_tls = so.tls != nullptr;
  so.cache.cache_bytes = cache_mb << 20;
  so.cache.dirty_bytes = dirty_mb << 20;
  so.retry.retry_budget = std::chrono::milliseconds(static_cast<int64_t>(io_timeout_s * 1000));
  so.meta_quorum = Quorum{};  // fitted to the ring at each request
  // A chunk write the gateway started while its lease held ends within its attempts: the
  // first replicas and up to max_fallbacks more, each a connect and a request timeout.
  so.lease_drain = (cco.connection.connect_timeout + cco.connection.request_timeout) * (1 + cco.max_fallbacks);
  NbdServer server(io, client, clock, log, so);
  if (Status s = server.Listen(listen); !s.ok()) {
    log->error("{}", s.ToString());
    return 1;
  }
  log->info("serving the volumes of cluster '{}' ({} node(s)) over NBD on {}{}", cluster_id,
            client.table().ring_nodes(), server.local_address(), read_only ? ", read-only" : "");
  if (!ready_file.empty()) {
    namespace fs = std::filesystem;
    const std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << server.local_address() << "\n";
    std::error_code ec;
    fs::rename(tmp, ready_file, ec);
  }

  int exit_code = 0;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    log->info("signal {}: writing back and stopping", sig);
    server.Shutdown([&](Status s) {
      if (!s.ok()) {
        log->error("writeback failed, data may be lost: {}", s.ToString());
        exit_code = 1;
      }
      io.stop();
    });
  });
  io.run();
  log->info("stopped");
  return exit_code;
}
