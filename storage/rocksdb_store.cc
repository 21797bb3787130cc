#include "storage/rocksdb_store.h"

#include "dht/lww_map.h"
#include "storage/rocksdb_keys.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <optional>
#include <unordered_map>

namespace ringstore {
using rocks::FromRocks;
using rocks::Key;
using rocks::ValueKey;

namespace {

// Corruption messages name the object.
Status Named(const ObjectId& id, const Status& s) {
  return s.IsCorruption() ? Status::Corruption("object " + id.Hex() + ": " + s.message()) : s;
}

rocksdb::ColumnFamilyOptions CfOptions(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  cf.OptimizeLevelStyleCompaction();
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.whole_key_filtering = true;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // A bloom filter over the memtable: a read of a key that is not there skips the skiplist.
  cf.memtable_whole_key_filtering = true;
  cf.memtable_prefix_bloom_size_ratio = 0.05;
  // Entries of kExternalValueBytes or more go to blob files: the value keys of the layout
  // before the value log (only read now), and the rare inline record within 32 bytes under
  // the limit (its header pushes it over). New large values go to the value log.
  cf.enable_blob_files = true;
  cf.min_blob_size = kExternalValueBytes;
  cf.enable_blob_garbage_collection = true;
  return cf;
}

}  // namespace

RocksDbStore::RocksDbStore(RocksDbOptions options, Executor executor)
    : options_(std::move(options)),
      executor_(std::move(executor)),
      rows_(std::make_shared<RowCache>(options_.row_cache_bytes, options_.row_cache_max_value_bytes)) {}

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(const RocksDbOptions& options,
                                                         Executor executor) {
  std::unique_ptr<RocksDbStore> store(new RocksDbStore(options, std::move(executor)));
  // RocksDB counts perf-context statistics per thread by default (kEnableCount): every key
  // comparison in a memtable walk then touches a thread-local of the shared library. Nothing
  // here reads them. The level is per thread: this covers the caller's (normally the strand's
  // thread), and the writer and reader threads set it themselves.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  if (Status s = store->OpenDb(); !s.ok()) return s;
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  if (options.durability == Durability::kSync) {
    store->syncer_ = std::thread([s = store.get()] { s->SyncerLoop(); });
  }
  for (size_t i = 0; i < std::max<size_t>(1, options.reader_threads); ++i) {
    store->readers_.emplace_back([s = store.get()] { s->ReaderLoop(); });
  }
  return store;
}

Status RocksDbStore::OpenDb() {
  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.IncreaseParallelism(2);
  db.max_background_jobs = 2;
  db.paranoid_checks = true;
  const auto cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  // Open every family the directory has (RocksDB insists); only "default" is used.
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db, options_.path, &names).ok() || names.empty()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, CfOptions(cache));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db, options_.path, cfs, &handles, &db_);
  if (!s.ok()) return Status::IOError("cannot open RocksDB at " + options_.path + ": " + s.ToString());
  for (auto* h : handles) {
    if (h->GetName() == rocksdb::kDefaultColumnFamilyName) {
      data_cf_ = h;
    } else {
      other_cfs_.push_back(h);
    }
  }
  auto vlog = ValueLog::Open(options_.path + "/vlog", options_.value_log_segment_bytes);
  if (!vlog.ok()) return vlog.status();
  vlog_ = std::move(*vlog);
  for (const auto& seg : vlog_->SealedSegments()) unexamined_.insert(seg.number);
  return Status::Ok();
}

RocksDbStore::~RocksDbStore() { Shutdown(); }

void RocksDbStore::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  write_cv_.notify_all();
  read_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    writer_done_ = true;  // no more groups will come: the syncer drains and stops
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  for (auto& t : readers_) {
    if (t.joinable()) t.join();
  }
  readers_.clear();
  if (db_ != nullptr) {
    db_->DestroyColumnFamilyHandle(data_cf_);
    for (auto* h : other_cfs_) db_->DestroyColumnFamilyHandle(h);
    rocksdb::Status s = db_->Close();
    (void)s;
    delete db_;
    db_ = nullptr;
  }
}

void RocksDbStore::Close(std::function<void(Status)> done) {
  closed_ = true;
  rows_->Clear();
  Shutdown();
  executor_([done = std::move(done)] { done(Status::Ok()); });
}

// ---- writes ---------------------------------------------------------------------------

void RocksDbStore::Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) {
  // The completion erases the written ids from the row cache on the strand (see the header).
  std::vector<ObjectId> ids;
  ids.reserve(ops.size());
  for (const WriteOp& op : ops) ids.push_back(op.id);
  done = [rows = rows_, ids = std::move(ids), done = std::move(done)](Status s) {
    for (const ObjectId& id : ids) rows->Erase(id);
    done(std::move(s));
  };
  Status refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || stopping_) {
      refused = Status::ShuttingDown("store closed");
    } else if (!wal_failed_.ok()) {
      refused = wal_failed_;
    } else if (writes_.size() >= options_.max_queued_writes) {
      refused = Status::Busy("write queue full");
    } else {
      writes_.push_back(WriteTask{std::move(ops), std::move(done)});
    }
  }
  if (!refused.ok()) {
    executor_([done = std::move(done), refused] { done(refused); });
    return;
  }
  write_cv_.notify_one();
}

