// One suite, run against every Store: the in-memory store, the RocksDB store, and the
// in-memory store behind the fault-injecting wrapper with no faults armed.
#include <algorithm>

#include "tests/storage/store_test_fixture.h"
#include "tests/support/direct_io.h"

namespace ringstore {
namespace {

TEST_P(StoreTest, MissingKeyIsNotFound) {
  EXPECT_TRUE(Get(kA).status().IsNotFound());
  EXPECT_TRUE(Stat(kA).status().IsNotFound());
}

TEST_P(StoreTest, PutThenGetAndStat) {
  ASSERT_TRUE(Put(kA, 10, "alpha").ok());
  auto r = Get(kA);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "alpha");
  EXPECT_EQ(r->meta.ts, 10u);
  auto m = Stat(kA);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size, 5u);
  EXPECT_EQ(m->checksum, Record::Value(10, "alpha").meta.checksum);
}

TEST_P(StoreTest, AnEmptyApplyCompletesAfterTheWritesBeforeIt) {
  // Anti-entropy waits on it before it says it holds a record (Store::Apply): it must not
  // complete before a write issued ahead of it (here without waiting for that write).
  std::vector<std::string> order;
  for (int i = 0; i < 8; ++i) {
    const ObjectId id = ObjectId::Of("barrier", std::to_string(i));
    store_->Apply({WriteOp{id, Record::Value(10, std::string(i * 1000, 'v'))}},
                  [&order, i](Status s) { order.push_back((s.ok() ? "w" : "failed w") + std::to_string(i)); });
    store_->Apply({}, [&order, i](Status s) { order.push_back((s.ok() ? "b" : "failed b") + std::to_string(i)); });
  }
  ASSERT_TRUE(exec_.RunUntil([&] { return order.size() == 16; }));
  for (int i = 0; i < 8; ++i) {
    const auto w = std::find(order.begin(), order.end(), "w" + std::to_string(i));
    const auto b = std::find(order.begin(), order.end(), "b" + std::to_string(i));
    ASSERT_NE(w, order.end()) << i;
    ASSERT_NE(b, order.end()) << i;
    EXPECT_LT(w - order.begin(), b - order.begin()) << "barrier " << i << " completed before the write ahead of it";
  }
  EXPECT_TRUE(Get(kA).status().IsNotFound()) << "an empty apply wrote something";
}

TEST_P(StoreTest, LastWriterWinsAndResendIsIdempotent) {
  ASSERT_TRUE(Put(kA, 20, "new").ok());
  ASSERT_TRUE(Put(kA, 10, "old").ok());  // arrives late: ignored
  EXPECT_EQ(Get(kA)->value, "new");
  ASSERT_TRUE(Put(kA, 20, "new").ok());  // a resend: no change
  EXPECT_EQ(Get(kA)->value, "new");
  ASSERT_TRUE(Put(kA, 30, "newer").ok());
  EXPECT_EQ(Get(kA)->value, "newer");
}

// The hot-read path (GetIfCached, and RocksDbStore's row cache behind it) never answers with
// a record older than the last completed write.
TEST_P(StoreTest, CachedReadsSeeEveryCompletedWrite) {
  ASSERT_TRUE(Put(kA, 10, "one").ok());
  for (int round = 0; round < 2; ++round) {  // the second round reads a warm cache
    auto first = store_->GetIfCached(kA);
    if (first) {
      EXPECT_EQ((*first)->value, "one");
    }
  }
  ASSERT_TRUE(Put(kA, 11, "two").ok());
  if (auto r = store_->GetIfCached(kA)) {
    EXPECT_EQ((*r)->value, "two");
  }
  EXPECT_EQ(Get(kA)->value, "two");
  EXPECT_EQ(Stat(kA)->ts, 11u);
  ASSERT_TRUE(Apply({WriteOp{kA, Record::Tombstone(12)}}).ok());
  if (auto r = store_->GetIfCached(kA)) {
    EXPECT_TRUE((*r)->meta.tombstone());
  }
  EXPECT_TRUE(Get(kA)->meta.tombstone());
  EXPECT_TRUE(Stat(kA)->tombstone());
}

