// RowCache: a bounded least-recently-used map from object id to a small stored record, kept by
// RocksDbStore in front of RocksDB's memtable and block cache. A hit is one hash lookup, where
// RocksDB walks a skiplist and then index and data blocks (a few microseconds per read, most
// of a hot 1 KiB GET's cost on the node).
//
// What it holds: only records whose bytes were checked against their checksums when they were
// read from RocksDB (the caller's duty), with values of at most max_value_bytes. The budget
// counts values plus a fixed per-entry overhead.
// Coherence is the owner's duty: it erases an id when a write of that id completes
// (rocksdb_store.h says why that is enough).
// Thread-safety: none. Owned by the store and used on the owner's strand only.
#pragma once

#include <cstddef>
#include <list>
#include <unordered_map>

#include "dht/object_id.h"
#include "dht/record.h"

namespace ringstore {

class RowCache {
 public:
  // Per-entry bookkeeping counted against the budget besides the value.
  static constexpr size_t kEntryOverheadBytes = 128;

  RowCache(size_t capacity_bytes, size_t max_value_bytes)
      : capacity_bytes_(capacity_bytes), max_value_bytes_(max_value_bytes) {}

  // The cached record, marked most recently used; nullptr on a miss. The pointer is valid
  // until the next call that changes the cache.
  const Record* Find(const ObjectId& id);
  // Caches record under id (replacing any entry), evicting the least recently used ones to
  // stay within the budget. A value over max_value_bytes is not cached.
  void Insert(const ObjectId& id, const Record& record);
  void Erase(const ObjectId& id);
  void Clear();

  size_t bytes() const { return bytes_; }
  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    ObjectId id;
    Record record;
  };
  static size_t Cost(const Record& r) { return r.value.size() + kEntryOverheadBytes; }

  const size_t capacity_bytes_;
  const size_t max_value_bytes_;
  size_t bytes_ = 0;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<ObjectId, std::list<Entry>::iterator, ObjectIdHash> index_;
};

}  // namespace ringstore
