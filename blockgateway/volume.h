// Volumes: what a block volume is in the DHT, and the catalog operations on it.
//
// A volume is a metadata object at H("ringstore.volume", NAME) plus one object per chunk at
// H("ringstore.chunk", UUID || LE64 chunk index). The UUID is drawn when the volume is
// created, so a volume removed and created again under the same name never sees the old
// chunks. Volumes are thin: a chunk that was never written (or was trimmed whole) has no
// object, or a tombstone, and reads as zeros. A chunk object, when present, holds exactly
// chunk_size bytes and is always written whole (DESIGN.md's pitfall on partial writes).
// The names of all volumes are kept in one catalog object, for `volume ls`: a map record
// (dht/lww_map.h), so that concurrent creates and removes of different volumes all stay.
// Catalogs written before that are a plain list (EncodeCatalog); they are still read, and the
// first edit carries their names into the map.
//
// VolumeCatalog runs the admin operations (create, list, remove, resize, open) over a
// ClusterClient. A remove or a shrink is refused while a gateway holds a lease on the volume
// (blockgateway/volume_lease.h) unless forced. Thread-safety: strand-confined, like the
// ClusterClient and Clock it borrows.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dht/clock.h"
#include "dht/cluster_client.h"
#include "dht/object_id.h"
#include "dht/object_key.h"
#include "dht/status.h"

namespace ringstore::block {

constexpr uint64_t kMinChunkSize = 4096;
constexpr uint64_t kMaxChunkSize = 16u << 20;       // below the 64 MiB object limit
constexpr uint64_t kDefaultChunkSize = 256u << 10;  // docs/blockgateway.md B6
constexpr uint64_t kMaxVolumeSize = 1ull << 50;     // 1 PiB
constexpr uint64_t kSectorSize = 512;               // volume sizes are multiples of it
constexpr size_t kMaxVolumeNameBytes = 64;
constexpr size_t kMaxVolumes = 10000;               // names the catalog holds
// How long `volume rm` and a shrink wait by default for the gateways' leases to go before
// refusing.
constexpr auto kDefaultLeaseWait = std::chrono::seconds(10);

struct VolumeMeta {
  std::string name;
  uint64_t size = 0;
  uint64_t chunk_size = kDefaultChunkSize;
  std::string uuid;  // 16 raw bytes
  Quorum quorum;     // as asked at create; fitted to the ring at each request
  uint64_t created_ms = 0;
  // Bumped by each resize: a gateway that kept the volume's chunks in memory must not reuse
  // them after a shrink and a grow back to the same size (the shrink deleted chunks).
  uint64_t generation = 0;
  // Set by `volume rm` and a shrinking `volume resize` before they check the volume's leases
  // (blockgateway/volume_lease.h), and cleared when the command is refused or, for a resize,
  // done. A gateway does not attach a volume that has one. Left behind by a command that was
  // interrupted; running it again clears it.
  struct Hold {
    std::string command;    // "volume rm v", "volume resize v 1048576 --force"; empty: none
    uint64_t begun_us = 0;  // wall time it began: tells one command's hold from another's
    // The command goes on whatever the leases (--force): a gateway that finds this stops
    // serving the volume at once rather than when the command is done.
    bool forced = false;
    bool empty() const { return command.empty(); }
    bool operator==(const Hold&) const = default;
  };
  Hold hold;