TEST_P(StoreTest, TombstonesAreRecordsAndOlderWritesCannotResurrect) {
  ASSERT_TRUE(Put(kA, 10, "v").ok());
  ASSERT_TRUE(Apply({WriteOp{kA, Record::Tombstone(20)}}).ok());
  auto r = Get(kA);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->meta.tombstone());
  ASSERT_TRUE(Put(kA, 15, "zombie").ok());
  EXPECT_TRUE(Get(kA)->meta.tombstone());
}

TEST_P(StoreTest, ApplyIsAtomicAcrossKeysAndKeepsTheNewestWithinABatch) {
  ASSERT_TRUE(Apply({WriteOp{kA, Record::Value(5, "a1")}, WriteOp{kB, Record::Value(5, "b1")},
                     WriteOp{kA, Record::Value(6, "a2")}, WriteOp{kA, Record::Value(4, "a0")}})
                  .ok());
  EXPECT_EQ(Get(kA)->value, "a2");
  EXPECT_EQ(Get(kB)->value, "b1");
}


TEST_P(StoreTest, MapRecordsMergeEntryByEntryInAnyOrder) {
  // Two writers add different names: both survive, whichever arrives first.
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(20, "x", "1")}}).ok());
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(10, "y", "2")}}).ok());  // older, but a different entry
  LwwMap m = MapAt(Get(kA));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m["y"].payload, "2");
  EXPECT_EQ(Get(kA)->meta.ts, 20u);
  // Deleting an entry is a newer deleted entry; an older write of it does not bring it back.
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(30, "x", "", true)}}).ok());
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(25, "x", "zombie")}}).ok());
  EXPECT_TRUE(MapAt(Get(kA))["x"].deleted);
  // Within one batch, and surviving a reopen.
  ASSERT_TRUE(Apply({WriteOp{kB, MapOf(5, "p", "a")}, WriteOp{kB, MapOf(6, "q", "b")}, WriteOp{kB, MapOf(4, "r", "c")}}).ok());
  Reopen();
  EXPECT_EQ(MapAt(Get(kB)).size(), 3u);
  EXPECT_EQ(MapAt(Get(kA)).size(), 2u);
  // A resend changes nothing.
  const uint64_t before = Get(kB)->meta.checksum;
  ASSERT_TRUE(Apply({WriteOp{kB, MapOf(6, "q", "b")}}).ok());
  EXPECT_EQ(Get(kB)->meta.checksum, before);
}

TEST_P(StoreTest, AWholeRecordTombstoneRemovesOnlyOlderEntries) {
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(10, "x", "1")}}).ok());
  ASSERT_TRUE(Apply({WriteOp{kA, Record::Tombstone(15)}}).ok());
  EXPECT_TRUE(Get(kA)->meta.tombstone());
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(12, "y", "late")}}).ok());
  EXPECT_TRUE(Get(kA)->meta.tombstone());
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(16, "z", "new")}}).ok());
  LwwMap m = MapAt(Get(kA));
  EXPECT_EQ(m.size(), 2u);  // z, and the mark of the delete at 15 (dht/lww_map.h)
  EXPECT_EQ(m.count("z"), 1u);
  ASSERT_EQ(m.count(std::string(kMapClearName)), 1u);
  EXPECT_EQ(m[std::string(kMapClearName)].ts, 15u);
  EXPECT_TRUE(m[std::string(kMapClearName)].deleted);
}

TEST_P(StoreTest, ScanReturnsARangeInIdOrder) {
  std::vector<ObjectId> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(ObjectId::Of("scan", std::to_string(i)));
    ASSERT_TRUE(Put(ids.back(), 1, "v" + std::to_string(i)).ok());
  }
  std::sort(ids.begin(), ids.end());
  auto all = Scan(ObjectId::Min(), ObjectId::Max(), 1000, true);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 50u);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ((*all)[i].id, ids[i]);
  EXPECT_FALSE((*all)[0].record.value.empty());
  // Half-open [ids[10], ids[20]), metadata only, and a limit.
  auto part = Scan(ids[10], ids[20], 1000, false);
  ASSERT_TRUE(part.ok());
  ASSERT_EQ(part->size(), 10u);
  EXPECT_EQ(part->front().id, ids[10]);
  EXPECT_TRUE(part->front().record.value.empty());
  EXPECT_GT(part->front().record.meta.size, 0u);
  EXPECT_EQ(Scan(ids[0], ids[49], 7, false)->size(), 7u);
}

