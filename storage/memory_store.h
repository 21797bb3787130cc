// MemoryStore: a Store kept in a std::map, for unit tests and the simulator.
// Same semantics as RocksDbStore (last writer wins, atomic Apply, ordered Scan); completions
// are posted to the executor, never run inline.
// Thread-safety: strand-confined, like every Store.
#pragma once

#include <map>

#include "storage/store.h"

namespace ringstore {

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(Executor executor) : executor_(std::move(executor)) {}

  void Get(const ObjectId& id, std::function<void(Result<Record>)> done) override;
  void Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) override;
  void Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) override;
  void Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
            std::function<void(Result<std::vector<ScanEntry>>)> done) override;
  void Hints(const ObjectId& begin, size_t limit, std::function<void(Result<std::vector<StoredHint>>)> done) override;
  void ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) override;
  void Close(std::function<void(Status)> done) override;

  std::optional<Result<Record>> GetIfCached(const ObjectId& id) override;
  // With cached reads on, GetIfCached answers every read (as a store whose data is all in
  // memory would); off by default, so callers' asynchronous path is what tests exercise.
  void set_cached_reads(bool on) { cached_reads_ = on; }

  size_t size() const { return records_.size(); }
  // Test hook: the stored record, to corrupt it in place.
  Record* MutableRecordForTest(const ObjectId& id);
  // Writes applied with WriteOp::bulk set (this store keeps them like any other).
  size_t bulk_writes() const { return bulk_writes_; }
  // The newest timestamp of a tombstone this store has ever stored for id (0: none), kept
  // after the tombstone is overwritten or purged: the simulator's evidence that a delete of
  // unknown outcome landed (sim/checker.h).
  Timestamp NewestTombstoneStored(const ObjectId& id) const;

 private:
  Result<Record> Read(const ObjectId& id) const;
  void NoteTombstone(const ObjectId& id, Timestamp ts);
  void KeepHint(const ObjectId& id, uint32_t route_n, Timestamp ts);
  Executor executor_;
  std::map<ObjectId, Record> records_;
  size_t bulk_writes_ = 0;
  std::map<ObjectId, StoredHint> hints_;
  std::map<ObjectId, Timestamp> tombstones_stored_;
  bool closed_ = false;
  bool cached_reads_ = false;
};

}  // namespace ringstore
