// Store: the asynchronous storage interface the node core writes and reads records through.
// Implementations: RocksDbStore (worker threads, real disk), MemoryStore (tests, sim),
// FaultInjectingStore (a wrapper that injects errors and corruption).
// Every callback runs on the Executor given to the store, which is the owner's strand;
// a callback never runs inside the call that queued it.
// Thread-safety: the methods are called from the owner's strand only.
#pragma once

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "dht/object_id.h"
#include "dht/record.h"
#include "dht/status.h"

namespace ringstore {

// Posts a task to the owner's strand.
using Executor = std::function<void(std::function<void()>)>;

enum class Durability {
  kSync,   // acknowledged after the write-ahead log is fsynced (default)
  kAsync,  // acknowledged after the write reaches the OS; a machine crash may lose it
};

struct WriteOp {
  ObjectId id;
  Record record;  // a value or a tombstone, with its timestamp and checksum filled in
  // Purge instead of write: remove the stored record of id if it is exactly record.meta's
  // version (timestamp, checksum, flags), and do nothing otherwise. Local only: a node drops
  // its copy of a key it no longer holds a replica of, once the replicas have it
  // (node/anti_entropy.h). A newer write that lands first is therefore never removed.
  bool purge = false;
  // A fallback write (node/hinted_handoff.h): with hint_n > 0 the store also keeps a hint for
  // id, in the same atomic write, so that a crash never keeps the record and loses the hint.
  // The hint is kept even if this version loses to the stored one (the handoff sends the
  // stored record, the newest). Ignored on a purge.
  uint32_t hint_n = 0;
  // Repair traffic (a record a joining node pulls, say) that no one is about to read: a store
  // may write it around its caches (RocksDbStore: the value log's O_DIRECT).
  bool bulk = false;
};

// A kept hint: a fallback write of id, to be handed to its route_n replicas. Several fallback
// writes of one id make one hint with the largest N and the newest timestamp.
struct StoredHint {
  ObjectId id;
  uint32_t route_n = 0;
  Timestamp ts = 0;
};

struct ScanEntry {
  ObjectId id;
  Record record;  // value left empty unless the scan asked for values
  // The stored header fails its checksum: record.meta is unknown (zero). A scan reports such
  // an entry and goes on, so that one damaged record does not hide the rest; with values, a
  // value that fails its checksum is reported the same way.
  bool corrupt = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // The stored record, tombstones included. NotFound if absent; Corruption if it fails its
  // checksums (corrupt bytes are never returned).
  virtual void Get(const ObjectId& id, std::function<void(Result<Record>)> done) = 0;
  // The record at once, when it can be read without touching the disk (memtable, cache);
  // nullopt otherwise, and then the caller uses Get. Never blocks on I/O. The hot-read path.
  virtual std::optional<Result<Record>> GetIfCached(const ObjectId& id) { return std::nullopt; }
  // Metadata only.
  virtual void Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) = 0;
  // Applies ops atomically. Each op takes effect only if its record supersedes the stored one
  // (last writer wins, see Supersedes). Re-applying the same version is a no-op, except that
  // it rewrites a stored record whose bytes fail their checksum: that is how a repair works.
  // With no ops it writes nothing and completes once every write applied before it is as
  // durable as the store's durability makes writes (a barrier: a write can be visible to
  // reads a moment before that).
  virtual void Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) = 0;
  // Up to limit records with begin <= id < end, in id order (corrupt ones flagged, see
  // ScanEntry).
  virtual void Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
                    std::function<void(Result<std::vector<ScanEntry>>)> done) = 0;
  // Up to limit kept hints with id >= begin, in id order.
  virtual void Hints(const ObjectId& begin, size_t limit, std::function<void(Result<std::vector<StoredHint>>)> done) = 0;
  // Drops each kept hint of these ids whose timestamp is at most the one given (the version
  // handed off): the hint of a newer fallback write stays. Ordered with Apply: a hint kept by
  // an Apply called earlier is seen, one kept by an Apply called later is not touched.
  virtual void ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) = 0;
  // Finishes the queued work, then calls done. Later calls fail with ShuttingDown.
  virtual void Close(std::function<void(Status)> done) = 0;
};

}  // namespace ringstore
