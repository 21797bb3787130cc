#include "storage/memory_store.h"

#include <algorithm>

#include "dht/lww_map.h"

namespace ringstore {

Result<Record> MemoryStore::Read(const ObjectId& id) const {
  if (closed_) return Status::ShuttingDown("store closed");
  auto it = records_.find(id);
  if (it == records_.end()) return Status::NotFound();
  if (!it->second.Intact()) return Status::Corruption("record value checksum mismatch");
  return it->second;
}

void MemoryStore::Get(const ObjectId& id, std::function<void(Result<Record>)> done) {
  executor_([done = std::move(done), r = Read(id)]() mutable { done(std::move(r)); });
}

std::optional<Result<Record>> MemoryStore::GetIfCached(const ObjectId& id) {
  if (!cached_reads_) return std::nullopt;
  return Read(id);
}

void MemoryStore::Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) {
  Result<RecordMeta> r = Status::NotFound();
  if (closed_) {
    r = Status::ShuttingDown("store closed");
  } else if (auto it = records_.find(id); it != records_.end()) {
    r = it->second.meta;
  }
  executor_([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

void MemoryStore::Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) {
  Status s;
  if (closed_) {
    s = Status::ShuttingDown("store closed");
  } else {
    for (auto& op : ops) {
      if (op.bulk) ++bulk_writes_;
      auto it = records_.find(op.id);
      if (op.hint_n > 0 && !op.purge) KeepHint(op.id, op.hint_n, op.record.meta.ts);
      if (op.purge) {
        const RecordMeta& m = op.record.meta;
        if (it != records_.end() && !Supersedes(m, it->second.meta) && !Supersedes(it->second.meta, m)) {
          records_.erase(it);
        }
        continue;
      }
      if (IsMapRecord(op.record.meta) || (it != records_.end() && IsMapRecord(it->second.meta))) {
        // Map records merge entry by entry (dht/lww_map.h); a damaged stored one is replaced.
        const Record* stored = it == records_.end() || !it->second.Intact() ? nullptr : &it->second;
        Record& merged = records_[op.id] = MergeRecords(stored, op.record);
        if (merged.meta.tombstone()) NoteTombstone(op.id, merged.meta.ts);
        continue;
      }
      // As in RocksDbStore: a newer version wins; the same version again replaces the stored
      // one only if the stored bytes are damaged (a repair).
      const bool same = it != records_.end() && !Supersedes(op.record.meta, it->second.meta) &&
                        !Supersedes(it->second.meta, op.record.meta);
      if (it == records_.end() || Supersedes(op.record.meta, it->second.meta) ||
          (same && !it->second.Intact())) {
        if (op.record.meta.tombstone()) NoteTombstone(op.id, op.record.meta.ts);
        records_[op.id] = std::move(op.record);
      }
    }
  }
  executor_([done = std::move(done), s = std::move(s)]() mutable { done(std::move(s)); });
}

void MemoryStore::Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
                       std::function<void(Result<std::vector<ScanEntry>>)> done) {
  std::vector<ScanEntry> out;
  for (auto it = records_.lower_bound(begin); it != records_.end() && it->first < end; ++it) {
    if (out.size() >= limit) break;
    ScanEntry e{it->first, Record{it->second.meta, with_values ? it->second.value : std::string()}};
    if (with_values && !it->second.Intact()) {
      e.corrupt = true;
      e.record = Record{};
    }
    out.push_back(std::move(e));
  }
  Result<std::vector<ScanEntry>> r = closed_ ? Result<std::vector<ScanEntry>>(Status::ShuttingDown("store closed"))
                                             : Result<std::vector<ScanEntry>>(std::move(out));
  executor_([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

void MemoryStore::KeepHint(const ObjectId& id, uint32_t route_n, Timestamp ts) {
  StoredHint& h = hints_[id];
  h.id = id;
  h.route_n = std::max(h.route_n, route_n);
  h.ts = std::max(h.ts, ts);
}

void MemoryStore::Hints(const ObjectId& begin, size_t limit,
                        std::function<void(Result<std::vector<StoredHint>>)> done) {
  std::vector<StoredHint> out;
  for (auto it = hints_.lower_bound(begin); it != hints_.end() && out.size() < limit; ++it) out.push_back(it->second);
  Result<std::vector<StoredHint>> r = closed_ ? Result<std::vector<StoredHint>>(Status::ShuttingDown("store closed"))
                                              : Result<std::vector<StoredHint>>(std::move(out));
  executor_([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

void MemoryStore::ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) {
  Status s;
  if (closed_) {
    s = Status::ShuttingDown("store closed");
  } else {
    for (const StoredHint& h : hints) {
      auto it = hints_.find(h.id);
      if (it != hints_.end() && it->second.ts <= h.ts) hints_.erase(it);
    }
  }
  executor_([done = std::move(done), s = std::move(s)]() mutable { done(std::move(s)); });
}

void MemoryStore::Close(std::function<void(Status)> done) {
  closed_ = true;
  executor_([done = std::move(done)] { done(Status::Ok()); });
}

Record* MemoryStore::MutableRecordForTest(const ObjectId& id) {
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : &it->second;
}

void MemoryStore::NoteTombstone(const ObjectId& id, Timestamp ts) {
  Timestamp& t = tombstones_stored_[id];
  t = std::max(t, ts);
}

Timestamp MemoryStore::NewestTombstoneStored(const ObjectId& id) const {
  auto it = tombstones_stored_.find(id);
  return it == tombstones_stored_.end() ? 0 : it->second;
}

}  // namespace ringstore
