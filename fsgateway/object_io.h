// ObjectIo: the object interface the filesystem core runs on, called from FUSE's worker
// threads. A batch of operations runs in parallel: Run returns when all are done; Start
// returns at once with a PendingIo to wait on later (and an optional callback that runs when
// the batch is done, before any waiter wakes).
//
// ClusterObjectIo is the real one: it owns an io_context thread with a ClusterClient, and
// retries an operation that failed for want of replicas (with backoff, re-reading the route
// table) until io_timeout has passed; then the failure is returned and the filesystem answers
// EIO, never wrong data. Writes return once W replicas hold them durably.
// MemoryObjectIo keeps the objects in a map (unit tests).
// Thread-safety: both are safe to call from any number of threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dht/cluster_client.h"
#include "dht/lww_map.h"
#include "dht/object_id.h"
#include "dht/object_key.h"
#include "dht/status.h"
#include "node/runtime/tls.h"

namespace ringstore::fs {

struct IoOp {
  enum Kind { kGet, kPut, kMerge, kDel } kind = kGet;
  ObjectKey id;       // named, so that a TLS node lets a read-write gateway write it
  std::string value;  // kPut
  LwwMap entries;     // kMerge
};

// Get results: the record (a tombstone is NotFound). Write results: Ok or the failure.
struct IoResult {
  Status status;
  std::string value;  // kGet
  bool is_map = false;
};

// errno for a failed object operation, as the filesystem answers it.
int ErrnoOf(const Status& s);
// The first failure of a batch as an errno, or 0.
int FirstErrno(const std::vector<IoResult>& results);
// ops cut into batches of at most per, in order.
std::vector<std::vector<IoOp>> SplitOps(std::vector<IoOp> ops, size_t per);

// A batch in flight. Wait blocks until every op is done and returns the results in order; any
// number of threads may wait, any number of times (the results live as long as this object).
// Take waits and moves the results out, for a batch with one waiter (Run).
class PendingIo {
 public:
  const std::vector<IoResult>& Wait();
  std::vector<IoResult> Take();
  bool done();
  // Threads blocked in Wait or Take now (for tests that must know a waiter is there).
  size_t waiters();
  // Called by the ObjectIo when the last op is done (after the callback).
  void Finish(std::vector<IoResult> results);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  size_t waiters_ = 0;
  std::vector<IoResult> results_;
};

class ObjectIo {
 public:
  using Done = std::function<void(const std::vector<IoResult>&)>;
  virtual ~ObjectIo() = default;
  // done (may be empty) runs on an I/O thread, or on the caller's for MemoryObjectIo; it must
  // not block on this ObjectIo.
  virtual std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done = {}) = 0;
  std::vector<IoResult> Run(std::vector<IoOp> ops, const Quorum& q) { return Start(std::move(ops), q)->Take(); }
  // Runs ops kMaxOpsInFlight at a time (a truncate of a large sparse file deletes thousands of
  // chunks); returns the first failure as an errno, or 0. Stops at the first failed slice.
  static constexpr size_t kMaxOpsInFlight = 256;
  int RunAll(std::vector<IoOp> ops, const Quorum& q);
  // The ring's node count (quorums are fitted to it).
  virtual size_t RingNodes() = 0;
  // The raw capacity and free bytes of the cluster's disks, each disk counted once.
  virtual Status Capacity(uint64_t* total_bytes, uint64_t* free_bytes) = 0;
  // Change notification (ClusterClient::Watch and Notify): handler gets what other clients
  // publish on channel, on an I/O thread, and must not block on this ObjectIo. Best effort.
  virtual void Watch(const ObjectId& channel, std::function<void(std::string)> handler) = 0;
  virtual void Notify(const ObjectId& channel, std::string payload) = 0;

  IoResult Get(const ObjectKey& id, const Quorum& q);
  Status Put(const ObjectKey& id, std::string value, const Quorum& q);
  Status Merge(const ObjectKey& id, LwwMap entries, const Quorum& q);
  Status Del(const ObjectKey& id, const Quorum& q);
};

class MemoryObjectIo final : public ObjectIo {
 public:
  std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done = {}) override;
  size_t RingNodes() override { return 3; }
  Status Capacity(uint64_t* total_bytes, uint64_t* free_bytes) override;
  // Delivers to every watcher of the channel (the publisher included), synchronously.
  void Watch(const ObjectId& channel, std::function<void(std::string)> handler) override;
  void Notify(const ObjectId& channel, std::string payload) override;
  size_t objects();
  // When set, every operation fails with this status (a cluster that is gone); with only,
  // just the operations of that kind do.
  void FailAll(Status s, std::optional<IoOp::Kind> only = std::nullopt);

 private:
  std::vector<IoResult> Apply(std::vector<IoOp> ops);
  std::mutex mu_;
  std::map<ObjectId, Record> objects_;
  Timestamp ts_ = 0;
  Status fail_;
  std::optional<IoOp::Kind> fail_only_;
  std::vector<std::pair<ObjectId, std::function<void(std::string)>>> watchers_;
};

struct ClusterIoOptions {
  std::string cluster_id = "ringstore";
  std::chrono::milliseconds io_timeout{30000};
  std::chrono::milliseconds request_timeout{10000};
  uint32_t connections_per_node = 2;
  std::shared_ptr<TlsContext> tls;  // --tls-dir; null: plaintext
};

class ClusterObjectIo final : public ObjectIo {
 public:
  ~ClusterObjectIo() override;
  // Connects through the first seed that answers (Unavailable if none does).
  static Result<std::unique_ptr<ClusterObjectIo>> Connect(const std::vector<std::string>& seeds, ClusterIoOptions options);

  std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done = {}) override;
  size_t RingNodes() override;
  Status Capacity(uint64_t* total_bytes, uint64_t* free_bytes) override;
  void Watch(const ObjectId& channel, std::function<void(std::string)> handler) override;
  void Notify(const ObjectId& channel, std::string payload) override;
  // Stops the io thread; later calls fail with ShuttingDown.
  void Stop();

 private:
  struct Impl;
  explicit ClusterObjectIo(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringstore::fs
