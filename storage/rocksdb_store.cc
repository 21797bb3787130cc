#include "storage/rocksdb_store.h"

#include "dht/endian.h"
#include "dht/lww_map.h"
#include "storage/rocksdb_keys.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <pthread.h>

#include <algorithm>
#include <optional>
#include <random>
#include <unordered_map>

namespace ringstore {
using rocks::FromRocks;
using rocks::Key;
using rocks::ValueKey;

namespace {

const std::string kHintsFamily = "hints";
const std::string kCommitFamily = "commit";
const std::string kAppliedKey = "applied";

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
  // Entries of 256 KiB or more go to blob files: the value keys of the layout before the
  // value log (only read now; every one is that large). Inline records stay in the tables,
  // including those of 16-256 KiB written before the threshold came down to 16 KiB.
  cf.enable_blob_files = true;
  cf.min_blob_size = 256u << 10;
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
  // Named, so that top -H and perf tell them apart.
  store->writer_ = std::thread([s = store.get()] {
    pthread_setname_np(pthread_self(), "store-writer");
    s->WriterLoop();
  });
  if (options.durability == Durability::kSync) {
    store->syncer_ = std::thread([s = store.get()] {
      pthread_setname_np(pthread_self(), "store-syncer");
      s->SyncerLoop();
    });
  }
  for (size_t i = 0; i < std::max<size_t>(1, options.reader_threads); ++i) {
    store->readers_.emplace_back([s = store.get()] {
      pthread_setname_np(pthread_self(), "store-reader");
      s->ReaderLoop();
    });
  }
  return store;
}

Status RocksDbStore::OpenDb() {
  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.IncreaseParallelism(2);
  db.max_background_jobs = 2;
  db.paranoid_checks = true;
  // Batches skip RocksDB's WAL (the commit log has them), so the families must be flushed
  // together: then the lsn the tables hold (kAppliedKey) covers every family.
  db.atomic_flush = true;
  db.avoid_flush_during_shutdown = !options_.flush_on_close;
  const auto cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  // Open every family the directory has (RocksDB insists); "default" holds the records and
  // "hints" the hints (created here when missing: a store from before hints).
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db, options_.path, &names).ok() || names.empty()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  db.create_missing_column_families = true;
  if (std::find(names.begin(), names.end(), kHintsFamily) == names.end()) names.push_back(kHintsFamily);
  if (std::find(names.begin(), names.end(), kCommitFamily) == names.end()) names.push_back(kCommitFamily);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, CfOptions(cache));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db, options_.path, cfs, &handles, &db_);
  if (!s.ok()) return Status::IOError("cannot open RocksDB at " + options_.path + ": " + s.ToString());
  for (auto* h : handles) {
    if (h->GetName() == rocksdb::kDefaultColumnFamilyName) {
      data_cf_ = h;
    } else if (h->GetName() == kHintsFamily) {
      hints_cf_ = h;
    } else if (h->GetName() == kCommitFamily) {
      commit_cf_ = h;
    } else {
      other_cfs_.push_back(h);
    }
  }
  auto vlog = ValueLog::Open(options_.path + "/vlog", options_.value_log_segment_bytes);
  if (!vlog.ok()) return vlog.status();
  vlog_ = std::move(*vlog);
  for (const auto& seg : vlog_->SealedSegments()) unexamined_.insert(seg.number);
  return RecoverLog();
}

Result<uint64_t> RocksDbStore::PersistedLsn() {
  // kPersistedTier skips the memtables, which hold batches not yet flushed (they skip the WAL).
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kPersistedTier;
  std::string v;
  const rocksdb::Status s = db_->Get(ro, commit_cf_, kAppliedKey, &v);
  if (s.IsNotFound()) return uint64_t{0};  // nothing written since the commit log came
  if (!s.ok()) return FromRocks(s);
  if (v.size() != 8) return Status::Corruption("the commit log's applied lsn has " + std::to_string(v.size()) + " bytes");
  return GetLE(v.data(), 8);
}

