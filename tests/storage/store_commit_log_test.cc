// RocksDbStore and its commit log: what RocksDB's memtables held at a crash (a close that
// flushes nothing, RocksDbOptions::flush_on_close = false) comes back from the log, hints
// included, also through a second crash; the log's segments are reused once flushes let
// them go, and what they held is still replayed; a large value's record survives too; only
// sync durability writes the log with O_DIRECT.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storage/rocksdb_store.h"
#include "tests/support/blocking_executor.h"
#include "tests/support/fd_flags.h"
#include "tests/support/test_path.h"

namespace ringstore {
namespace {

namespace fs = std::filesystem;

class StoreCommitLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TestPath("ringstore-store-clog-test");
    fs::remove_all(dir_);
  }
  void TearDown() override {
    Close();
    fs::remove_all(dir_);
  }
  void Open(bool flush_on_close) {
    RocksDbOptions o;
    o.path = dir_.string();
    o.durability = durability_;
    o.flush_on_close = flush_on_close;
    if (segment_bytes_ > 0) o.commit_log_segment_bytes = segment_bytes_;
    if (flush_bytes_ > 0) o.commit_log_flush_bytes = flush_bytes_;
    auto r = RocksDbStore::Open(o, exec_.executor());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(*r);
  }
  void Close() {
    if (store_) {
      (void)exec_.Await<Status>([&](auto cb) { store_->Close(cb); });
      store_.reset();
    }
  }
  // A crash, as far as RocksDB goes: its memtables are dropped, not flushed.
  void Crash() {
    ASSERT_TRUE(store_);
    Close();
  }
  Status Apply(std::vector<WriteOp> ops) {
    return exec_.Await<Status>([&](auto cb) { store_->Apply(std::move(ops), cb); });
  }
  Result<Record> Get(const ObjectId& id) {
    return exec_.Await<Result<Record>>([&](auto cb) { store_->Get(id, cb); });
  }
  static ObjectId Id(int i) { return ObjectId::Of("clog", std::to_string(i)); }
  static std::string Value(int i, size_t size = 100) {
    std::string v = "value-" + std::to_string(i) + "-";
    v.resize(size, static_cast<char>('a' + i % 26));
    return v;
  }
  size_t LogSegments() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "commitlog")) n += e.path().extension() == ".clog";
    return n;
  }

  fs::path dir_;
  Durability durability_ = Durability::kSync;
  uint64_t segment_bytes_ = 0;
  uint64_t flush_bytes_ = 0;
  testing::BlockingExecutor exec_;
  std::unique_ptr<RocksDbStore> store_;
};

TEST_F(StoreCommitLogTest, WhatTheMemtablesHeldComesBackFromTheLog) {
  Open(false);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(Apply({WriteOp{Id(i), Record::Value(10, Value(i))}}).ok());
  // A TXN over two keys, a delete, and a fallback write with its hint.
  ASSERT_TRUE(Apply({WriteOp{Id(0), Record::Value(11, "txn-0")}, WriteOp{Id(1), Record::Value(11, "txn-1")}}).ok());
  ASSERT_TRUE(Apply({WriteOp{Id(2), Record::Tombstone(12)}}).ok());
  WriteOp hinted{Id(500), Record::Value(13, "hinted")};
  hinted.hint_n = 3;
  ASSERT_TRUE(Apply({hinted}).ok());
  Crash();

  Open(false);
  EXPECT_EQ(Get(Id(0))->value, "txn-0");
  EXPECT_EQ(Get(Id(1))->value, "txn-1");
  EXPECT_TRUE(Get(Id(2))->meta.tombstone());
  for (int i = 3; i < 200; ++i) {
    auto r = Get(Id(i));
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
    EXPECT_EQ(r->value, Value(i)) << i;
  }
  EXPECT_EQ(Get(Id(500))->value, "hinted");
  auto hints = exec_.Await<Result<std::vector<StoredHint>>>(
      [&](auto cb) { store_->Hints(ObjectId::Min(), 10, cb); });
  ASSERT_TRUE(hints.ok());
  ASSERT_EQ(hints->size(), 1u);
  EXPECT_EQ((*hints)[0].id, Id(500));

  // A second crash, after more writes: the replayed batches and the new ones both come back.
  ASSERT_TRUE(Apply({WriteOp{Id(200), Record::Value(14, Value(200))}}).ok());
  Crash();
  Open(true);
  EXPECT_EQ(Get(Id(0))->value, "txn-0");
  EXPECT_EQ(Get(Id(199))->value, Value(199));
  EXPECT_EQ(Get(Id(200))->value, Value(200));
}

TEST_F(StoreCommitLogTest, SegmentsAreReusedAfterFlushesAndWhatTheyHoldIsReplayed) {
  segment_bytes_ = 64u << 10;
  flush_bytes_ = 256u << 10;
  durability_ = Durability::kAsync;
  Open(false);
  constexpr int kWrites = 3000;  // one record each, about 12 MiB of log without reuse
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(Apply({WriteOp{Id(i), Record::Value(10, Value(i, 1000))}}).ok());
  }
  EXPECT_LT(LogSegments(), 64u);
  Crash();
  Open(true);
  for (int i = 0; i < kWrites; ++i) {
    auto r = Get(Id(i));
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
    ASSERT_EQ(r->value, Value(i, 1000)) << i;
  }
}

TEST_F(StoreCommitLogTest, OnlySyncDurabilityWritesTheLogAroundThePageCache) {
  // Async durability never syncs the log, so an append is a copy into the page cache; sync
  // durability writes it with O_DIRECT (where the file system takes it), so that an fdatasync
  // waits for the disk's cache alone.
  for (const Durability d : {Durability::kAsync, Durability::kSync}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (d == Durability::kSync && !testing::TakesODirect(dir_)) {
      GTEST_SKIP() << dir_ << " does not take O_DIRECT; the sync half is not checked here";
    }
    durability_ = d;
    Open(true);
    ASSERT_TRUE(Apply({WriteOp{Id(1), Record::Value(10, Value(1))}}).ok());
    const auto flags = testing::FlagsOfFilesIn(dir_ / "commitlog");
    ASSERT_EQ(flags.size(), 1u);
    EXPECT_EQ((flags[0] & O_DIRECT) != 0, d == Durability::kSync);
    Close();
  }
}

TEST_F(StoreCommitLogTest, ALargeValuesRecordComesBackAndReadsItsValue) {
  Open(false);
  const std::string big(kExternalValueBytes * 4, 'L');
  ASSERT_TRUE(Apply({WriteOp{Id(1), Record::Value(10, big)}}).ok());
  Crash();
  Open(true);
  auto r = Get(Id(1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, big);
}

}  // namespace
}  // namespace ringstore
