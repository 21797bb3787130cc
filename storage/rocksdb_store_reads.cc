// RocksDbStore's read path: Get, Stat and Scan, the strand's memory-only reads (row cache,
// memtable and block cache) and the reader threads (rocksdb_store.h says which read goes
// where; docs/storage-format.md §6).
#include <rocksdb/db.h>
#include <rocksdb/perf_level.h>

#include "storage/rocksdb_keys.h"
#include "storage/rocksdb_store.h"

namespace ringstore {
using rocks::FromRocks;
using rocks::Key;
using rocks::ValueKey;

namespace {

// Corruption messages name the object.
Status Named(const ObjectId& id, const Status& s) {
  return s.IsCorruption() ? Status::Corruption("object " + id.Hex() + ": " + s.message()) : s;
}

}  // namespace

std::optional<Result<Record>> RocksDbStore::LoggedValue(const StoredHeader& h) {
  auto v = vlog_->Read(h.log, h.meta.size);
  if (v.status().IsNotFound()) return std::nullopt;  // the segment is gone: the value moved
  return v.ok() ? AttachValue(h.meta, std::move(*v)) : Result<Record>(v.status());
}

Result<Record> RocksDbStore::LoggedRecord(const ObjectId& id, const StoredHeader& h) {
  auto r = LoggedValue(h);
  return r ? std::move(*r) : ReadRecord(id);  // read as it is now, at its new place
}

Result<Record> RocksDbStore::ReadRecord(const ObjectId& id) {
  // A value-log read finds its segment gone when garbage collection moved the value after the
  // header was read; the header read again points at the new place.
  for (int attempt = 0; attempt < 4; ++attempt) {
    rocksdb::ReadOptions ro;
    const rocksdb::Snapshot* snap = db_->GetSnapshot();
    ro.snapshot = snap;
    rocksdb::PinnableSlice raw;
    Result<Record> out = Status::NotFound();
    rocksdb::Status s = db_->Get(ro, data_cf_, Key(id), &raw);
    if (!s.ok()) {
      out = FromRocks(s);
    } else if (auto h = DecodeStoredHeader(std::string_view(raw.data(), raw.size())); !h.ok()) {
      out = h.status();
    } else if (h->in_log) {
      auto r = LoggedValue(*h);
      if (!r) {
        db_->ReleaseSnapshot(snap);
        continue;
      }
      out = std::move(*r);
    } else if (!h->external) {
      out = AttachValue(h->meta, std::string_view(raw.data(), raw.size()).substr(kRecordHeaderBytes));
    } else {
      rocksdb::PinnableSlice value;
      // The value's own checksum, from the header just read with RocksDB's checks on, is
      // verified in AttachValue: RocksDB's CRC32C over the blob (software code in Debian's
      // portable build, about 1 GB/s: a third of a node's CPU on 1 MiB GETs) adds nothing.
      // A damaged blob index that pointed elsewhere would fail that checksum too.
      ro.verify_checksums = false;
      s = db_->Get(ro, data_cf_, ValueKey(id), &value);
      out = s.IsNotFound() ? Result<Record>(Status::Corruption("external value missing"))
            : !s.ok()      ? Result<Record>(FromRocks(s))
                           : AttachValue(h->meta, std::string_view(value.data(), value.size()));
    }
    db_->ReleaseSnapshot(snap);
    return out;  // errors are not yet named: callers name them once
  }
  return Status::Corruption("value log segment missing");
}

bool RocksDbStore::EnqueueRead(ReadTask& task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || stopping_ || reads_.size() >= options_.max_queued_reads) return false;
    reads_.push_back(std::move(task));
  }
  read_cv_.notify_one();
  return true;
}

Status RocksDbStore::Refusal() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || stopping_) return Status::ShuttingDown("store closed");
  return Status::Busy("read queue full");
}

// Reads try the memtable and block cache first, on the caller's strand: kBlockCacheTier
// never touches the disk (RocksDB answers Incomplete instead), so hot reads skip two thread
// hand-offs. Anything that would need I/O, and every external value, goes to the pool.
rocksdb::Status RocksDbStore::CachedRead(const ObjectId& id, rocksdb::PinnableSlice* raw) {
  if (closed_) return rocksdb::Status::Incomplete();
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kBlockCacheTier;
  return db_->Get(ro, data_cf_, Key(id), raw);
}

