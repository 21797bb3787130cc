// ringstore-node: one storage node. Wires the NodeCore to the real world: RocksDB on a
// worker pool, TCP through Boost.Asio, the OS clock, and SIGTERM/SIGINT for a graceful stop.
#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "dht/random.h"
#include "node/node_core.h"
#include "node/runtime/asio_clock.h"
#include "node/runtime/asio_transport.h"
#include "storage/rocksdb_store.h"

namespace fs = std::filesystem;
using namespace ringstore;

namespace {

// The node's identity: 128 random bits, created on first start and kept in DIR/NODE_ID.
Result<std::string> LoadOrCreateNodeId(const fs::path& dir) {
  const fs::path file = dir / "NODE_ID";
  std::error_code exists_ec;
  const bool exists = fs::exists(file, exists_ec);
  std::ifstream in(file);
  if (exists && !in) {
    return Status::IOError("cannot read " + file.string() + ": refusing to replace this node's identity");
  }
  if (in) {
    std::string id;
    in >> id;
    if (id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos) return id;
    return Status::Corruption(file.string() + " does not hold a node id (32 hex digits)");
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(OsRandomSeed()),
                static_cast<unsigned long long>(OsRandomSeed()));
  // Written to a temp file, fsynced, renamed, and the directory fsynced: a crash leaves
  // either no NODE_ID or a whole one.
  const fs::path tmp = dir / "NODE_ID.tmp";
  const std::string line = std::string(buf) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const bool written = fd >= 0 && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!written) return Status::IOError("cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) return Status::IOError("cannot create " + file.string() + ": " + ec.message());
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return std::string(buf);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringstore-node: a ringstore storage node.\n"
               "Stores objects durably in RocksDB under --data and serves them over the\n"
               "ringstore wire protocol on --listen. SIGTERM or SIGINT stops it gracefully:\n"
               "it stops accepting, finishes the requests in flight and closes the store."};
  std::string data_dir, listen = "127.0.0.1:7400", cluster_id = "ringstore", durability = "sync";
  std::string log_level = "info", ready_file;
  size_t reader_threads = 2;
  app.add_option("--data", data_dir, "Data directory (created if missing)")->required();
  app.add_option("--listen", listen, "Address to listen on, HOST:PORT (port 0 picks one)")
      ->capture_default_str();
  app.add_option("--cluster-id", cluster_id, "Cluster id; peers with another id are refused")
      ->capture_default_str();
  app.add_option("--durability", durability,
                 "sync: acknowledge after the WAL is fsynced; async: after the OS has the write")
      ->check(CLI::IsMember({"sync", "async"}))
      ->capture_default_str();
  app.add_option("--reader-threads", reader_threads, "Threads serving reads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--ready-file", ready_file,
                 "Once listening, write the bound HOST:PORT to this file (for scripts)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) {
    std::cerr << "ringstore-node: cannot create data directory " << data_dir << ": " << ec.message() << "\n";
    return 1;
  }
  auto node_id = LoadOrCreateNodeId(data_dir);
  if (!node_id.ok()) {
    std::cerr << "ringstore-node: " << node_id.status().ToString() << "\n";
    return 1;
  }
  auto log = spdlog::stderr_color_mt(node_id->substr(0, 8));
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [node %n] %v");
  log->set_level(spdlog::level::from_str(log_level));
  log->flush_on(spdlog::level::info);

  boost::asio::io_context io(1);
  Executor strand = [&io](std::function<void()> fn) { boost::asio::post(io, std::move(fn)); };
  RocksDbOptions ro;
  ro.path = (fs::path(data_dir) / "db").string();
  ro.durability = durability == "async" ? Durability::kAsync : Durability::kSync;
  ro.reader_threads = reader_threads;
  auto store = RocksDbStore::Open(ro, strand);
  if (!store.ok()) {
    log->error("{}", store.status().ToString());
    return 1;
  }

  AsioClock clock(io);
  AsioTransport transport(io);
  NodeOptions no;
  no.cluster_id = cluster_id;
  no.node_id = *node_id;
  NodeCore core(no, clock, transport, **store, log);
  core.Start();
  if (Status s = transport.Listen(listen); !s.ok()) {
    log->error("{}", s.ToString());
    return 1;
  }
  log->info("node {} of cluster '{}' listening on {} (data {}, durability {})", *node_id, cluster_id,
            transport.local_address(), data_dir, durability);
  if (!ready_file.empty()) {
    const std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << transport.local_address() << "\n";
    fs::rename(tmp, ready_file, ec);
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  int exit_code = 0;
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    log->info("signal {}: stopping", sig);
    core.Shutdown([&](Status s) {
      if (!s.ok()) exit_code = 1;
      io.stop();
    });
  });
  io.run();
  log->info("stopped");
  return exit_code;
}
