#include "storage/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <optional>
#include <unordered_map>

#include "storage/record_format.h"

namespace ringstore {
namespace {

constexpr const char* kMetaCf = "record_meta";
constexpr size_t kMinBlobBytes = 256u << 10;

rocksdb::Slice Key(const ObjectId& id) {
  return rocksdb::Slice(reinterpret_cast<const char*>(id.bytes().data()), ObjectId::kSize);
}

Status FromRocks(const rocksdb::Status& s) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound();
  if (s.IsCorruption()) return Status::Corruption("rocksdb: " + s.ToString());
  return Status::IOError("rocksdb: " + s.ToString());
}

rocksdb::ColumnFamilyOptions CfOptions(const std::shared_ptr<rocksdb::Cache>& cache, bool blobs) {
  rocksdb::ColumnFamilyOptions cf;
  cf.OptimizeLevelStyleCompaction();
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;  // one budget shared by both column families
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.whole_key_filtering = true;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // A bloom filter over the memtable: a read of a key that is not there skips the skiplist.
  cf.memtable_whole_key_filtering = true;
  cf.memtable_prefix_bloom_size_ratio = 0.05;
  if (blobs) {
    cf.enable_blob_files = true;
    cf.min_blob_size = kMinBlobBytes;
    cf.enable_blob_garbage_collection = true;
  }
  return cf;
}

}  // namespace

RocksDbStore::RocksDbStore(RocksDbOptions options, Executor executor)
    : options_(std::move(options)), executor_(std::move(executor)) {}

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(const RocksDbOptions& options,
                                                         Executor executor) {
  std::unique_ptr<RocksDbStore> store(new RocksDbStore(options, std::move(executor)));
  if (Status s = store->OpenDb(); !s.ok()) return s;
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  for (size_t i = 0; i < std::max<size_t>(1, options.reader_threads); ++i) {
    store->readers_.emplace_back([s = store.get()] { s->ReaderLoop(); });
  }
  return store;
}

Status RocksDbStore::OpenDb() {
  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.IncreaseParallelism(2);
  db.max_background_jobs = 2;
  db.paranoid_checks = true;
  auto cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, CfOptions(cache, /*blobs=*/true)},
      {kMetaCf, CfOptions(cache, /*blobs=*/false)},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db, options_.path, cfs, &handles, &db_);
  if (!s.ok()) return Status::IOError("cannot open RocksDB at " + options_.path + ": " + s.ToString());
  data_cf_ = handles[0];
  meta_cf_ = handles[1];
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
  for (auto& t : readers_) {
    if (t.joinable()) t.join();
  }
  readers_.clear();
  if (db_ != nullptr) {
    db_->DestroyColumnFamilyHandle(data_cf_);
    db_->DestroyColumnFamilyHandle(meta_cf_);
    rocksdb::Status s = db_->Close();
    (void)s;
    delete db_;
    db_ = nullptr;
  }
}

void RocksDbStore::Close(std::function<void(Status)> done) {
  closed_ = true;
  Shutdown();
  executor_([done = std::move(done)] { done(Status::Ok()); });
}

// ---- writes ---------------------------------------------------------------------------

void RocksDbStore::Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) {
  Status refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || stopping_) {
      refused = Status::ShuttingDown("store closed");
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
  }
}

Result<std::optional<RecordMeta>> RocksDbStore::StoredMeta(const ObjectId& id) {
  if (auto it = meta_cache_.find(id); it != meta_cache_.end()) return std::optional<RecordMeta>(it->second);
  std::string raw;
  rocksdb::Status gs = db_->Get(rocksdb::ReadOptions(), meta_cf_, Key(id), &raw);
  if (gs.IsNotFound()) return std::optional<RecordMeta>();
  if (!gs.ok()) return FromRocks(gs);
  auto m = DecodeRecordHeader(raw);
  if (m.ok()) return std::optional<RecordMeta>(*m);
  // The header copy is damaged: trust the data record's own header if that one is intact,
  // so an older write cannot replace newer data. Only when both are damaged does any write
  // win (and repair the record).
  raw.clear();
  if (db_->Get(rocksdb::ReadOptions(), data_cf_, Key(id), &raw).ok()) {
    auto d = DecodeRecordHeader(raw);
    if (d.ok()) return std::optional<RecordMeta>(*d);
  }
  return std::optional<RecordMeta>();
}