std::optional<Result<Record>> RocksDbStore::CachedRecord(const ObjectId& id) {
  // Close empties the row cache, and CachedRead refuses to fill it afterwards.
  if (const Record* hit = rows_->Find(id)) return Result<Record>(*hit);
  rocksdb::PinnableSlice raw;
  rocksdb::Status s = CachedRead(id, &raw);
  if (s.IsIncomplete()) return std::nullopt;
  if (!s.ok()) return Result<Record>(FromRocks(s));
  const std::string_view bytes(raw.data(), raw.size());
  auto h = DecodeStoredHeader(bytes);
  if (h.ok() && h->in_log && h->meta.size < ValueLog::kCachedWriteBytes) {
    // A value small enough to be written through the page cache is copied from it here when
    // it is all there (no I/O).
    auto v = vlog_->ReadCached(h->log, h->meta.size);
    if (!v) return std::nullopt;
    Result<Record> r = AttachValue(h->meta, std::move(*v));
    return r.ok() ? std::move(r) : Result<Record>(Named(id, r.status()));
  }
  if (h.ok() && (h->external || h->in_log)) return std::nullopt;
  Result<Record> r = h.ok() ? AttachValue(h->meta, bytes.substr(kRecordHeaderBytes)) : Result<Record>(h.status());
  if (!r.ok()) {
    r = Named(id, r.status());
  } else {
    rows_->Insert(id, *r);  // checked by AttachValue
  }
  return r;
}

std::optional<Result<Record>> RocksDbStore::GetIfCached(const ObjectId& id) { return CachedRecord(id); }

bool RocksDbStore::TryCachedStat(const ObjectId& id, const std::function<void(Result<RecordMeta>)>& done) {
  if (const Record* hit = rows_->Find(id)) {
    executor_([done, meta = hit->meta] { done(meta); });
    return true;
  }
  rocksdb::PinnableSlice raw;
  rocksdb::Status s = CachedRead(id, &raw);
  if (s.IsIncomplete()) return false;
  Result<RecordMeta> r = s.ok() ? DecodeRecordHeader(std::string_view(raw.data(), raw.size()))
                                : Result<RecordMeta>(FromRocks(s));
  if (!r.ok()) r = Named(id, r.status());
  executor_([done, r = std::move(r)]() mutable { done(std::move(r)); });
  return true;
}

void RocksDbStore::Get(const ObjectId& id, std::function<void(Result<Record>)> done) {
  if (auto r = CachedRecord(id)) {
    executor_([done = std::move(done), r = std::move(*r)]() mutable { done(std::move(r)); });
    return;
  }
  ReadTask t{id, std::move(done), nullptr, nullptr};
  if (!EnqueueRead(t)) {
    executor_([done = std::move(t.get), s = Refusal()] { done(s); });
  }
}

void RocksDbStore::Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) {
  if (TryCachedStat(id, done)) return;
  ReadTask t{id, nullptr, std::move(done), nullptr};
  if (!EnqueueRead(t)) {
    executor_([done = std::move(t.stat), s = Refusal()] { done(s); });
  }
}