void RocksDbStore::WriterLoop() {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);  // see Open
  std::vector<WriteTask> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      write_cv_.wait(lock, [&] { return stopping_ || !writes_.empty(); });
      if (writes_.empty()) return;  // stopping and drained
      size_t bytes = 0;
      while (!writes_.empty() && (group.empty() || bytes < options_.max_group_commit_bytes)) {
        for (const auto& op : writes_.front().ops) bytes += op.record.value.size();
        group.push_back(std::move(writes_.front()));
        writes_.pop_front();
      }
    }
    CommitGroup(group);
    group.clear();
    CollectGarbage();
  }
}

Result<RocksDbStore::Stored> RocksDbStore::StoredAt(const ObjectId& id) {
  Stored out;
  if (auto it = meta_cache_.find(id); it != meta_cache_.end()) {
    out.present = true;
    out.header = it->second;
    return out;
  }
  rocksdb::PinnableSlice raw;
  rocksdb::Status gs = db_->Get(rocksdb::ReadOptions(), data_cf_, Key(id), &raw);
  if (gs.IsNotFound()) return out;
  if (!gs.ok()) return FromRocks(gs);
  out.present = true;
  auto h = DecodeStoredHeader(std::string_view(raw.data(), raw.size()));
  if (h.ok()) {
    out.header = *h;
  } else {
    out.damaged = true;  // the version is unknown: any write wins and repairs it
  }
  return out;
}

bool RocksDbStore::StoredValueIntact(const ObjectId& id) { return ReadRecord(id).ok(); }

