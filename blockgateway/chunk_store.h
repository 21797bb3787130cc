// ChunkStore: where a volume's chunks live, seen from the volume cache. Load returns a
// chunk's bytes (empty: the chunk is a hole and reads as zeros); Store writes a whole chunk
// (empty: make it a hole); Exists says whether a chunk is stored (not a hole) without reading
// its bytes. They complete only once the cluster has answered; Store only once W replicas
// hold the chunk durably.
//
// ClusterChunkStore is the real one, over a ClusterClient. It retries a request that failed
// for want of replicas (with backoff, re-reading the route table) until retry_budget has
// passed, then reports the failure: the gateway answers EIO, never wrong data.
// Thread-safety: strand-confined; the ClusterClient and Clock must outlive it.
#pragma once

#include <functional>
#include <string>

#include "blockgateway/volume.h"
#include "dht/clock.h"
#include "dht/cluster_client.h"

namespace ringstore::block {

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;
  virtual void Load(uint64_t index, std::function<void(Result<std::string>)> done) = 0;
  virtual void Store(uint64_t index, std::string data, std::function<void(Status)> done) = 0;
  virtual void Exists(uint64_t index, std::function<void(Result<bool>)> done) = 0;
};

struct RetryPolicy {
  Clock::Duration first_backoff = std::chrono::milliseconds(100);
  Clock::Duration max_backoff = std::chrono::seconds(2);
  // A request still failing after this long fails for good.
  Clock::Duration retry_budget = std::chrono::seconds(30);
};

class ClusterChunkStore final : public ChunkStore {
 public:
  ClusterChunkStore(VolumeMeta meta, ClusterClient& client, Clock& clock, RetryPolicy policy = {});

  void Load(uint64_t index, std::function<void(Result<std::string>)> done) override;
  void Store(uint64_t index, std::string data, std::function<void(Status)> done) override;
  // One read quorum's metadata, no retries: a block status answer may say "unknown".
  void Exists(uint64_t index, std::function<void(Result<bool>)> done) override;

  // The volume's quorum fitted to the ring as the client knows it now: a volume opened while
  // the ring was smaller gets its W back once the ring has grown.
  Quorum quorum() const;
  // Asked before each attempt of a Store (the first and every retry): a failure is handled
  // like the cluster's own (retried while retryable and the budget lasts). The gateway's
  // volume lease (blockgateway/volume_lease.h).
  void SetWriteGate(std::function<Status()> gate) { gate_ = std::move(gate); }

 private:
  struct Attempt;
  void Run(std::shared_ptr<Attempt> a);
  static bool Retryable(const Status& s);

  const VolumeMeta meta_;
  ClusterClient& client_;
  Clock& clock_;
  const RetryPolicy policy_;
  std::function<Status()> gate_;
};

}  // namespace ringstore::block
