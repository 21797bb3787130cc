#include "tools/volume_cmd.h"

#include <cstdio>
#include <iostream>

#include "blockgateway/volume.h"
#include "dht/random.h"
#include "tools/exit_status.h"

namespace ringstore {

using block::VolumeCatalog;
using block::VolumeMeta;

namespace {

// Progress on stderr for long runs, at most every 5%.
block::Progress Reporter(const std::string& what) {
  auto last = std::make_shared<uint64_t>(0);
  return [what, last](uint64_t done, uint64_t total) {
    if (total < 1024) return;
    const uint64_t pct = done * 100 / total;
    if (pct < *last + 5 && done != total) return;
    *last = pct;
    std::cerr << "ringstore: " << what << ": " << done << "/" << total << " chunks (" << pct << "%)\n";
  };
}

}  // namespace

CLI::App* AddVolumeCommands(CLI::App& app, VolumeArgs& a) {
  auto* vol = app.add_subcommand("volume", "Create, list, resize and remove block volumes (served by ringstore-block)");
  vol->require_subcommand(1);
  a.create = vol->add_subcommand("create", "Create a thin volume of SIZE bytes (suffixes K, M, G, T)");
  a.create->add_option("NAME", a.name, "Volume name: letters, digits, '.', '_', '-'")->required();
  a.create->add_option("SIZE", a.size, "Size, a multiple of 512, e.g. 10G")->required();
  a.create->add_option("--chunk-size", a.chunk_size, "Bytes per chunk object, a power of two from 4K to 16M")
      ->capture_default_str();
  a.ls = vol->add_subcommand("ls", "List the volumes");
  a.rm = vol->add_subcommand("rm",
                             "Remove a volume and all its data (refused while a gateway holds a lease on it: it has "
                             "clients, data to write back, or crashed within the last 100 s or so)");
  a.rm->add_option("NAME", a.name, "Volume name")->required();
  a.rm->add_flag("--force", a.force,
                 "Remove it even while a gateway holds a lease on it: for a gateway that is gone for good and whose "
                 "lease has not run out yet (about 100 s after its last renewal). A live gateway goes on writing "
                 "until its renewals see the forced command (about 11 s after it began), then its clients get EIO");
  a.rm->add_option("--wait", a.wait_s, "Seconds to wait for the gateways to let go of the volume before refusing")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  a.resize = vol->add_subcommand("resize",
                                 "Grow or shrink a volume (shrinking discards the data past the end, and is refused "
                                 "while a gateway has the volume attached)");
  a.resize->add_option("NAME", a.name, "Volume name")->required();
  a.resize->add_option("SIZE", a.size, "New size, a multiple of 512")->required();
  a.resize->add_flag("--force", a.force, "Shrink it even while a gateway holds a lease on it (see `volume rm --force`)");
  a.resize->add_option("--wait", a.wait_s, "Seconds a shrink waits for the gateways to let go of the volume")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  return vol;
}

int RunVolume(Session& session, const VolumeArgs& a, Quorum quorum) {
  ClusterClient& client = session.cluster();
  VolumeCatalog catalog(client, FitQuorum(Quorum{}, client.table().ring_nodes(), false), session.clock());
  catalog.set_lease_wait(std::chrono::milliseconds(static_cast<int64_t>(a.wait_s * 1000)));
  if (a.create->parsed()) {
    auto size = block::ParseSize(a.size);
    if (!size.ok()) return FailCatalog("volume create", size.status());
    auto chunk = block::ParseSize(a.chunk_size);
    if (!chunk.ok()) return FailCatalog("volume create: --chunk-size", chunk.status());
    VolumeMeta m;
    m.name = a.name;
    m.size = *size;
    m.chunk_size = *chunk;
    m.quorum = quorum;
    m.created_ms = static_cast<uint64_t>(session.clock().WallMicros() / 1000);
    SeededRandom rnd(OsRandomSeed());
    for (int i = 0; i < 2; ++i) {
      const uint64_t v = rnd.Next();
      m.uuid.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    Status s = session.WaitStatus([&](auto cb) { catalog.Create(m, std::move(cb)); });
    if (!s.ok()) return FailCatalog("volume create " + a.name, s);
    const Quorum fit = FitToRing(quorum, client.table().ring_nodes());
    std::cout << "created volume " << m.name << ": " << block::FormatSize(m.size) << " in chunks of "
              << block::FormatSize(m.chunk_size) << ", N=" << fit.n << " W=" << fit.w << " R=" << fit.r << "\n";
    return kExitOk;
  }
  if (a.ls->parsed()) {
    auto vols = session.Wait<std::vector<VolumeMeta>>([&](auto cb) { catalog.List(std::move(cb)); });
    if (!vols.ok()) return FailCatalog("volume ls", vols.status());
    std::printf("%-24s %14s %10s %-11s %s\n", "NAME", "SIZE", "CHUNK", "N/W/R", "CREATED");
    for (const auto& v : *vols) {
      const std::string q = std::to_string(v.quorum.n) + "/" + std::to_string(v.quorum.w) + "/" + std::to_string(v.quorum.r);
      std::printf("%-24s %14s %10s %-11s %s\n", v.name.c_str(), block::FormatSize(v.size).c_str(),
                  block::FormatSize(v.chunk_size).c_str(), q.c_str(), block::FormatDate(v.created_ms).c_str());
    }
    return kExitOk;
  }
  if (a.rm->parsed()) {
    Status s = session.WaitStatus([&](auto cb) { catalog.Remove(a.name, a.force, Reporter("removing " + a.name), std::move(cb)); });
    if (!s.ok()) return FailCatalog("volume rm " + a.name, s);
    std::cout << "removed volume " << a.name << "\n";
    return kExitOk;
  }
  if (a.resize->parsed()) {
    auto size = block::ParseSize(a.size);
    if (!size.ok()) return FailCatalog("volume resize", size.status());
    Status s = session.WaitStatus(
        [&](auto cb) { catalog.Resize(a.name, *size, a.force, Reporter("shrinking " + a.name), std::move(cb)); });
    if (!s.ok()) return FailCatalog("volume resize " + a.name, s);
    std::cout << "volume " << a.name << " is now " << block::FormatSize(*size)
              << " (attached clients see it when they reconnect)\n";
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace ringstore