  uint64_t chunks() const { return (size + chunk_size - 1) / chunk_size; }
  ObjectKey ChunkId(uint64_t index) const;
};

// Names are 1..64 bytes of [A-Za-z0-9._-], not starting with '.' or '-'.
Status ValidateVolumeName(const std::string& name);
// "10G", "512M", "4096", "1T": binary suffixes K, M, G, T, P (optionally with "iB" or "B").
Result<uint64_t> ParseSize(const std::string& text);
std::string FormatSize(uint64_t bytes);
// Wall-clock milliseconds as "2026-11-24T09:14:03Z".
std::string FormatDate(uint64_t ms);
// Why a volume with a hold is not served: the command under way, or interrupted.
std::string DescribeHold(const VolumeMeta& m);
// Checks size and chunk size: chunk size a power of two within bounds, size a positive
// multiple of 512 no larger than kMaxVolumeSize.
Status ValidateGeometry(uint64_t size, uint64_t chunk_size);

// Whether a and b are the same volume as it was when a was read: same uuid (not removed and
// created again), size and generation (not resized since).
bool SameVolume(const VolumeMeta& a, const VolumeMeta& b);

ObjectKey VolumeMetaId(const std::string& name);
std::string EncodeVolumeMeta(const VolumeMeta& m);
Result<VolumeMeta> DecodeVolumeMeta(std::string_view bytes);
// The catalog's first format, a plain list of names (read, and written only by tests).
std::string EncodeCatalog(const std::vector<std::string>& names);
Result<std::vector<std::string>> DecodeCatalog(std::string_view bytes);

// Progress of a long operation: chunks done out of total.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

class VolumeCatalog {
 public:
  // Metadata, catalog and lease objects are written and read with this quorum, fitted to the
  // ring as the client knows it at each request.
  // The clock's wall time decides which leases have run out.
  VolumeCatalog(ClusterClient& client, Quorum meta_quorum, Clock& clock)
      : client_(client), q_(meta_quorum), clock_(clock) {}
  // How long a remove or a shrink waits for live leases to go before refusing.
  void set_lease_wait(Clock::Duration d) { lease_wait_ = d; }

  // Fails with InvalidArgument if the name exists.
  void Create(VolumeMeta meta, std::function<void(Status)> done);
  void Open(const std::string& name, std::function<void(Result<VolumeMeta>)> done);
  void List(std::function<void(Result<std::vector<VolumeMeta>>)> done);
  // Deletes every chunk, then the metadata, the leases and the catalog entry. Safe to run
  // again after an interruption. Refused with Busy, deleting nothing, while a gateway's lease
  // on the volume is live, unless force.
  void Remove(const std::string& name, bool force, Progress progress, std::function<void(Status)> done);
  // Shrinking deletes the chunks past the new end and zeroes the tail of the last one, so a
  // later grow reads zeros there; it is refused like a remove while the volume is leased,
  // unless force. A grow is not: gateways see the new size on their next connection.
  void Resize(const std::string& name, uint64_t new_size, bool force, Progress progress,
              std::function<void(Status)> done);

 private:
  // The listed names, sorted; *legacy (if given) tells whether the catalog is a plain list.
  void ReadCatalog(std::function<void(Result<std::vector<std::string>>, bool legacy)> done);
  // Adds or removes a name with one merge of one map entry.
  void EditCatalog(std::string name, bool add, std::function<void(Status)> done);
  // The admin check that comes before anything is deleted: writes what (say "volume rm
  // NAME") to the object H("ringstore.volume-catalog", "last-admin-op"), an admin-only write
  // (node/access_policy.h), so a client without the admin role is refused before it removes
  // a chunk. Nothing reads it but people; it changes no volume.
  void Claim(const std::string& what, std::function<void(Status)> done);
  // Deletes chunks [from, to) with a bounded window in flight.
  void DeleteChunks(std::shared_ptr<VolumeMeta> meta, uint64_t from, uint64_t to, Progress progress,
                    std::function<void(Status)> done);
  Quorum ChunkQuorum(const VolumeMeta& m) const;
  Quorum Q() const { return FitToRing(q_, client_.table().ring_nodes()); }
  // Before a remove or a shrink deletes anything: writes meta->hold = what, then reads the
  // volume's leases (in that order: a gateway writes its lease, then reads the hold, so one of
  // the two sees the other), again every half second for up to lease_wait while one is live
  // (a gateway lets go a moment after its last client, once it has written back). A lease
  // still live then, unless force, clears the hold again and fails with Busy naming the
  // holders.
  void Fence(std::shared_ptr<VolumeMeta> meta, std::string what, bool force, std::function<void(Status)> done);
  void WriteMeta(const VolumeMeta& m, std::function<void(Status)> done);
  void AwaitLeases(std::shared_ptr<VolumeMeta> meta, bool force, Clock::Duration deadline,
                   std::function<void(Status)> done);

  ClusterClient& client_;
  Quorum q_;
  Clock& clock_;
  Clock::Duration lease_wait_ = kDefaultLeaseWait;
};

}  // namespace ringstore::block
