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
#include <iterator>
#include <iostream>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>

#include "dht/random.h"
#include "node/node_core.h"
#include "node/runtime/asio_clock.h"
#include "node/runtime/address.h"
#include "node/runtime/disk_usage.h"
#include "node/runtime/process_nice.h"
#include "node/runtime/asio_transport.h"
#include "routing/membership.h"
#include "storage/rocksdb_store.h"

namespace fs = std::filesystem;
using namespace ringstore;

namespace {

// Writes dir/name through a temp file that is fsynced and renamed, then fsyncs the directory:
// a crash leaves either the old file or the whole new one.
Status WriteFileDurably(const fs::path& dir, const std::string& name, const std::string& contents) {
  const fs::path tmp = dir / (name + ".tmp");
  const fs::path file = dir / name;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const bool written = fd >= 0 &&
                       ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()) &&
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
  return Status::Ok();
}

// The node's place on the ring, kept in DIR/MEMBERSHIP: the seed its ring IDs derive from, and
// its incarnation, bumped at every start so that the new life overrides the old one.
// A decommission is kept there too: `leaving 1` while the node hands its data off (a restart
// resumes it), `left 1` once it is done (the node then refuses to start).
struct RingState {
  uint64_t ring_seed = 0;
  uint64_t incarnation = 0;
  bool leaving = false;
  bool left = false;
};

Status SaveRingState(const fs::path& dir, const RingState& st) {
  return WriteFileDurably(dir, "MEMBERSHIP",
                          "ring_seed " + std::to_string(st.ring_seed) + "\nincarnation " +
                              std::to_string(st.incarnation) + "\nleaving " + (st.leaving ? "1" : "0") +
                              "\nleft " + (st.left ? "1" : "0") + "\n");
}