TEST_P(StoreTest, PurgeRemovesOnlyTheGivenVersion) {
  ASSERT_TRUE(Put(kA, 10, "ten").ok());
  ASSERT_TRUE(Put(kB, 10, "bee").ok());
  WriteOp stale{kA, Record::Value(9, "nine")};
  stale.purge = true;
  ASSERT_TRUE(Apply({stale}).ok());  // another version: kept
  EXPECT_EQ(Get(kA)->value, "ten");
  WriteOp exact{kA, Record::Value(10, "ten")};
  exact.purge = true;
  exact.record.value.clear();  // only the metadata counts
  ASSERT_TRUE(Apply({exact}).ok());
  EXPECT_TRUE(Get(kA).status().IsNotFound());
  EXPECT_TRUE(Stat(kA).status().IsNotFound());
  EXPECT_EQ(Get(kB)->value, "bee");
  // A write after a purge lands as on an empty key, even an older version.
  ASSERT_TRUE(Put(kA, 5, "five").ok());
  EXPECT_EQ(Get(kA)->value, "five");
  Reopen();
  EXPECT_EQ(Get(kA)->value, "five");
  // A purge and a newer write in one batch: the write stays.
  WriteOp p5{kA, Record::Value(5, "five")};
  p5.purge = true;
  ASSERT_TRUE(Apply({p5, WriteOp{kA, Record::Value(6, "six")}}).ok());
  EXPECT_EQ(Get(kA)->value, "six");
}

TEST_P(StoreTest, DataSurvivesReopen) {
  ASSERT_TRUE(Put(kA, 10, std::string(1 << 20, 'q')).ok());  // goes to a blob file in RocksDB
  ASSERT_TRUE(Put(kB, 10, "small").ok());
  Reopen();
  EXPECT_EQ(Get(kA)->value, std::string(1 << 20, 'q'));
  EXPECT_EQ(Get(kB)->value, "small");
}

TEST_P(StoreTest, CallsAfterCloseFail) {
  if (GetParam() == "rocksdb") {
    (void)exec_.Await<Status>([&](auto cb) { owned_->Close(cb); });
  } else {
    (void)exec_.Await<Status>([&](auto cb) { store_->Close(cb); });
  }
  EXPECT_FALSE(Put(kA, 1, "x").ok());
  EXPECT_FALSE(Get(kA).ok());
}

INSTANTIATE_TEST_SUITE_P(AllStores, StoreTest, ::testing::Values("memory", "rocksdb", "faulty-memory"));

// RocksDB-only: bytes damaged on disk are reported as corruption, never served.
class RocksDbCorruptionTest : public StoreTest {};

TEST_P(RocksDbCorruptionTest, DamagedValueOrHeaderIsCorruption) {
  ASSERT_TRUE(Put(kA, 10, "precious bytes").ok());
  std::string raw = EncodeStoredRecord(Record::Value(10, "precious bytes"));
  raw[raw.size() - 1] ^= 0x01;  // value bit flip
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  auto r = Get(kA);
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(kA.Hex()), std::string::npos);

  raw = EncodeStoredRecord(Record::Value(10, "precious bytes"));
  raw[9] ^= 0x40;  // timestamp bit flip in the header
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  EXPECT_TRUE(Get(kA).status().IsCorruption());

  // A newer write repairs the record.
  ASSERT_TRUE(Put(kA, 11, "fresh").ok());
  EXPECT_EQ(Get(kA)->value, "fresh");
}

TEST_P(RocksDbCorruptionTest, RewritingTheSameVersionRepairsDamagedBytes) {
  // What a repair from a healthy replica does: it sends the very same version again.
  ASSERT_TRUE(Put(kA, 10, "precious bytes").ok());
  std::string raw = EncodeStoredRecord(Record::Value(10, "precious bytes"));
  raw[kRecordHeaderBytes + 3] ^= 0x08;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  ASSERT_TRUE(Get(kA).status().IsCorruption());
  ASSERT_TRUE(Put(kA, 10, "precious bytes").ok());
  auto r = Get(kA);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "precious bytes");
  // And an intact record is not rewritten by a resend (still readable, same version).
  ASSERT_TRUE(Put(kA, 10, "precious bytes").ok());
  EXPECT_EQ(Get(kA)->meta.ts, 10u);
}

