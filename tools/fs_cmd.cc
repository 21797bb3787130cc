#include "tools/fs_cmd.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <random>

#include "blockgateway/volume.h"  // ParseSize, FormatSize
#include "fsgateway/fs_catalog.h"
#include "node/runtime/asio_clock.h"
#include "tools/exit_status.h"

namespace ringstore {

CLI::App* AddFsCommands(CLI::App& app, FsArgs& a) {
  auto* fs = app.add_subcommand("fs", "Create, list and remove filesystems (mounted with ringstore-fs)");
  fs->require_subcommand(1);
  a.create = fs->add_subcommand("create", "Create an empty filesystem (its N/W/R: the global --replicas, --w, --r)");
  a.create->add_option("NAME", a.name, "Filesystem name: letters, digits, '.', '_', '-'")->required();
  a.create->add_option("--chunk-size", a.chunk_size, "Bytes per file data chunk, a power of two from 4K to 16M")
      ->capture_default_str();
  a.create
      ->add_option("--dir-buckets", a.dir_buckets,
                   "Map records each directory's entries are spread over, 1 to 256 (docs/fsgateway.md F9)")
      ->capture_default_str();
  a.ls = fs->add_subcommand("ls", "List the filesystems");
  a.rm = fs->add_subcommand("rm", "Remove a filesystem and all its files (unmount it everywhere first)");
  a.rm->add_option("NAME", a.name, "Filesystem name")->required();
  return fs;
}

int RunFs(const std::vector<std::string>& seeds, const std::string& cluster_id, double timeout_s, const FsArgs& a,
          Quorum quorum, std::shared_ptr<TlsContext> tls) {
  if (a.create->parsed() || a.rm->parsed()) {
    if (Status s = fs::ValidateFsName(a.name); !s.ok()) return FailCatalog("fs", s);
  }
  uint64_t chunk = 0;
  if (a.create->parsed()) {
    auto c = block::ParseSize(a.chunk_size);
    if (!c.ok()) return FailCatalog("fs create: --chunk-size", c.status());
    if (Status s = fs::ValidateChunkSize(*c); !s.ok()) return FailCatalog("fs create: --chunk-size", s);
    chunk = *c;
    if (Status s = fs::ValidateDirBuckets(a.dir_buckets); !s.ok()) return FailCatalog("fs create: --dir-buckets", s);
  }
  fs::ClusterIoOptions o;
  o.cluster_id = cluster_id;
  o.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  o.io_timeout = o.request_timeout;
  o.tls = std::move(tls);
  auto io = fs::ClusterObjectIo::Connect(seeds, o);
  if (!io.ok()) {
    std::cerr << "ringstore: cluster unreachable: " << io.status().ToString() << "\n";
    return kExitUnreachable;
  }
  const size_t ring_nodes = (*io)->RingNodes();
  fs::FsCatalog catalog(**io, FitToRing(Quorum{}, ring_nodes));
  if (a.create->parsed()) {
    fs::FsMeta m;
    m.name = a.name;
    m.chunk_size = chunk;
    m.dir_buckets = a.dir_buckets;
    m.quorum = quorum;
    m.created_ms = static_cast<uint64_t>(std::time(nullptr)) * 1000;
    std::mt19937_64 rnd(OsRandomSeed());
    for (int i = 0; i < 2; ++i) {
      const uint64_t v = rnd();
      m.uuid.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    Status s = catalog.Create(m, getuid(), getgid(), std::time(nullptr));
    if (!s.ok()) return FailCatalog("fs create " + a.name, s);
    const Quorum fit = FitToRing(quorum, ring_nodes);
    std::cout << "created filesystem " << m.name << ": chunks of " << block::FormatSize(m.chunk_size) << ", "
              << m.dir_buckets << " bucket(s) per directory, N=" << fit.n
              << " W=" << fit.w << " R=" << fit.r << "\n";
    return kExitOk;
  }
  if (a.ls->parsed()) {
    auto names = catalog.List();
    if (!names.ok()) return FailCatalog("fs ls", names.status());
    std::printf("%-24s %10s %-11s %s\n", "NAME", "CHUNK", "N/W/R", "CREATED");
    for (const auto& name : *names) {
      auto m = catalog.Open(name);
      if (!m.ok()) {
        std::printf("%-24s (unreadable: %s)\n", name.c_str(), m.status().ToString().c_str());
        continue;
      }
      const std::string q = std::to_string(m->quorum.n) + "/" + std::to_string(m->quorum.w) + "/" + std::to_string(m->quorum.r);
      const std::time_t t = static_cast<std::time_t>(m->created_ms / 1000);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char date[32];
      std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
      std::printf("%-24s %10s %-11s %s\n", name.c_str(), block::FormatSize(m->chunk_size).c_str(), q.c_str(), date);
    }
    return kExitOk;
  }
  if (a.rm->parsed()) {
    uint64_t last = 0;
    Status s = catalog.Remove(a.name, [&](uint64_t n) {
      if (n >= last + 10000) {
        last = n;
        std::cerr << "ringstore: removing " << a.name << ": " << n << " objects deleted\n";
      }
    });
    if (!s.ok()) return FailCatalog("fs rm " + a.name, s);
    std::cout << "removed filesystem " << a.name << "\n";
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace ringstore