Result<RingState> LoadAndBumpRingState(const fs::path& dir) {
  RingState st;
  const fs::path file = dir / "MEMBERSHIP";
  std::error_code ec;
  const bool exists = fs::exists(file, ec);
  if (ec) return Status::IOError("cannot look at " + file.string() + ": " + ec.message());
  if (exists) {
    std::ifstream in(file);
    std::string seed_key, inc_key;
    if (!(in >> seed_key >> st.ring_seed >> inc_key >> st.incarnation) || seed_key != "ring_seed" ||
        inc_key != "incarnation") {
      return Status::Corruption(file.string() + " is damaged: refusing to invent a new place on the ring");
    }
    // Optional lines (absent in files written before decommission existed).
    for (std::string key; in >> key;) {
      int v = 0;
      if (!(in >> v)) return Status::Corruption(file.string() + " is damaged near '" + key + "'");
      if (key == "leaving") st.leaving = v != 0;
      if (key == "left") st.left = v != 0;
    }
  } else {
    st.ring_seed = OsRandomSeed();
  }
  ++st.incarnation;
  if (Status s = SaveRingState(dir, st); !s.ok()) return s;
  return st;
}

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
  if (Status s = WriteFileDurably(dir, "NODE_ID", std::string(buf) + "\n"); !s.ok()) return s;
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
  size_t row_cache_mb = 64;
  std::string join, zone, advertise;
  double capacity = 1.0;
  int64_t probe_interval_ms = 1000, suspicion_timeout_ms = 3000;
  app.add_option("--data", data_dir, "Data directory (created if missing)")->required();
  app.add_option("--listen", listen, "Address to listen on, HOST:PORT (port 0 picks one)")
      ->capture_default_str();
  app.add_option("--cluster-id", cluster_id, "Cluster id; peers with another id are refused")
      ->capture_default_str();
  std::string tls_dir;
  app.add_option("--tls-dir", tls_dir,
                 "Run with TLS and mutual authentication on every link: DIR holds ca.crt, tls.crt and tls.key "
                 "(`ringstore cert issue node`). Plaintext peers and clients are then refused");
  app.add_option("--durability", durability,
                 "sync: acknowledge after the commit log is fsynced; async: after the OS has the write")
      ->check(CLI::IsMember({"sync", "async"}))
      ->capture_default_str();
  app.add_option("--reader-threads", reader_threads, "Threads serving reads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--row-cache-mb", row_cache_mb,
                 "MiB of memory for small hot records (values up to 16 KiB), read without RocksDB (0: off)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--join", join,
                 "Any member(s) of the cluster to join, HOST:PORT[,HOST:PORT...]; none starts a new ring");
  app.add_option("--zone", zone, "Failure zone (replicas go to distinct zones when there are enough)");
  app.add_option("--capacity", capacity, "Share of the ring, relative to a node of capacity 1")
      ->check(CLI::Range(0.01, 16.0))
      ->capture_default_str();
  app.add_option("--advertise", advertise,
                 "Address other nodes and clients reach this node at (default: the listen address)");
  app.add_option("--probe-interval-ms", probe_interval_ms, "Failure detection: one probe per member round")
      ->check(CLI::Range(int64_t{50}, int64_t{60000}))
      ->capture_default_str();
  app.add_option("--suspicion-timeout-ms", suspicion_timeout_ms,
                 "Failure detection: how long a member stays suspect before it is declared down")
      ->check(CLI::Range(int64_t{100}, int64_t{600000}))
      ->capture_default_str();
  uint32_t replicas = 3;
  double replace_after_s = 600, repair_interval_s = 30, rebalance_rate_mb = 128, scrub_rate_mb = 16;
  int fill_nice = 10;
  app.add_option("--replicas", replicas,
                 "N: the copies of every record that repair keeps (the same on every node, and the N clients use)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  app.add_option("--replace-after", replace_after_s,
                 "Seconds a member may stay down before it is replaced: it leaves the ring and its replicas are "
                 "rebuilt on the other nodes (0: never)")
      ->check(CLI::Range(0.0, 1e7))
      ->capture_default_str();
  app.add_option("--repair-interval", repair_interval_s,
                 "Seconds between anti-entropy rounds (a ring change starts one sooner)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--fill-nice", fill_nice,
                 "Nice value the node runs at, when it joins with --join, until it has caught up with its peers "
                 "(a first anti-entropy round with each), so that the data it takes in does not delay other "
                 "nodes' reads on a shared machine (0: no change; skipped without CAP_SYS_NICE or an RLIMIT_NICE "
                 "that allows putting it back)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--rebalance-rate", rebalance_rate_mb,
                 "MB/s of repair and rebalance traffic, in and out (0: unlimited)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--scrub-rate", scrub_rate_mb, "MB/s of scrub reads, which verify every stored checksum (0: off)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  double tombstone_grace_s = 86400;
  app.add_option("--tombstone-grace", tombstone_grace_s,
                 "Seconds a tombstone is kept at least; after that it is dropped once every replica has it. Must "
                 "exceed --replace-after and any outage a node comes back from with its data (0: keep forever)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--ready-file", ready_file,
                 "Once listening, write the bound HOST:PORT to this file (for scripts)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The value log keeps one descriptor per 64 MiB segment open, besides RocksDB's files and
  // the connections: take the whole hard limit, not the usual soft 1024.
  if (struct rlimit rl {}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }

  if (tombstone_grace_s > 0 && replace_after_s > 0 && tombstone_grace_s <= replace_after_s) {
    std::cerr << "ringstore-node: --tombstone-grace (" << tombstone_grace_s << " s) must be longer than --replace-after ("
              << replace_after_s << " s): a replaced node's stale copies could otherwise bring deleted objects back\n";
    return 2;
  }
  std::shared_ptr<TlsContext> tls;
  if (!tls_dir.empty()) {
    auto t = TlsContext::Load(tls_dir, cluster_id);
    if (t.ok() && (*t)->self().role != Role::kNode) {
      t = Status::InvalidArgument(tls_dir + "/tls.crt is the certificate of " + (*t)->self().Describe() +
                                  "; a node needs one from `ringstore cert issue node`");
    }
    if (!t.ok()) {
      std::cerr << "ringstore-node: " << t.status().message() << "\n";
      return 2;
    }
    tls = std::move(*t);
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
  ro.row_cache_bytes = row_cache_mb << 20;
  auto store = RocksDbStore::Open(ro, strand);
  if (!store.ok()) {
    log->error("{}", store.status().ToString());
    return 1;
  }
  if (const auto& r = (*store)->log_recovery(); r.applied > 0 || r.dropped) {
    log->info("store: replayed {} batch(es) from the commit log", r.applied);
    if (r.dropped) {
      log->warn("store: the commit log ended before its last segments (writes torn or lost in a crash; "
                "with --durability sync none of them was acknowledged)");
    }
  }

  AsioClock clock(io);
  AsioTransportOptions transport_options;
  transport_options.tls = tls;
  AsioTransport transport(io, transport_options);
  NodeOptions no;
  no.cluster_id = cluster_id;
  no.node_id = *node_id;
  no.disk_usage = [data_dir] { return DiskUsageOfDir(data_dir); };
  NodeCore core(no, clock, transport, **store, log);
  core.Start();
  if (Status s = transport.Listen(listen); !s.ok()) {
    log->error("{}", s.ToString());
    return 1;
  }
  // Join the ring: our entry (persisted seed, bumped incarnation), the links to peers, and
  // the membership protocol over them.
  auto ring_state = LoadAndBumpRingState(data_dir);
  if (!ring_state.ok()) {
    log->error("{}", ring_state.status().ToString());
    return 1;
  }
  if (ring_state->left) {
    log->error("this node was decommissioned and has left the cluster; start it with an empty --data directory "
               "to join again as a new node");
    return 1;
  }
  if (advertise.empty()) advertise = transport.local_address();
  if (auto hp = ParseHostPort(advertise); !hp.ok() || hp->host == "0.0.0.0" || hp->host == "::") {
    log->error("cannot advertise '{}': give --advertise HOST:PORT that other nodes can reach", advertise);
    return 1;
  }
  NodeEntry self;
  self.node_id = *node_id;
  self.address = advertise;
  self.zone = zone;
  self.ring_seed = ring_state->ring_seed;
  self.incarnation = ring_state->incarnation;
  self.vnodes = static_cast<uint32_t>(std::max(1.0, capacity * kVnodesPerCapacity));
  auto join_list = SplitAddresses(join);
  if (!join_list.ok()) {
    log->error("--join: {}", join_list.status().message());
    return 2;
  }
  const std::vector<std::string> seeds = std::move(*join_list);
  SeededRandom random(OsRandomSeed());
  PeerLinks peers(PeerLinkOptions{}, cluster_id, *node_id, transport, clock, log);
  MembershipOptions mo;
  mo.probe_interval = std::chrono::milliseconds(probe_interval_ms);
  mo.probe_timeout = std::min(mo.probe_timeout, mo.probe_interval / 2);
  mo.suspicion_timeout = std::chrono::milliseconds(suspicion_timeout_ms);
  mo.replace_after = std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(replace_after_s));
  Membership membership(mo, self, clock, random, peers, log);
  auto save_ring_state = [&] {
    const NodeEntry& me = membership.self();
    RingState st{me.ring_seed, me.incarnation, me.leaving, me.state == NodeState::kLeft};
    if (Status s = SaveRingState(data_dir, st); !s.ok()) log->error("{}", s.ToString());
  };
  membership.set_on_incarnation([&](uint64_t) { save_ring_state(); });
  core.AttachMembership(&membership, &peers);
  HandoffOptions hoptions;
  hoptions.tombstone_grace = std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(tombstone_grace_s));
  HintedHandoff handoff(hoptions, *node_id, clock, **store, peers, membership, log);
  core.AttachHandoff(&handoff);
  handoff.Start();
  AntiEntropyOptions ao;
  ao.replicas = replicas;
  ao.interval = std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(repair_interval_s));
  ao.rate_bytes_per_s = rebalance_rate_mb * 1e6;
  ao.scrub_bytes_per_s = scrub_rate_mb * 1e6;
  ao.tombstone_grace = std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(tombstone_grace_s));
  // DIR/PLACEMENT_HISTORY: the rings this node was last in step with its peers under
  // (node/placement_history.h). Missing or unreadable: an empty history, as on a first start.
  {
    std::ifstream in(fs::path(data_dir) / "PLACEMENT_HISTORY", std::ios::binary);
    ao.placement_history.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ao.save_placement_history = [dir = fs::path(data_dir), log](const std::string& bytes) {
    if (Status s = WriteFileDurably(dir, "PLACEMENT_HISTORY", bytes); !s.ok()) log->warn("{}", s.ToString());
  };
  ao.replace_after = mo.replace_after;
  AntiEntropy repair(ao, *node_id, clock, **store, peers, membership, log);
  core.AttachRepair(&repair);
  // A joining node catches up at a lower CPU priority (docs/repair.md §8).
  ProcessNice nice;
  repair.set_on_first_sync([&] {
    // (bench/rebalance_bench.sh waits for this line: polling `ringstore status` disturbed the
    // load it measures.)
    if (!nice.lowered()) return log->info("caught up with its peers");
    Status s = nice.Restore();
    if (s.ok()) {
      log->info("caught up with its peers: back to normal CPU priority");
    } else {
      log->warn("caught up with its peers, but the CPU priority could not be put back: {}", s.ToString());
    }
  });
  if (!seeds.empty() && fill_nice > 0) {
    if (Status s = nice.Lower(fill_nice); s.ok()) {
      log->info("catching up with its peers at nice {} (--fill-nice)", fill_nice);
    } else {
      log->info("catching up with its peers at normal CPU priority: --fill-nice {} {}", fill_nice, s.message());
    }
  }
  membership.Start(seeds);
  repair.Start();
  if (ring_state->leaving) {
    log->warn("resuming the decommission of this node");
    repair.Decommission();
  }

  log->info("node {} of cluster '{}' listening on {} as {} (data {}, durability {}, zone '{}', {} ring ids, "
            "incarnation {}, {})",
            *node_id, cluster_id, transport.local_address(), advertise, data_dir, durability, zone, self.vnodes,
            self.incarnation, seeds.empty() ? std::string("starting a new ring") : "joining through " + join);
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
    membership.Stop();
    repair.Stop();
    core.Shutdown([&](Status s) {
      if (!s.ok()) exit_code = 1;
      io.stop();
    });
  });
  io.run();
  log->info("stopped");
  return exit_code;
}