Status RocksDbStore::RecoverLog() {
  // Free segments go once all take more than the flush threshold and two segments more: about
  // what the log needs between two flushes.
  // The segments' seeds must differ from one open to the next. (OsRandomSeed does this for
  // the node, but it lives in node/runtime, which storage does not link.)
  std::random_device rd;
  auto log = CommitLog::Open(options_.path + "/commitlog", options_.commit_log_segment_bytes,
                             options_.commit_log_flush_bytes + 2 * options_.commit_log_segment_bytes,
                             (static_cast<uint64_t>(rd()) << 32) ^ rd(), options_.durability == Durability::kSync);
  if (!log.ok()) return log.status();
  log_ = std::move(*log);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  // Any error here fails Open: a wrong start would replay old batches over newer ones, or drop
  // acknowledged ones.
  const auto persisted = PersistedLsn();
  if (!persisted.ok()) return persisted.status();
  auto recovered = log_->Recover(*persisted, [&](uint64_t, std::string_view payload) {
    rocksdb::WriteBatch batch{std::string(payload)};
    return FromRocks(db_->Write(wo, &batch));
  });
  if (!recovered.ok()) return recovered.status();
  log_recovery_ = *recovered;
  // From now on, each new segment first lets go of those the tables hold, and past
  // commit_log_flush_bytes of live segments asks for a flush, which lets go of more later.
  log_->set_before_new_segment([this] {
    if (const auto persisted = PersistedLsn(); persisted.ok()) log_->Release(*persisted);
    if (log_->live_bytes() < options_.commit_log_flush_bytes) return;
    rocksdb::FlushOptions fo;
    fo.wait = false;
    fo.allow_write_stall = true;  // never block the writer here
    (void)db_->Flush(fo, {data_cf_, hints_cf_, commit_cf_});
  });
  return Status::Ok();
}

Status RocksDbStore::WriteLogged(rocksdb::WriteBatch& batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!log_failed_.ok()) return log_failed_;
  }
  char lsn[8];
  PutLE(lsn, log_->next_lsn(), 8);
  Status s = FromRocks(batch.Put(commit_cf_, kAppliedKey, rocksdb::Slice(lsn, sizeof lsn)));
  if (s.ok()) {
    auto logged = log_->Append(std::string_view(batch.Data()));
    if (logged.ok()) {
      rocksdb::WriteOptions wo;
      wo.disableWAL = true;
      s = FromRocks(db_->Write(wo, &batch));
    } else {
      s = logged.status();
    }
  }
  if (!s.ok()) {
    s = Status::IOError("commit failed; this store accepts no more writes until it is reopened: " + s.message());
    std::lock_guard<std::mutex> lock(mu_);
    log_failed_ = s;
  }
  return s;
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
    db_->DestroyColumnFamilyHandle(hints_cf_);
    db_->DestroyColumnFamilyHandle(commit_cf_);
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
  EnqueueWrite(WriteTask{std::move(ops), std::move(done), {}});
}

