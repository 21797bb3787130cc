// RocksDbStore: the durable Store. Two column families: "default" maps an object id to the
// full record (header + value), "record_meta" to the header alone, so that last-writer-wins
// checks and STAT never read a value. Values of 256 KiB and more go to RocksDB blob files.
//
// Threads: one writer thread owns every write. It takes all queued Apply calls, resolves
// last-writer-wins against the stored headers (kept in a bounded cache, exact because no one
// else writes), and commits them as one WriteBatch with one WAL fsync (group commit). A TXN is
// therefore always inside one atomic WriteBatch. A write of the same version as the stored
// one rewrites it only if the stored bytes fail their checksum (repair).
// Get/Stat are first tried from the memtable and block cache on the caller's strand (no disk
// I/O: RocksDB's kBlockCacheTier); the rest goes to reader threads, which serve Get/Stat/Scan
// in batches (MultiGet). Completions are always posted to the executor (the node's strand).
// Thread-safety: the public methods are called from the owner's strand; internal queues are
// guarded by mu_.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <thread>
#include <vector>

#include "storage/store.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace ringstore {

struct RocksDbOptions {
  std::string path;
  Durability durability = Durability::kSync;
  size_t reader_threads = 2;
  size_t block_cache_bytes = 256u << 20;
  // Bounds: queued operations beyond these are refused with Busy.
  size_t max_queued_writes = 65536;
  size_t max_queued_reads = 65536;
  // One group commit carries at most this many bytes of values.
  size_t max_group_commit_bytes = 128u << 20;
  // Reads served by one MultiGet.
  size_t max_read_batch = 64;
  // Record headers the writer remembers, so that last-writer-wins checks skip a lookup.
  size_t max_cached_metas = 1u << 18;
};

class RocksDbStore final : public Store {
 public:
  static Result<std::unique_ptr<RocksDbStore>> Open(const RocksDbOptions& options, Executor executor);
  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  void Get(const ObjectId& id, std::function<void(Result<Record>)> done) override;
  void Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) override;
  void Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) override;
  void Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
            std::function<void(Result<std::vector<ScanEntry>>)> done) override;
  // Drains the queues, joins the threads and closes RocksDB. Blocks the caller until then.
  void Close(std::function<void(Status)> done) override;

  // Test hook: overwrites the stored bytes of id in the data column family (or, with
  // meta = true, its header copy in record_meta), bypassing every check, to simulate on-disk
  // corruption. Synchronous.
  Status RawPutForTest(const ObjectId& id, std::string_view bytes, bool meta = false);

 private:
  struct WriteTask {
    std::vector<WriteOp> ops;
    std::function<void(Status)> done;
  };
  // One queued read: exactly one of the three callbacks is set.
  struct ReadTask {
    ObjectId id;
    std::function<void(Result<Record>)> get;
    std::function<void(Result<RecordMeta>)> stat;
    std::function<void()> run;  // a scan, run as is
  };

  RocksDbStore(RocksDbOptions options, Executor executor);
  Status OpenDb();
  void WriterLoop();
  void ReaderLoop();
  void CommitGroup(std::vector<WriteTask>& group);
  // Writer thread only: the stored header of id (cache, then the record_meta family).
  Result<std::optional<RecordMeta>> StoredMeta(const ObjectId& id);
  bool StoredValueIntact(const ObjectId& id);
  void ServeReads(std::vector<ReadTask>& batch);
  bool EnqueueRead(ReadTask& task);
  // ShuttingDown once closed, Busy otherwise.
  Status Refusal();
  // Serves a read from memory if it can; false when it needs the disk.
  template <typename T>
  bool TryCached(rocksdb::ColumnFamilyHandle* cf, const ObjectId& id,
                 const std::function<void(Result<T>)>& done, Result<T> (*decode)(std::string_view));  // moves from task only when queued
  void Shutdown();

  const RocksDbOptions options_;
  Executor executor_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;

  std::mutex mu_;
  std::condition_variable write_cv_;  // guarded by mu_
  std::condition_variable read_cv_;   // guarded by mu_
  std::deque<WriteTask> writes_;      // guarded by mu_
  std::deque<ReadTask> reads_;        // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool closed_ = false;               // strand-only
  std::unordered_map<ObjectId, RecordMeta, ObjectIdHash> meta_cache_;  // writer thread only
  std::thread writer_;
  std::vector<std::thread> readers_;
};

}  // namespace ringstore
