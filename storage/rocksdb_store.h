// RocksDbStore: the durable Store, in one RocksDB column family. A record lives under its
// 32-byte object id as header + value, so a write is one memtable insert and last-writer-wins
// checks and STAT read one small entry. A value of kExternalValueBytes or more lives apart, in
// the value log (ValueLog, DIR/db/vlog/), and the entry under the id holds the header and the
// value's place; reads of it go to the reader pool, except that the strand copies one under
// 64 KiB that the page cache holds whole (ValueLog::ReadCached). (Large values written before the value
// log live under the id followed by one byte 0x01, in RocksDB's blob files; they are still
// read, and replaced by the next write of their id.)
//
// Threads: one writer thread owns every write. It takes all queued Apply calls, resolves
// last-writer-wins against the stored headers (kept in a bounded cache, exact because no one
// else writes), and commits them as one WriteBatch (group commit). A TXN is therefore always
// inside one atomic WriteBatch. Each batch is appended to the store's own commit log
// (CommitLog, in place of RocksDB's WAL, which is off) and then written to RocksDB; Open
// replays the batches that RocksDB's tables do not hold yet. With sync durability the writer
// does not wait for the log: it hands the group to a syncer thread, which fsyncs the log once
// for every group waiting and only then acknowledges them, in order, while the writer goes on
// with the next group.
// Only when nothing else is queued (no write, no group awaiting its fsync, no fsync under
// way) does the writer fsync its group itself: a lone write then skips the handoff to the
// syncer, and there is nothing for the writer to go on with meanwhile.
// (It does wait for the value log: a group's large values are fdatasynced before its
// WriteBatch is written, so no record that reaches the disk points at lost bytes.)
// (A write is visible to reads on this node a moment before it is durable; it is never
// acknowledged before.) A write of the same version as the stored
// one rewrites it only if the stored bytes fail their checksum (repair).
// Hints (WriteOp::hint_n) live in their own column family, "hints", under the object id;
// the writer thread writes them in the group's WriteBatch, and ForgetHints is queued with
// the writes, so both keep Apply's order and atomicity.
// Get/Stat are first tried from the row cache (RowCache: small records, checked when they
// entered it), then from the memtable and block cache on the caller's strand (no disk
// I/O: RocksDB's kBlockCacheTier); the rest goes to reader threads, which serve Get/Stat/Scan
// in batches (MultiGet). Completions are always posted to the executor (the node's strand).
// The row cache is filled only by those strand reads, and a write erases its ids on the
// strand when it completes, before its callback runs. So an entry is never older than the
// last write acknowledged: a fill that read RocksDB before a write's commit is erased by that
// write's completion, which runs after the commit; a fill after the completion reads the
// committed record. (Reader-thread results never fill it: they may have read before a commit
// whose completion has already run.)
// Thread-safety: the public methods are called from the owner's strand; internal queues are
// guarded by mu_.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <string>
#include <thread>
#include <vector>

#include "storage/commit_log.h"
#include "storage/record_format.h"
#include "storage/row_cache.h"
#include "storage/store.h"
#include "storage/value_log.h"

