// Volume leases: how a gateway says "I am writing this volume", so that `volume rm` and a
// shrinking `volume resize` do not delete chunks under it (docs/blockgateway.md B7).
//
// The leases of a volume are one map record (dht/lww_map.h) at
// H("ringstore.volume-lease", hex(uuid)): an entry per gateway, named by the gateway, whose
// payload is its LeaseTerms. A gateway writes its entry before it serves the volume, renews it
// every term/3 while it has connections to the volume or dirty chunks of it, and deletes it
// when it has neither. A lease is live, for the admin commands, until its expiry plus its
// drain (how long a write the gateway started before the expiry can still land) plus
// kLeaseSkewAllowanceMs (clocks of two machines differ).
//
// The ordering that makes this safe: an admin command writes the volume's hold mark
// (VolumeMeta::hold), then reads the leases; a gateway writes its lease, then reads the
// metadata. Both at quorum, so at least one of the two sees the other's write.
//
// VolumeLease is one gateway's lease on one volume. Chunk writes may start only while
// WriteGate() is OK.
// Ownership: borrows the ClusterClient, Clock and VolumeCatalog, which must outlive it.
// Thread-safety: strand-confined, like them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "blockgateway/volume.h"
#include "dht/lww_map.h"

namespace ringstore::block {

constexpr uint64_t kLeaseSkewAllowanceMs = 15'000;

struct LeaseTerms {
  uint64_t expires_ms = 0;  // wall time of the gateway that wrote it
  uint64_t drain_ms = 0;    // a write started before expires_ms ends within this
};

struct LeaseHolder {
  std::string holder;  // the entry's name: the gateway's host, NBD address and process id
  LeaseTerms terms;
  bool readable = true;  // false: a payload this release cannot decode, taken as live
};

ObjectKey VolumeLeaseId(std::string_view uuid);
std::string EncodeLeaseTerms(const LeaseTerms& t);
Result<LeaseTerms> DecodeLeaseTerms(std::string_view bytes);
// Until when (wall ms) the admin commands count a lease as live: expiry, drain, skew.
uint64_t LiveUntil(const LeaseTerms& t);
// The entries of leases that are live at wall time now_ms, by the rule above.
std::vector<LeaseHolder> LiveHolders(const LwwMap& leases, uint64_t now_ms);
// "gateway G (held until 2026-11-24T12:00:03Z unless renewed)" for each, for an error
// message: the time is when the commands stop counting the lease.
std::string DescribeHolders(const std::vector<LeaseHolder>& holders);
// The lease map of a volume; an empty map if there is none.
void ReadLeases(ClusterClient& client, const VolumeMeta& meta, Quorum q, std::function<void(Result<LwwMap>)> done);

struct LeaseOptions {
  std::string holder;  // this gateway process's name (NbdServer: host/address/random id)
  Clock::Duration term = std::chrono::seconds(30);
  Clock::Duration drain = std::chrono::seconds(40);
  Quorum quorum;  // for the lease object, as asked; fitted to the ring at each request
};

class VolumeLease {
 public:
  VolumeLease(ClusterClient& client, Clock& clock, VolumeCatalog& catalog, VolumeMeta meta, LeaseOptions options);
  ~VolumeLease();
  VolumeLease(const VolumeLease&) = delete;
  VolumeLease& operator=(const VolumeLease&) = delete;

  // Writes this gateway's entry, then reads the volume's metadata: OK if the volume is still
  // the one opened (same uuid, size, generation) and has no hold mark; then renewals start.
  // Otherwise the entry is deleted again and the answer is Busy (a hold), NotFound (removed)
  // or Refused (resized, or removed and created again). Call once.
  void Acquire(std::function<void(Status)> done);
  // Whether a chunk write may start now: OK, Unavailable while the lease has lapsed (renewals
  // failing; they go on), or IOError once the volume was found changed under a lapsed lease.
  Status WriteGate() const;
  // The volume was found removed, created again or shrunk (a forced command, or while the
  // lease had lapsed): nothing of it may be served any more.
  bool lost() const { return lost_; }
  // Stops renewing and deletes the entry.
  void Release(std::function<void(Status)> done);
  // Called at each renewal, before it goes out: the owner may Release the lease (later, not
  // from inside the call) if it no longer needs it. Each renewal also reads the metadata: a
  // volume found removed, created again or shrunk (a forced command), or resized at all while
  // the lease had lapsed, twice in a row, is lost for good.
  std::function<void()> on_renewal;

 private:
  void WriteEntry(bool deleted, std::function<void(Status)> done);
  // The volume's metadata, through the catalog; done is not called once this is destroyed.
  void ReadMeta(std::function<void(Result<VolumeMeta>)> done);
  void Schedule(Clock::Duration delay);
  void Renew();
  Quorum quorum() const;

  ClusterClient& client_;
  Clock& clock_;
  VolumeCatalog& catalog_;
  const VolumeMeta meta_;
  const LeaseOptions options_;
  Clock::Duration valid_until_{};  // monotonic; writes may start before it
  uint64_t generation_ = meta_.generation;  // of the metadata as last seen
  int suspect_ = 0;                          // renewals in a row that found the volume changed
  bool lost_ = false;
  bool released_ = false;
  Clock::TimerId timer_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringstore::block