TEST_P(RocksDbCorruptionTest, ADamagedMapIsRepairedByTheNextMerge) {
  // RocksDbStore's writer caches record headers: the merge must still read the value and see
  // that it is damaged, and write the healthy map in its place.
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(10, "x", "1")}}).ok());
  std::string raw = EncodeStoredRecord(MapOf(10, "x", "1"));
  raw[raw.size() - 1] ^= 0x01;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  ASSERT_TRUE(Get(kA).status().IsCorruption());
  ASSERT_TRUE(Apply({WriteOp{kA, MapOf(10, "x", "1")}}).ok());
  EXPECT_EQ(MapAt(Get(kA)).count("x"), 1u);
}

TEST_P(RocksDbCorruptionTest, ADamagedHeaderIsReportedAndAnyWriteRepairsIt) {
  ASSERT_TRUE(Put(kA, 20, "newer").ok());
  Reopen();  // the writer's header cache starts empty
  std::string raw = EncodeStoredRecord(Record::Value(20, "newer"));
  raw[12] ^= 0x01;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  EXPECT_TRUE(Get(kA).status().IsCorruption());
  EXPECT_TRUE(Stat(kA).status().IsCorruption());
  // The version is unknown now, so a write of any version replaces the damaged record (the
  // newer one comes back from another replica by repair).
  ASSERT_TRUE(Put(kA, 10, "older").ok());
  EXPECT_EQ(Get(kA)->value, "older");
}

TEST_P(RocksDbCorruptionTest, ScansFlagDamagedRecordsAndGoOn) {
  ASSERT_TRUE(Put(kA, 10, "precious bytes").ok());
  ASSERT_TRUE(Put(kB, 10, "other bytes").ok());
  std::string raw = EncodeStoredRecord(Record::Value(10, "precious bytes"));
  raw[raw.size() - 1] ^= 0x01;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  auto with_values = Scan(ObjectId::Min(), ObjectId::Max(), 10, true);
  ASSERT_TRUE(with_values.ok()) << with_values.status().ToString();
  ASSERT_EQ(with_values->size(), 2u);
  for (const auto& e : *with_values) EXPECT_EQ(e.corrupt, e.id == kA);
  // Metadata only: a damaged value is not seen, a damaged header is.
  raw = EncodeStoredRecord(Record::Value(10, "precious bytes"));
  raw[12] ^= 0x01;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, raw).ok());
  auto meta = Scan(ObjectId::Min(), ObjectId::Max(), 10, false);
  ASSERT_TRUE(meta.ok());
  ASSERT_EQ(meta->size(), 2u);
  for (const auto& e : *meta) EXPECT_EQ(e.corrupt, e.id == kA);
}

// Values of kExternalValueBytes and more live apart from their header.
TEST_P(RocksDbCorruptionTest, LargeValuesLiveApartAndMoveBetweenLayouts) {
  const std::string big(kExternalValueBytes + 7, 'B');
  ASSERT_TRUE(Put(kA, 1, big).ok());
  ASSERT_TRUE(Put(kB, 1, "small").ok());
  EXPECT_EQ(Get(kA)->value, big);
  EXPECT_EQ(Stat(kA)->size, big.size());
  // Scans list records, never the value keys.
  auto all = Scan(ObjectId::Min(), ObjectId::Max(), 100, true);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  // big -> small -> big, across a reopen (the cache forgotten).
  ASSERT_TRUE(Put(kA, 2, "now small").ok());
  Reopen();
  EXPECT_EQ(Get(kA)->value, "now small");
  ASSERT_TRUE(Put(kA, 3, big + "!").ok());
  EXPECT_EQ(Get(kA)->value, big + "!");
  // A damaged external value is caught, and the same version again repairs it.
  std::string damaged = big + "!";
  damaged[100] ^= 0x20;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, damaged, /*value_key=*/true).ok());
  EXPECT_TRUE(Get(kA).status().IsCorruption());
  ASSERT_TRUE(Put(kA, 3, big + "!").ok());
  EXPECT_EQ(Get(kA)->value, big + "!");
}

