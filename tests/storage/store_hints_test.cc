// Hints (WriteOp::hint_n, Store::Hints, Store::ForgetHints), against every Store: kept in the
// fallback write itself, widened by later ones, forgotten only up to the version handed off,
// and kept across a reopen.
#include <rocksdb/db.h>

#include <algorithm>

#include "tests/storage/store_test_fixture.h"
#include "tests/support/file_size_limit.h"

namespace ringstore {
namespace {

WriteOp Fallback(const ObjectId& id, Timestamp ts, std::string v, uint32_t n) {
  WriteOp op{id, Record::Value(ts, std::move(v))};
  op.hint_n = n;
  return op;
}

class StoreHintsTest : public StoreTest {
 protected:
  std::vector<StoredHint> Hints(const ObjectId& begin = ObjectId::Min(), size_t limit = 100) {
    auto r = exec_.Await<Result<std::vector<StoredHint>>>([&](auto cb) { store_->Hints(begin, limit, cb); });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<StoredHint>{};
  }
  Status Forget(const ObjectId& id, Timestamp ts) {
    return exec_.Await<Status>([&](auto cb) { store_->ForgetHints({StoredHint{id, 0, ts}}, cb); });
  }
};

TEST_P(StoreHintsTest, AFallbackWriteKeepsAHintThatLaterOnesWiden) {
  EXPECT_TRUE(Hints().empty());
  ASSERT_TRUE(Put(kB, 3, "plain").ok());  // not a fallback: no hint
  ASSERT_TRUE(Apply({Fallback(kA, 10, "ten", 1)}).ok());
  auto h = Hints();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].id, kA);
  EXPECT_EQ(h[0].route_n, 1u);
  EXPECT_EQ(h[0].ts, 10u);
  // An older write loses to the stored record, but its hint still counts (its N is larger).
  ASSERT_TRUE(Apply({Fallback(kA, 5, "five", 3)}).ok());
  EXPECT_EQ(Get(kA)->value, "ten");
  h = Hints();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].route_n, 3u);
  EXPECT_EQ(h[0].ts, 10u);
  // A purge keeps no hint.
  WriteOp purge = Fallback(kB, 3, "plain", 2);
  purge.purge = true;
  ASSERT_TRUE(Apply({purge}).ok());
  EXPECT_EQ(Hints().size(), 1u);
}

TEST_P(StoreHintsTest, AHintIsForgottenOnlyUpToTheVersionHandedOff) {
  ASSERT_TRUE(Apply({Fallback(kA, 10, "ten", 2), Fallback(kB, 20, "twenty", 2)}).ok());
  ASSERT_TRUE(Forget(kA, 9).ok());  // a handoff of an older version: a newer write's hint stays
  EXPECT_EQ(Hints().size(), 2u);
  ASSERT_TRUE(Forget(kA, 10).ok());
  auto h = Hints();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].id, kB);
  ASSERT_TRUE(Forget(kA, 99).ok());  // none left: nothing happens
  ASSERT_TRUE(Forget(kB, 25).ok());
  EXPECT_TRUE(Hints().empty());
  // Forgetting does not touch the records.
  EXPECT_EQ(Get(kA)->value, "ten");
  EXPECT_EQ(Get(kB)->value, "twenty");
}

TEST_P(StoreHintsTest, HintsAreListedInIdOrderFromAPlaceAndSurviveAReopen) {
  std::vector<ObjectId> ids;
  std::vector<WriteOp> ops;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(ObjectId::Of("hints", std::to_string(i)));
    ops.push_back(Fallback(ids.back(), 100 + i, "v", 2));
  }
  ASSERT_TRUE(Apply(ops).ok());
  std::sort(ids.begin(), ids.end());
  Reopen();
  auto first = Hints(ObjectId::Min(), 4);
  ASSERT_EQ(first.size(), 4u);
  auto rest = Hints(first.back().id.Successor(), 100);
  ASSERT_EQ(rest.size(), 6u);
  first.insert(first.end(), rest.begin(), rest.end());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(first[i].id, ids[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(AllStores, StoreHintsTest, ::testing::Values("memory", "rocksdb", "faulty-memory"));

class RocksDbHintsTest : public StoreHintsTest {};

// A store written before hints has no "hints" family: it opens, and keeps hints from then on.
TEST_P(RocksDbHintsTest, AStoreFromBeforeHintsOpensAndKeepsThem) {
  Close();
  fs::remove_all(dir_);
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir_.string(), &db).ok());
    delete db;
  }
  Open();
  ASSERT_NE(rocks_, nullptr);
  ASSERT_TRUE(Apply({Fallback(kA, 10, "ten", 2)}).ok());
  Reopen();
  EXPECT_EQ(Hints().size(), 1u);
  EXPECT_EQ(Get(kA)->value, "ten");
}

// The hint and its record are one write: a group that fails writes neither. (Here the value
// log cannot grow past RLIMIT_FSIZE, so the group's large value fails before its batch.)
TEST_P(RocksDbHintsTest, AFailedGroupKeepsNoHint) {
  ASSERT_TRUE(Apply({Fallback(kB, 1, std::string(kExternalValueBytes, 'w'), 2)}).ok());
  const fs::path log = dir_ / "vlog" / "00000001.vlog";
  ASSERT_TRUE(fs::exists(log));
  Status failed;
  {
    testing::FileSizeLimit limit(fs::file_size(log) + 4096);
    ASSERT_TRUE(limit.ok());
    failed = Apply({Fallback(kA, 10, std::string(4 * kExternalValueBytes, 'x'), 2)});
  }
  EXPECT_FALSE(failed.ok());
  auto h = Hints();
  ASSERT_EQ(h.size(), 1u) << "a hint outlived its failed write";
  EXPECT_EQ(h[0].id, kB);
  EXPECT_TRUE(Get(kA).status().IsNotFound());
  Reopen();
  EXPECT_EQ(Hints().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(RocksDb, RocksDbHintsTest, ::testing::Values("rocksdb"));

}  // namespace
}  // namespace ringstore
