// StoreTest: the fixture of the Store suites (store_test.cc, value_log_store_test.cc). It
// opens the store its parameter names ("memory", "rocksdb", "faulty-memory") in a fresh
// directory, and offers blocking wrappers of the Store calls. Single-threaded: each call
// waits for its completion on the test's BlockingExecutor.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "dht/lww_map.h"
#include "storage/fault_injecting_store.h"
#include "storage/memory_store.h"
#include "storage/record_format.h"
#include "storage/rocksdb_store.h"
#include "tests/support/blocking_executor.h"
#include "tests/support/test_path.h"

namespace ringstore {

namespace fs = std::filesystem;

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = testing::TestPath("ringstore-store-test");
    fs::remove_all(dir_);
    Open();
  }
  void TearDown() override {
    Close();
    fs::remove_all(dir_);
  }
  void Open() {
    if (GetParam() == "rocksdb") {
      RocksDbOptions o;
      o.path = dir_.string();
      if (segment_bytes_ != 0) o.value_log_segment_bytes = segment_bytes_;
      if (garbage_ratio_ >= 0) o.value_log_garbage_ratio = garbage_ratio_;
      o.durability = durability_;
      auto r = RocksDbStore::Open(o, exec_.executor());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      rocks_ = r->get();
      owned_ = std::move(*r);
      store_ = owned_.get();
    } else {
      if (!mem_) mem_ = std::make_unique<MemoryStore>(exec_.executor());
      store_ = mem_.get();
      if (GetParam() == "faulty-memory") {
        faulty_ = std::make_unique<FaultInjectingStore>(*mem_);
        store_ = faulty_.get();
      }
    }
  }
  void Close() {
    if (owned_) {
      (void)exec_.Await<Status>([&](auto cb) { owned_->Close(cb); });
      owned_.reset();
      rocks_ = nullptr;
    }
  }
  // Closes and reopens; the in-memory store keeps its map.
  void Reopen() {
    Close();
    Open();
  }

  Status Apply(std::vector<WriteOp> ops) {
    return exec_.Await<Status>([&](auto cb) { store_->Apply(std::move(ops), cb); });
  }
  Status Put(const ObjectId& id, Timestamp ts, std::string v) {
    return Apply({WriteOp{id, Record::Value(ts, std::move(v))}});
  }
  Result<Record> Get(const ObjectId& id) {
    return exec_.Await<Result<Record>>([&](auto cb) { store_->Get(id, cb); });
  }
  Result<RecordMeta> Stat(const ObjectId& id) {
    return exec_.Await<Result<RecordMeta>>([&](auto cb) { store_->Stat(id, cb); });
  }
  Result<std::vector<ScanEntry>> Scan(const ObjectId& b, const ObjectId& e, size_t limit, bool values) {
    return exec_.Await<Result<std::vector<ScanEntry>>>([&](auto cb) { store_->Scan(b, e, limit, values, cb); });
  }

  fs::path dir_;
  uint64_t segment_bytes_ = 0;  // RocksDB: the value log's segment size, if not 0
  double garbage_ratio_ = -1;   // RocksDB: the value log's garbage ratio, if not negative
  Durability durability_ = Durability::kSync;  // RocksDB
  testing::BlockingExecutor exec_;
  std::unique_ptr<MemoryStore> mem_;
  std::unique_ptr<FaultInjectingStore> faulty_;
  std::unique_ptr<RocksDbStore> owned_;
  RocksDbStore* rocks_ = nullptr;
  Store* store_ = nullptr;
};

inline const ObjectId kA = ObjectId::Of("t", "a");
inline const ObjectId kB = ObjectId::Of("t", "b");

inline Record MapOf(Timestamp ts, std::string name, std::string payload, bool deleted = false) {
  LwwMap m;
  m[name] = MapEntry{ts, deleted, std::move(payload)};
  return MapRecord(m, ts);
}

inline LwwMap MapAt(Result<Record> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  EXPECT_TRUE(IsMapRecord(r->meta));
  auto m = DecodeLwwMap(r->value);
  EXPECT_TRUE(m.ok());
  return m.ok() ? *m : LwwMap{};
}

}  // namespace ringstore