bool RocksDbStore::StoredValueIntact(const ObjectId& id) {
  std::string raw;
  rocksdb::Status gs = db_->Get(rocksdb::ReadOptions(), data_cf_, Key(id), &raw);
  return gs.ok() && DecodeStoredRecord(raw).ok();
}

void RocksDbStore::CommitGroup(std::vector<WriteTask>& group) {
  // The newest header per key: what is stored, then what this group already wrote.
  std::unordered_map<ObjectId, std::optional<RecordMeta>, ObjectIdHash> current;
  rocksdb::WriteBatch batch;
  std::string header;
  Status status;
  for (auto& task : group) {
    for (auto& op : task.ops) {
      auto it = current.find(op.id);
      if (it == current.end()) {
        auto stored = StoredMeta(op.id);
        if (!stored.ok()) {
          status = stored.status();
          break;
        }
        it = current.emplace(op.id, *stored).first;
      }
      if (it->second) {
        const RecordMeta& have = *it->second;
        // The same version again is a resend or a repair: rewrite it only if the stored
        // bytes are damaged (the header alone cannot tell).
        const bool same = !Supersedes(op.record.meta, have) && !Supersedes(have, op.record.meta);
        if (!Supersedes(op.record.meta, have) && !(same && !StoredValueIntact(op.id))) continue;
      }
      it->second = op.record.meta;
      header = EncodeRecordHeader(op.record.meta);
      const rocksdb::Slice key = Key(op.id);
      const rocksdb::Slice parts[2] = {header, op.record.value};
      batch.Put(data_cf_, rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
      batch.Put(meta_cf_, key, header);
    }
    if (!status.ok()) break;
  }
  if (status.ok() && batch.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = options_.durability == Durability::kSync;
    status = FromRocks(db_->Write(wo, &batch));
  }
  if (status.ok()) {
    // Remember what is now stored; the writer is the only one who writes, so the cache is
    // exact. It is bounded by dropping it whole when full.
    if (meta_cache_.size() + current.size() > options_.max_cached_metas) meta_cache_.clear();
    for (auto& [id, meta] : current) {
      if (meta) meta_cache_[id] = *meta;
    }
  }
  auto callbacks = std::make_shared<std::vector<std::function<void(Status)>>>();
  callbacks->reserve(group.size());
  for (auto& task : group) callbacks->push_back(std::move(task.done));
  executor_([callbacks, status] {
    for (auto& cb : *callbacks) cb(status);
  });
}

// ---- reads ----------------------------------------------------------------------------

bool RocksDbStore::EnqueueRead(ReadTask& task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || stopping_ || reads_.size() >= options_.max_queued_reads) return false;
    reads_.push_back(std::move(task));
  }
  read_cv_.notify_one();
  return true;
}

// Reads try the memtable and block cache first, on the caller's strand: kBlockCacheTier
// never touches the disk (RocksDB answers Incomplete instead), so hot reads skip two thread
// hand-offs. Anything that would need I/O goes to the reader pool.
template <typename T>
bool RocksDbStore::TryCached(rocksdb::ColumnFamilyHandle* cf, const ObjectId& id,
                             const std::function<void(Result<T>)>& done,
                             Result<T> (*decode)(std::string_view)) {
  if (closed_) return false;
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kBlockCacheTier;
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(ro, cf, Key(id), &value);
  if (s.IsIncomplete()) return false;
  Result<T> r = s.ok() ? decode(std::string_view(value.data(), value.size())) : Result<T>(FromRocks(s));
  if (!r.ok() && r.status().IsCorruption()) {
    r = Status::Corruption("object " + id.Hex() + ": " + r.status().message());
  }
  executor_([done, r = std::move(r)]() mutable { done(std::move(r)); });
  return true;
}