void RocksDbStore::EnqueueWrite(WriteTask task) {
  Status refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || stopping_) {
      refused = Status::ShuttingDown("store closed");
    } else if (!log_failed_.ok()) {
      refused = log_failed_;
    } else if (writes_.size() >= options_.max_queued_writes) {
      refused = Status::Busy("write queue full");
    } else {
      writes_.push_back(std::move(task));
    }
  }
  if (!refused.ok()) {
    executor_([done = std::move(task.done), refused] { done(refused); });
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
    // Only when something could have changed: a group of small values alone leaves the log be.
    if (gc_due_ || !unexamined_.empty()) CollectGarbage();
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
  GroupHints hints;
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
    for (const StoredHint& h : task.forget) {
      if (status = DropHint(batch, hints, h); !status.ok()) break;
    }
    for (auto& op : task.ops) {
      if (!status.ok()) break;
      if (op.hint_n > 0 && !op.purge) {
        if (status = KeepHint(batch, hints, op.id, op.hint_n, op.record.meta.ts); !status.ok()) break;
      }
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
      if (op.record.value.size() >= (IsMapRecord(op.record.meta) ? kExternalMapBytes : kExternalValueBytes)) {
        auto p = vlog_->Append(op.id, op.record.value, op.bulk);
        if (!p.ok()) {
          status = p.status();
          break;
        }
        logged = gc_due_ = true;
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
  // The values reach the log file before any record points at them; with sync durability
  // they reach the disk first too (a record must never point at bytes a crash lost).
  if (status.ok() && logged) status = options_.durability == Durability::kSync ? vlog_->Sync() : vlog_->Flush();
  const bool wrote = status.ok() && batch.Count() > 0;
  if (wrote) {
    // Never fsync here: with sync durability the syncer thread does it (see the header).
    status = WriteLogged(batch);
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
    bool inline_sync = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!syncing_ && syncs_.empty() && writes_.empty() && log_failed_.ok()) {
        syncing_ = true;
        inline_sync = true;
      } else {
        syncs_.push_back(SyncTask{callbacks, status});
      }
    }
    if (!inline_sync) {
      sync_cv_.notify_one();
      return;
    }
    std::vector<SyncTask> run;
    run.push_back(SyncTask{callbacks, status});
    PostSynced(std::move(run), SyncLog());  // before syncing_ is cleared (see there)
    {
      std::lock_guard<std::mutex> lock(mu_);
      syncing_ = false;
    }
    sync_cv_.notify_one();
    return;
  }
  executor_([callbacks, status] {
    for (auto& cb : *callbacks) cb(status);
  });
}

Status RocksDbStore::SyncLog() {
  // One fsync covers every group written before it started. After a failure none is
  // trusted again (see log_failed_).
  Status synced;
  {
    std::lock_guard<std::mutex> lock(mu_);
    synced = log_failed_;
  }
  if (!synced.ok()) return synced;
  synced = log_->Sync();
  if (!synced.ok()) {
    synced = Status::IOError("commit log fsync failed; this store accepts no more writes until it is reopened: " +
                             synced.message());
    std::lock_guard<std::mutex> lock(mu_);
    log_failed_ = synced;
  }
  return synced;
}

void RocksDbStore::PostSynced(std::vector<SyncTask> run, Status synced) {
  // Called before syncing_ is cleared, so groups fsynced later are posted after these.
  auto shared = std::make_shared<std::vector<SyncTask>>(std::move(run));
  executor_([shared, synced] {
    for (auto& t : *shared) {
      const Status s = !t.status.ok() ? t.status : synced;
      for (auto& cb : *t.callbacks) cb(s);
    }
  });
}

void RocksDbStore::SyncerLoop() {
  std::vector<SyncTask> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      sync_cv_.wait(lock, [&] { return (writer_done_ || !syncs_.empty()) && !syncing_; });
      if (syncs_.empty()) return;  // the writer is done and everything is acknowledged
      while (!syncs_.empty()) {
        batch.push_back(std::move(syncs_.front()));
        syncs_.pop_front();
      }
      syncing_ = true;
    }
    PostSynced(std::move(batch), SyncLog());
    batch.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      syncing_ = false;
    }
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
  // Through RocksDB's WAL, after a flush: no batch of the commit log older than this write
  // is then left to replay after it.
  if (Status s = FromRocks(db_->Flush(rocksdb::FlushOptions(), {data_cf_, hints_cf_, commit_cf_})); !s.ok()) return s;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const std::string key = value_key ? ValueKey(id) : std::string(id.AsStringView());
  rows_->Erase(id);
  return FromRocks(db_->Put(wo, data_cf_, key, rocksdb::Slice(bytes.data(), bytes.size())));
}

}  // namespace ringstore