void RocksDbStore::Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
                        std::function<void(Result<std::vector<ScanEntry>>)> done) {
  auto run = [this, begin, end, limit, with_values, done]() {
    std::vector<ScanEntry> out;
    rocksdb::ReadOptions ro;
    const rocksdb::Snapshot* snap = db_->GetSnapshot();
    ro.snapshot = snap;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, data_cf_));
    Status status;
    for (it->Seek(Key(begin)); it->Valid() && out.size() < limit; it->Next()) {
      if (it->key().size() != ObjectId::kSize) continue;  // an external value's key
      auto id = ObjectId::FromBytes(std::string_view(it->key().data(), it->key().size()));
      if (!id.ok() || !(*id < end)) break;
      const std::string_view raw(it->value().data(), it->value().size());
      auto h = DecodeStoredHeader(raw);
      if (!h.ok()) {
        ScanEntry bad{*id, Record{}};
        bad.corrupt = true;
        out.push_back(std::move(bad));
        continue;
      }
      ScanEntry e{*id, Record{h->meta, {}}};
      if (with_values) {
        Result<Record> r = Status::NotFound();
        if (h->in_log) {
          // A segment gone since the snapshot: the value moved; read the record as it is now.
          r = LoggedRecord(*id, *h);
        } else if (!h->external) {
          r = AttachValue(h->meta, raw.substr(kRecordHeaderBytes));
        } else {
          rocksdb::PinnableSlice value;
          rocksdb::Status s = db_->Get(ro, data_cf_, ValueKey(*id), &value);
          r = s.ok()            ? AttachValue(h->meta, std::string_view(value.data(), value.size()))
              : s.IsNotFound()  ? Result<Record>(Status::Corruption("external value missing"))
                                : Result<Record>(FromRocks(s));
        }
        if (r.status().IsNotFound()) continue;  // purged since the snapshot (a log read's fallback)
        if (!r.ok() && !r.status().IsCorruption()) {
          status = Named(*id, r.status());
          break;
        }
        if (r.ok()) {
          e.record = std::move(*r);
        } else {
          e.corrupt = true;
          e.record = Record{};
        }
      }
      out.push_back(std::move(e));
    }
    if (status.ok() && !it->status().ok()) status = FromRocks(it->status());
    it.reset();
    db_->ReleaseSnapshot(snap);
    Result<std::vector<ScanEntry>> r = status.ok() ? Result<std::vector<ScanEntry>>(std::move(out))
                                                   : Result<std::vector<ScanEntry>>(status);
    executor_([done, r = std::move(r)]() mutable { done(std::move(r)); });
  };
  ReadTask t{ObjectId(), nullptr, nullptr, run};
  if (!EnqueueRead(t)) {
    executor_([done, s = Refusal()] { done(s); });
  }
}

void RocksDbStore::ReaderLoop() {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);  // see Open
  std::vector<ReadTask> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      read_cv_.wait(lock, [&] { return stopping_ || !reads_.empty(); });
      if (reads_.empty()) return;
      while (!reads_.empty() && batch.size() < options_.max_read_batch) {
        batch.push_back(std::move(reads_.front()));
        reads_.pop_front();
      }
    }
    ServeReads(batch);
    batch.clear();
  }
}

void RocksDbStore::ServeReads(std::vector<ReadTask>& batch) {
  // Point reads share one MultiGet; a record whose value lives apart is read again, whole,
  // under a snapshot. Scans run as they are.
  std::vector<rocksdb::Slice> keys;
  std::vector<size_t> index;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].run) continue;
    keys.push_back(Key(batch[i].id));
    index.push_back(i);
  }
  std::vector<std::string> values;
  std::vector<rocksdb::Status> statuses;
  if (!keys.empty()) {
    std::vector<rocksdb::ColumnFamilyHandle*> cfs(keys.size(), data_cf_);
    statuses = db_->MultiGet(rocksdb::ReadOptions(), cfs, keys, &values);
  }
  auto results = std::make_shared<std::vector<std::function<void()>>>();
  for (size_t k = 0; k < index.size(); ++k) {
    ReadTask& t = batch[index[k]];
    Result<StoredHeader> h = statuses[k].ok() ? DecodeStoredHeader(values[k])
                                              : Result<StoredHeader>(FromRocks(statuses[k]));
    if (t.get) {
      Result<Record> r = !h.ok()         ? Result<Record>(h.status())
                         : h->in_log     ? LoggedRecord(t.id, *h)
                         : h->external   ? ReadRecord(t.id)
                                         : AttachValue(h->meta, std::string_view(values[k]).substr(kRecordHeaderBytes));
      if (!r.ok()) r = Named(t.id, r.status());
      results->push_back([cb = std::move(t.get), r = std::move(r)]() mutable { cb(std::move(r)); });
    } else {
      Result<RecordMeta> r = h.ok() ? Result<RecordMeta>(h->meta) : Result<RecordMeta>(Named(t.id, h.status()));
      results->push_back([cb = std::move(t.stat), r = std::move(r)]() mutable { cb(std::move(r)); });
    }
  }
  if (!results->empty()) {
    executor_([results] {
      for (auto& fn : *results) fn();
    });
  }
  for (auto& t : batch) {
    if (t.run) t.run();
  }
}

}  // namespace ringstore