void RocksDbStore::CommitGroup(std::vector<WriteTask>& group) {
  // What each key holds: what is stored, then what this group already wrote.
  std::unordered_map<ObjectId, Stored, ObjectIdHash> current;
  // Map records this group wrote, whole: a later op on the same key merges with them.
  std::unordered_map<ObjectId, Record, ObjectIdHash> group_maps;
  // Reserved whole: a batch that grows by doubling copies its values again at each step.
  size_t reserve = 64;
  for (const auto& task : group) {
    for (const auto& op : task.ops) reserve += op.record.value.size() + kRecordHeaderBytes + 2 * ObjectId::kSize + 32;
  }
  rocksdb::WriteBatch batch(reserve);
  std::string header;
  Status status;
  bool logged = false;  // values went to the value log
  for (auto& task : group) {
    for (auto& op : task.ops) {
      auto it = current.find(op.id);
      if (it == current.end()) {
        auto stored = StoredAt(op.id);
        if (!stored.ok()) {
          status = stored.status();
          break;
        }
        it = current.emplace(op.id, *stored).first;
      }
      Stored& have = it->second;
      if (op.purge) {
        const RecordMeta& m = have.header.meta;
        const bool same = have.present && !have.damaged && !Supersedes(op.record.meta, m) && !Supersedes(m, op.record.meta);
        if (!same) continue;
        batch.Delete(data_cf_, Key(op.id));
        if (have.header.external) batch.Delete(data_cf_, ValueKey(op.id));
        NoteReplaced(have);
        group_maps.erase(op.id);
        have = Stored{};
        continue;
      }
      if (IsMapRecord(op.record.meta) || (have.present && !have.damaged && IsMapRecord(have.header.meta))) {
        // Map records merge entry by entry (dht/lww_map.h): merge with what is stored, or
        // with what this group already wrote; a stored record that fails its checksums counts
        // as absent, so the merge rewrites it.
        std::optional<Record> base;
        if (auto g = group_maps.find(op.id); g != group_maps.end()) {
          base = g->second;
        } else if (have.present && !have.damaged) {
          if (auto r = ReadRecord(op.id); r.ok()) base = std::move(*r);
        }
        Record merged = MergeRecords(base ? &*base : nullptr, op.record);
        if (base && !Supersedes(merged.meta, base->meta) && !Supersedes(base->meta, merged.meta)) continue;
        op.record = std::move(merged);
        group_maps[op.id] = op.record;
      } else if (have.present && !have.damaged) {
        const RecordMeta& m = have.header.meta;
        // The same version again is a resend or a repair: rewrite it only if the stored
        // bytes are damaged (the header alone cannot tell).
        const bool same = !Supersedes(op.record.meta, m) && !Supersedes(m, op.record.meta);
        if (!Supersedes(op.record.meta, m) && !(same && !StoredValueIntact(op.id))) continue;
      }
      const rocksdb::Slice key = Key(op.id);
      StoredHeader written;
      written.meta = op.record.meta;
      if (op.record.value.size() >= kExternalValueBytes) {
        auto p = vlog_->Append(op.id, op.record.value);
        if (!p.ok()) {
          status = p.status();
          break;
        }
        logged = true;
        written.in_log = true;
        written.log = *p;
        batch.Put(data_cf_, key, EncodeLogRecord(op.record.meta, *p));
      } else {
        header = EncodeRecordHeader(op.record.meta);
        const rocksdb::Slice parts[2] = {header, op.record.value};
        batch.Put(data_cf_, rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
      }
      // Drop a value an earlier layout kept under its own key (unknown when the header was
      // damaged).
      if (have.damaged || (have.present && have.header.external)) batch.Delete(data_cf_, ValueKey(op.id));
      NoteReplaced(have);
      have = Stored{true, false, written};
    }
    if (!status.ok()) break;
  }
  // With sync durability the values reach the disk before the records that point at them
  // can (a record must never point at bytes a crash lost).
  if (status.ok() && logged && options_.durability == Durability::kSync) status = vlog_->Sync();
  const bool wrote = status.ok() && batch.Count() > 0;
  if (wrote) {
    // Never fsync the WAL here: with sync durability the syncer thread does it (see the header).
    status = FromRocks(db_->Write(rocksdb::WriteOptions(), &batch));
  }
  if (status.ok()) {
    // Remember what is now stored; the writer is the only one who writes, so the cache is
    // exact. It is bounded by dropping it whole when full.
    if (meta_cache_.size() + current.size() > options_.max_cached_metas) meta_cache_.clear();
    for (auto& [id, s] : current) {
      if (s.present && !s.damaged) {
        meta_cache_[id] = s.header;
      } else {
        meta_cache_.erase(id);  // purged
      }
    }
  } else {
    meta_cache_.clear();  // unsure what reached the disk
  }
  auto callbacks = std::make_shared<std::vector<std::function<void(Status)>>>();
  callbacks->reserve(group.size());
  for (auto& task : group) callbacks->push_back(std::move(task.done));
  if (options_.durability == Durability::kSync) {
    // Even a group that wrote nothing (all resends) waits for the sync: what it acknowledges
    // may have been written by an earlier group that is not durable yet.
    {
      std::lock_guard<std::mutex> lock(mu_);
      syncs_.push_back(SyncTask{callbacks, status});
    }
    sync_cv_.notify_one();
    return;
  }
  executor_([callbacks, status] {
    for (auto& cb : *callbacks) cb(status);
  });
}

void RocksDbStore::SyncerLoop() {
  std::vector<SyncTask> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      sync_cv_.wait(lock, [&] { return writer_done_ || !syncs_.empty(); });
      if (syncs_.empty()) return;  // the writer is done and everything is acknowledged
      while (!syncs_.empty()) {
        batch.push_back(std::move(syncs_.front()));
        syncs_.pop_front();
      }
    }
    // One fsync covers every group written before it started. After a failure none is
    // trusted again (see wal_failed_).
    Status synced;
    {
      std::lock_guard<std::mutex> lock(mu_);
      synced = wal_failed_;
    }
    if (synced.ok()) {
      synced = FromRocks(db_->SyncWAL());
      if (!synced.ok()) {
        synced = Status::IOError("WAL fsync failed; this store accepts no more writes until it is reopened: " +
                                 synced.message());
        std::lock_guard<std::mutex> lock(mu_);
        wal_failed_ = synced;
      }
    }
    auto run = std::make_shared<std::vector<SyncTask>>(std::move(batch));
    batch.clear();
    executor_([run, synced] {
      for (auto& t : *run) {
        const Status s = !t.status.ok() ? t.status : synced;
        for (auto& cb : *t.callbacks) cb(s);
      }
    });
  }
}

// ---- reads ----------------------------------------------------------------------------

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
      auto v = vlog_->Read(h->log, h->meta.size);
      if (v.status().IsNotFound()) {
        db_->ReleaseSnapshot(snap);
        continue;
      }
      out = v.ok() ? AttachValue(h->meta, std::move(*v)) : Result<Record>(v.status());
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
          auto v = vlog_->Read(h->log, h->meta.size);
          // A segment gone since the snapshot: the value moved; read the record as it is now.
          r = v.status().IsNotFound() ? ReadRecord(*id)
              : v.ok()                ? AttachValue(h->meta, std::move(*v))
                                      : Result<Record>(v.status());
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
                         : h->external || h->in_log ? ReadRecord(t.id)
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

Status RocksDbStore::RawPutForTest(const ObjectId& id, std::string_view bytes, bool value_key) {
  if (value_key) {
    rocksdb::PinnableSlice raw;
    if (db_->Get(rocksdb::ReadOptions(), data_cf_, Key(id), &raw).ok()) {
      auto h = DecodeStoredHeader(std::string_view(raw.data(), raw.size()));
      if (h.ok() && h->in_log) return vlog_->WriteForTest(h->log, bytes);
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const std::string key = value_key ? ValueKey(id) : std::string(id.AsStringView());
  rows_->Erase(id);
  return FromRocks(db_->Put(wo, data_cf_, key, rocksdb::Slice(bytes.data(), bytes.size())));
}

}  // namespace ringstore
