// ringstore-fs: mounts a ringstore filesystem through FUSE3 (docs/fsgateway.md).
// Create the filesystem first with `ringstore fs create NAME`.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <utility>

#include "fsgateway/flusher.h"
#include "fsgateway/fs_catalog.h"
#include "fsgateway/fuse_ops.h"
#include "fsgateway/notifier.h"
#include "node/runtime/address.h"
#include "node/runtime/asio_clock.h"

using namespace ringstore;
using namespace ringstore::fs;

namespace {

Timespec WallNow() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ringstore-fs: mounts a ringstore filesystem at MOUNTPOINT through FUSE3 and serves it in the\n"
      "foreground. Writes are cached and written back in whole chunks; fsync and close return once\n"
      "the data is durable at W replicas. SIGTERM or SIGINT writes back dirty data, then unmounts.\n"
      "Other mounts of the filesystem are told of changes through the cluster.\n"
      "Create the filesystem first: ringstore fs create NAME."};
  app.footer(
      "Exit status: 0 unmounted cleanly, 1 no such filesystem or write-back failed, 2 usage error,\n"
      "3 cluster unreachable, 4 other error (mount refused, root unreadable). See docs/fsgateway.md.");
  std::string mountpoint, cluster, fs_name = "default", options, cluster_id = "ringstore", log_level = "info",
                          ready_file;
  double io_timeout_s = 30, attr_ttl_s = 1.0;
  uint64_t dirty_mb = 256;
  uint64_t readahead_mb = 4;
  unsigned threads = 16;
  app.add_option("MOUNTPOINT", mountpoint, "An existing empty directory")->required();
  app.add_option("--cluster", cluster, "Any node(s) of the cluster, HOST:PORT[,HOST:PORT...]")
      ->envname("RINGSTORE_CLUSTER")
      ->required();
  app.add_option("--fs", fs_name, "The filesystem to mount")->capture_default_str();
  app.add_option("-o", options,
                 "Mount options, comma-separated: ro, auto_unmount, allow_other, and other FUSE options");
  app.add_option("--cluster-id", cluster_id, "Cluster id to expect")
      ->envname("RINGSTORE_CLUSTER_ID")
      ->capture_default_str();
  std::string tls_dir;
  app.add_option("--tls-dir", tls_dir, "Connect to the nodes with TLS: DIR holds ca.crt, tls.crt and tls.key (`ringstore cert issue client`)")
      ->envname("RINGSTORE_TLS_DIR");
  app.add_option("--io-timeout", io_timeout_s,
                 "Seconds an operation keeps retrying while replicas are unreachable, before EIO")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--attr-ttl", attr_ttl_s,
                 "How stale attributes and directory listings may be, in seconds (half in the kernel's cache,\n"
                 "half in the gateway's)")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--dirty-mb", dirty_mb, "Unwritten data the mount may hold, all files together, before writes flush the files holding most of it, in MiB")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  double dirty_expire_s = 5;
  app.add_option("--dirty-expire", dirty_expire_s,
                 "Seconds after which unwritten data is written back even while its file stays open (a\n"
                 "little more: the writeback looks every quarter of it, at most every second; 0: only at\n"
                 "close, fsync, the dirty limit and unmount)")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--readahead-mb", readahead_mb,
                 "How far ahead of a sequential reader chunks are read, in MiB (0: no read-ahead)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--threads", threads, "FUSE worker threads")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")->capture_default_str();
  app.add_option("--ready-file", ready_file, "Write the mountpoint to this file once mounted");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto log = spdlog::stderr_color_mt("fs");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  log->set_level(spdlog::level::from_str(log_level));
  log->flush_on(spdlog::level::info);

  auto seeds = SplitAddresses(cluster);
  if (!seeds.ok() || seeds->empty()) {
    std::cerr << "ringstore-fs: --cluster: " << (seeds.ok() ? "names no node" : seeds.status().message()) << "\n";
    return 2;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(mountpoint, ec)) {
    std::cerr << "ringstore-fs: mountpoint " << mountpoint << " is not a directory\n";
    return 2;
  }
  // Our own options; the rest go to FUSE.
  bool read_only = false;
  std::string fuse_opts = "default_permissions,fsname=ringstore:" + fs_name + ",subtype=ringstore";
  {
    std::stringstream ss(options);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty()) continue;
      if (opt == "ro") read_only = true;
      if (opt == "rw") read_only = false;
      fuse_opts += "," + opt;
    }
  }

  ClusterIoOptions io_options;
  io_options.cluster_id = cluster_id;
  io_options.io_timeout = std::chrono::milliseconds(static_cast<int64_t>(io_timeout_s * 1000));
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
      log->warn("{} has a read-only certificate: mounting read-only", (*t)->self().Describe());
      fuse_opts += ",ro";
    }
    io_options.tls = std::move(*t);
  }
  auto io = ClusterObjectIo::Connect(*seeds, io_options);
  if (!io.ok()) {
    log->error("cluster unreachable at {}: {}", cluster, io.status().ToString());
    return 3;
  }
  FsCatalog catalog(**io, FitToRing(Quorum{}, (*io)->RingNodes()));
  auto meta = catalog.Open(fs_name);
  if (!meta.ok()) {
    log->error("cannot mount '{}': {}{}", fs_name, meta.status().ToString(),
               meta.status().IsNotFound() ? " (create it with: ringstore fs create " + fs_name + ")" : "");
    return meta.status().IsNotFound() ? 1 : 4;
  }
  FsOptions fo;
  fo.read_only = read_only;
  // The staleness bound is split between the gateway's cache and the kernel's, which stack.
  fo.attr_ttl = std::chrono::milliseconds(static_cast<int64_t>(attr_ttl_s * 500));
  fo.dirty_limit_bytes = dirty_mb << 20;
  fo.readahead_chunks = readahead_mb == 0 ? 0 : std::max<size_t>(1, (readahead_mb << 20) / meta->chunk_size);
  std::mt19937_64 rng(OsRandomSeed());
  const uint64_t mount_id = rng();
  std::mutex rng_mu;
  FsCore core(*meta, **io, fo, WallNow, [&] {
    std::lock_guard<std::mutex> lock(rng_mu);
    return rng();
  });
  if (int e = core.Init(); e != 0) {
    log->error("cannot read the root of '{}': {}", fs_name, std::strerror(e));
    return 4;
  }

  FuseContext ctx;
  ctx.core = &core;
  ctx.attr_timeout = attr_ttl_s / 2;
  ctx.entry_timeout = attr_ttl_s / 2;
  std::vector<std::string> args_store = {"ringstore-fs", "-o", fuse_opts};
  std::vector<char*> fargv;
  for (auto& a : args_store) fargv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(fargv.size()), fargv.data());
  fuse_session* se = fuse_session_new(&args, &FuseOperations(), sizeof(fuse_lowlevel_ops), &ctx);
  if (se == nullptr) {
    log->error("bad FUSE options: {}", fuse_opts);
    return 2;
  }
  ctx.session = se;
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return 4;
  }
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    log->error("mounting {} failed (is /dev/fuse there, and are you root or in the fuse group?)", mountpoint);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 4;
  }
  // Coherence with the other mounts (fsgateway/notifier.h).
  Notifier notifier(**io, *meta, core, mount_id,
                    NotifierCallbacks{
                        [se](uint64_t ino) { (void)fuse_lowlevel_notify_inval_inode(se, ino, 0, 0); },
                        [se](uint64_t dir, const std::string& name) {
                          (void)fuse_lowlevel_notify_inval_entry(se, dir, name.data(), name.size());
                        }});
  core.SetChangeListener([&notifier](const FsCore::Change& c) { notifier.Note(c); });
  notifier.Start();
  // Age-based writeback (fsgateway/flusher.h). A failure is logged once, and its recovery once.
  bool flusher_failing = false;  // the flusher's thread only
  Flusher flusher(core, std::chrono::milliseconds(std::max<int64_t>(10, std::llround(dirty_expire_s * 1000))),
                  [&](const FsCore::Expired& r) {
                    if (r.failed > 0 && !std::exchange(flusher_failing, true)) {
                      log->warn("writing back unwritten data failed: {}; trying again after {:g} s, then after "
                                "twice as long each time (at most 5 minutes)",
                                std::strerror(r.first_error), dirty_expire_s);
                    } else if (r.failed == 0 && std::exchange(flusher_failing, false)) {
                      log->info("writing back unwritten data works again");
                    }
                  });
  if (dirty_expire_s > 0) flusher.Start();
  log->info("mounted filesystem '{}' of cluster '{}' ({} node(s), N={} W={} R={}, {} KiB chunks) at {}{}",
            fs_name, cluster_id, (*io)->RingNodes(), meta->quorum.n, meta->quorum.w, meta->quorum.r,
            meta->chunk_size >> 10, mountpoint, read_only ? ", read-only" : "");
  if (!ready_file.empty()) {
    const std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << mountpoint << "\n";
    std::filesystem::rename(tmp, ready_file, ec);
  }
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, threads);
  fuse_loop_cfg_set_idle_threads(config, std::min(threads, 8u));
  const int loop = fuse_session_loop_mt(se, config);
  fuse_loop_cfg_destroy(config);
  // libfuse's signal handlers end the loop with the signal number as its result.
  const bool by_signal = loop == SIGTERM || loop == SIGINT || loop == SIGHUP;
  if (by_signal) {
    log->info("signal {}: writing back dirty data, then unmounting", loop);
  } else if (loop != 0) {
    log->error("the FUSE session failed ({}); writing back dirty data, then unmounting", loop);
  } else {
    log->info("unmounted from outside; writing back dirty data");
  }
  int exit_code = loop == 0 || by_signal ? 0 : 1;
  flusher.Stop();
  if (int e = core.FlushAll(); e != 0) {
    log->error("writeback failed, data may be lost: {}", std::strerror(e));
    exit_code = 1;
  }
  notifier.Stop();  // after the last changes are published; before the session goes away
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  (*io)->Stop();
  log->info("unmounted {}", mountpoint);
  return exit_code;
}