// A map record goes to the value log only from kExternalMapBytes; other values from 16 KiB.
TEST_P(RocksDbCorruptionTest, MapRecordsStayInlineUpToTheirOwnThreshold) {
  const auto logged_bytes = [&] {
    uint64_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "vlog")) n += fs::file_size(e.path());
    return n;
  };
  ASSERT_TRUE(Put(kA, 1, std::string(kExternalValueBytes, 'v')).ok());
  const uint64_t after_value = logged_bytes();
  EXPECT_GT(after_value, 0u) << "a 16 KiB value goes to the log";
  ASSERT_TRUE(Apply({WriteOp{kB, MapOf(1, "entry", std::string(2 * kExternalValueBytes, 'm'))}}).ok());
  EXPECT_EQ(logged_bytes(), after_value) << "a 32 KiB map record stays in RocksDB";
  EXPECT_EQ(MapAt(Get(kB)).at("entry").payload.size(), 2 * kExternalValueBytes);
  std::vector<WriteOp> more;  // four more entries of 64 KiB: over kExternalMapBytes in all
  for (int i = 0; i < 4; ++i) more.push_back(WriteOp{kB, MapOf(2, "big" + std::to_string(i), std::string(kMaxMapPayloadBytes, 'M'))});
  ASSERT_TRUE(Apply(std::move(more)).ok());
  EXPECT_GT(logged_bytes(), after_value) << "a map record of kExternalMapBytes or more goes to the log";
  EXPECT_EQ(MapAt(Get(kB)).size(), 5u);
}

// A small logged value that the page cache holds is served from memory, and checked there.
TEST_P(RocksDbCorruptionTest, ASmallLoggedValueInThePageCacheIsServedWithoutTheReaders) {
  const std::string v(kExternalValueBytes + 5, 'S');
  ASSERT_TRUE(Put(kA, 1, v).ok());
  EXPECT_EQ(Get(kA)->value, v);  // read through the page cache
  auto hit = store_->GetIfCached(kA);
  ASSERT_TRUE(hit.has_value()) << "a cached small logged value needs no reader thread";
  ASSERT_TRUE(hit->ok()) << hit->status().ToString();
  EXPECT_EQ(hit->value().value, v);
  std::string damaged = v;
  damaged[7] ^= 0x01;
  ASSERT_TRUE(rocks_->RawPutForTest(kA, damaged, /*value_key=*/true).ok());
  hit = store_->GetIfCached(kA);
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->status().IsCorruption()) << hit->status().ToString();
}

// A bulk write (repair traffic) goes around the page cache: reading it back needs the
// readers, where the same value written otherwise is served from memory.
TEST_P(RocksDbCorruptionTest, ABulkWriteIsNotLeftInThePageCache) {
  if (!testing::DirectIoAllowed(dir_)) GTEST_SKIP() << "this file system refuses O_DIRECT, so every write is cached";
  const std::string v(kExternalValueBytes + 5, 'B');
  WriteOp bulk{kB, Record::Value(1, v)};
  bulk.bulk = true;
  ASSERT_TRUE(Apply({WriteOp{kA, Record::Value(1, v)}}).ok());
  ASSERT_TRUE(Apply({bulk}).ok());
  EXPECT_TRUE(store_->GetIfCached(kA).has_value());
  EXPECT_FALSE(store_->GetIfCached(kB).has_value()) << "a bulk write's value is in the page cache";
  EXPECT_EQ(Get(kB)->value, v);
}

// Large values written before the value log live under a key of their own: still read, and
// replaced by the next write.
TEST_P(RocksDbCorruptionTest, LargeValuesOfTheEarlierLayoutAreRead) {
  const std::string big(kExternalValueBytes + 3, 'O');
  const Record old = Record::Value(5, big);
  ASSERT_TRUE(rocks_->RawPutForTest(kA, EncodeRecordHeader(old.meta, /*external=*/true)).ok());
  ASSERT_TRUE(rocks_->RawPutForTest(kA, big, /*value_key=*/true).ok());
  Reopen();
  auto r = Get(kA);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, big);
  auto scan = Scan(ObjectId::Min(), ObjectId::Max(), 10, true);
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->size(), 1u);
  EXPECT_EQ(scan->front().record.value, big);
  ASSERT_TRUE(Put(kA, 6, big + "new").ok());
  EXPECT_EQ(Get(kA)->value, big + "new");
  ASSERT_TRUE(Put(kA, 7, "small").ok());
  EXPECT_EQ(Get(kA)->value, "small");
}

INSTANTIATE_TEST_SUITE_P(RocksDb, RocksDbCorruptionTest, ::testing::Values("rocksdb"));

}  // namespace
}  // namespace ringstore