namespace rocksdb {
class DB;
class PinnableSlice;
class Status;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace ringstore {

// Values this large or larger are stored apart from their header, in the value log
// (docs/storage-format.md §2a says why 16 KiB).
constexpr size_t kExternalValueBytes = 16u << 10;
// Map records (dht/lww_map.h) go there only from this size: each write of one is merged with
// the stored record and rewrites it whole, so a directory bucket of a few hundred entries is a
// hot, often rewritten value, which the memtable absorbs better than the log.
constexpr size_t kExternalMapBytes = 256u << 10;

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
  // The row cache (RowCache): its budget, and the largest value it keeps. 0 turns it off.
  size_t row_cache_bytes = 64u << 20;
  size_t row_cache_max_value_bytes = 16u << 10;
  // Value log segments are sealed at about this size (tests make it small).
  uint64_t value_log_segment_bytes = ValueLog::kDefaultSegmentBytes;
  // Live values are moved out of a segment only while dead bytes are more than this share of
  // the sealed segments (so the log stays under about 1 / (1 - ratio) of the live bytes,
  // besides the active segment); segments that are all dead always go.
  double value_log_garbage_ratio = 0.5;
  // The commit log (CommitLog, DIR/db/commitlog/): the size of its segments, and the live
  // size past which the writer asks RocksDB to flush its memtables so that segments can be
  // reused (tests make both small).
  uint64_t commit_log_segment_bytes = CommitLog::kDefaultSegmentBytes;
  uint64_t commit_log_flush_bytes = 512u << 20;
  // Tests: false closes RocksDB without flushing its memtables, as a crash would leave it,
  // so that the next Open must replay the commit log.
  bool flush_on_close = true;
};

class RocksDbStore final : public Store {
 public:
  static Result<std::unique_ptr<RocksDbStore>> Open(const RocksDbOptions& options, Executor executor);
  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  void Get(const ObjectId& id, std::function<void(Result<Record>)> done) override;
  std::optional<Result<Record>> GetIfCached(const ObjectId& id) override;
  void Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) override;
  void Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) override;
  void Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
            std::function<void(Result<std::vector<ScanEntry>>)> done) override;
  void Hints(const ObjectId& begin, size_t limit, std::function<void(Result<std::vector<StoredHint>>)> done) override;
  void ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) override;
  // Drains the queues, joins the threads and closes RocksDB. Blocks the caller until then.
  void Close(std::function<void(Status)> done) override;

  // What Open replayed from the commit log (for the node's log).
  const CommitLog::Recovered& log_recovery() const { return log_recovery_; }

  // Test hook: overwrites the stored bytes of id (or, with
  // value_key = true, its external value), bypassing every check, to simulate on-disk
  // corruption. Synchronous.
  Status RawPutForTest(const ObjectId& id, std::string_view bytes, bool value_key = false);

 private:
  struct WriteTask {
    std::vector<WriteOp> ops;
    std::function<void(Status)> done;
    std::vector<StoredHint> forget;  // ForgetHints
  };
  // Queues a write task, or completes it at once with the reason it is refused.
  void EnqueueWrite(WriteTask task);
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
  void SyncerLoop();
  void ReaderLoop();
  void CommitGroup(std::vector<WriteTask>& group);
  // Hints (storage/rocksdb_store_hints.cc), writer thread only. A group's view of the hints it
  // touches: what is stored, then what the group wrote (nullopt: none).
  using GroupHints = std::unordered_map<ObjectId, std::optional<StoredHint>, ObjectIdHash>;
  Result<std::optional<StoredHint>*> HintAt(GroupHints& now, const ObjectId& id);
  Status KeepHint(rocksdb::WriteBatch& batch, GroupHints& now, const ObjectId& id, uint32_t route_n, Timestamp ts);
  Status DropHint(rocksdb::WriteBatch& batch, GroupHints& now, const StoredHint& h);
  // Writer thread only: what is stored under id (cache first).
  struct Stored {
    bool present = false;
    bool damaged = false;  // present, but the header fails its checksum
    StoredHeader header;
  };
  Result<Stored> StoredAt(const ObjectId& id);
  // Value-log garbage collection (storage/value_log_gc.cc), writer thread only. NoteReplaced
  // counts the log entry of a record that a write or purge replaces as dead. CollectGarbage
  // runs after each group commit: it examines one segment of an earlier run, whose dead bytes
  // are unknown, then deletes one sealed segment that is all dead or, while the dead bytes are
  // over value_log_garbage_ratio of the sealed segments, moves the live values out of the
  // most-dead one and deletes it.
  void NoteReplaced(const Stored& old);
  void CollectGarbage();
  void ExamineSegment(uint64_t segment, uint64_t bytes);
  Status RelocateSegment(uint64_t segment);
  // Whether id's record points at p (then *header is its header), or the read's error.
  Result<bool> LiveAt(const ObjectId& id, ValuePointer p, StoredHeader* header);
  bool Collectable(uint64_t segment, const ValueLog::Walk& walk) const;
  bool StoredValueIntact(const ObjectId& id);
  // A whole record read under one snapshot, its external value included (reader threads, and
  // the writer's same-version check). Errors are returned unnamed.
  Result<Record> ReadRecord(const ObjectId& id);
  // A log record's value from the value log; nullopt when its segment is gone (garbage
  // collection moved the value since h was read). LoggedRecord then reads the record again.
  std::optional<Result<Record>> LoggedValue(const StoredHeader& h);
  Result<Record> LoggedRecord(const ObjectId& id, const StoredHeader& h);
  // A read from the memtable and block cache only: Incomplete when it would need the disk.
  rocksdb::Status CachedRead(const ObjectId& id, rocksdb::PinnableSlice* raw);
  // The record from memory; nullopt when it needs the disk or lives apart (external).
  std::optional<Result<Record>> CachedRecord(const ObjectId& id);
  bool TryCachedStat(const ObjectId& id, const std::function<void(Result<RecordMeta>)>& done);
  void ServeReads(std::vector<ReadTask>& batch);
  bool EnqueueRead(ReadTask& task);
  // ShuttingDown once closed, Busy otherwise.
  Status Refusal();  // moves from task only when queued
  void Shutdown();

  const RocksDbOptions options_;
  Executor executor_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* hints_cf_ = nullptr;
  // One key, kAppliedKey: the lsn of the last batch written. Every batch sets it, so what the
  // tables hold of it tells where a replay of the commit log starts.
  rocksdb::ColumnFamilyHandle* commit_cf_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> other_cfs_;  // families this version does not use

  std::mutex mu_;
  std::condition_variable write_cv_;  // guarded by mu_
  std::condition_variable read_cv_;   // guarded by mu_
  std::deque<WriteTask> writes_;      // guarded by mu_
  std::deque<ReadTask> reads_;        // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool closed_ = false;               // strand-only
  // Strand-only. Shared with the write callbacks that erase from it, which may run after the
  // store is gone.
  std::shared_ptr<RowCache> rows_;
  std::unordered_map<ObjectId, StoredHeader, ObjectIdHash> meta_cache_;  // writer thread only
  // Values of kExternalValueBytes or more. The pointer set is written by the writer thread;
  // reader threads read through it (ValueLog::Read is thread-safe).
  std::unique_ptr<ValueLog> vlog_;
  std::map<uint64_t, uint64_t> dead_bytes_;  // writer only: per sealed or active segment
  std::set<uint64_t> unexamined_;            // writer only: segments of an earlier run
  std::set<uint64_t> kept_;                  // writer only: damaged segments, never collected
  bool gc_due_ = false;                      // writer only: the log changed since the last look
  // Every batch goes to it before RocksDB (whose WAL is off). Append is the writer's; Sync
  // is the syncer's and the writer's.
  std::unique_ptr<CommitLog> log_;
  CommitLog::Recovered log_recovery_;  // set by Open
  // Writer thread: logs the batch, then writes it to RocksDB. A failure of either poisons
  // the store (log_failed_): the log and the tables may no longer agree.
  Status WriteLogged(rocksdb::WriteBatch& batch);
  // The lsn up to which RocksDB's tables (not its memtables) hold the batches.
  Result<uint64_t> PersistedLsn();
  // Replays what the commit log holds past PersistedLsn (Open).
  Status RecoverLog();
  // Sync durability: groups written but not yet fsynced, acknowledged by the syncer thread.
  struct SyncTask {
    std::shared_ptr<std::vector<std::function<void(Status)>>> callbacks;
    Status status;  // the group's own outcome
  };
  std::condition_variable sync_cv_;  // guarded by mu_
  std::deque<SyncTask> syncs_;       // guarded by mu_
  bool writer_done_ = false;         // guarded by mu_
  bool syncing_ = false;             // guarded by mu_: a log fsync is under way (one at a time)
  // A failed log write or fsync poisons the store until it is reopened: the unsynced records
  // are in memory and would let a later resend be acknowledged without ever reaching the disk.
  Status log_failed_;                // guarded by mu_
  // One fsync of the commit log; a failure sets log_failed_.
  Status SyncLog();
  // Posts the completions of groups covered by one fsync, in order, each with its own error
  // or else synced. The caller still holds syncing_.
  void PostSynced(std::vector<SyncTask> run, Status synced);
  std::thread syncer_;
  std::thread writer_;
  std::vector<std::thread> readers_;
};

}  // namespace ringstore