void RocksDbStore::Get(const ObjectId& id, std::function<void(Result<Record>)> done) {
  if (TryCached<Record>(data_cf_, id, done, &DecodeStoredRecord)) return;
  ReadTask t{id, std::move(done), nullptr, nullptr};
  if (!EnqueueRead(t)) {
    executor_([done = std::move(t.get), s = Refusal()] { done(s); });
  }
}

void RocksDbStore::Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) {
  if (TryCached<RecordMeta>(meta_cf_, id, done, &DecodeRecordHeader)) return;
  ReadTask t{id, nullptr, std::move(done), nullptr};
  if (!EnqueueRead(t)) {
    executor_([done = std::move(t.stat), s = Refusal()] { done(s); });
  }
}

Status RocksDbStore::Refusal() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || stopping_) return Status::ShuttingDown("store closed");
  return Status::Busy("read queue full");
}

void RocksDbStore::Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
                        std::function<void(Result<std::vector<ScanEntry>>)> done) {
  auto run = [this, begin, end, limit, with_values, done]() {
    std::vector<ScanEntry> out;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), with_values ? data_cf_ : meta_cf_));
    Status status;
    for (it->Seek(Key(begin)); it->Valid() && out.size() < limit; it->Next()) {
      auto id = ObjectId::FromBytes(std::string_view(it->key().data(), it->key().size()));
      if (!id.ok() || !(*id < end)) break;
      ScanEntry e{*id, {}};
      std::string_view raw(it->value().data(), it->value().size());
      if (with_values) {
        auto r = DecodeStoredRecord(raw);
        if (!r.ok()) {
          status = Status::Corruption("record " + id->Hex() + ": " + r.status().message());
          break;
        }
        e.record = std::move(*r);
      } else {
        auto m = DecodeRecordHeader(raw);
        if (!m.ok()) {
          status = Status::Corruption("record " + id->Hex() + ": " + m.status().message());
          break;
        }
        e.record.meta = *m;
      }
      out.push_back(std::move(e));
    }
    if (status.ok() && !it->status().ok()) status = FromRocks(it->status());
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
  // Point reads go through one MultiGet per column family; scans run as they are.
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  std::vector<rocksdb::Slice> keys;
  std::vector<size_t> index;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].run) continue;
    cfs.push_back(batch[i].get ? data_cf_ : meta_cf_);
    keys.push_back(Key(batch[i].id));
    index.push_back(i);
  }
  std::vector<std::string> values;
  std::vector<rocksdb::Status> statuses;
  if (!keys.empty()) statuses = db_->MultiGet(rocksdb::ReadOptions(), cfs, keys, &values);

  auto results = std::make_shared<std::vector<std::function<void()>>>();
  for (size_t k = 0; k < index.size(); ++k) {
    ReadTask& t = batch[index[k]];
    if (t.get) {
      Result<Record> r = statuses[k].ok() ? DecodeStoredRecord(values[k])
                                          : Result<Record>(FromRocks(statuses[k]));
      if (!r.ok() && r.status().IsCorruption()) {
        r = Status::Corruption("object " + t.id.Hex() + ": " + r.status().message());
      }
      results->push_back([cb = std::move(t.get), r = std::move(r)]() mutable { cb(std::move(r)); });
    } else {
      Result<RecordMeta> r = statuses[k].ok() ? DecodeRecordHeader(values[k])
                                              : Result<RecordMeta>(FromRocks(statuses[k]));
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

Status RocksDbStore::RawPutForTest(const ObjectId& id, std::string_view bytes, bool meta) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Put(wo, meta ? meta_cf_ : data_cf_, Key(id), rocksdb::Slice(bytes.data(), bytes.size())));
}

}  // namespace ringstore
