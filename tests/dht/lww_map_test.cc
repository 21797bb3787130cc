// LwwMap: the encoding is canonical and bounded, and merging is a join (commutative,
// associative, idempotent), so replicas that saw the same writes in any order converge.
#include "dht/lww_map.h"

#include <gtest/gtest.h>

#include <random>

namespace ringstore {
namespace {

LwwMap Entries(std::initializer_list<std::tuple<std::string, Timestamp, bool, std::string>> list) {
  LwwMap m;
  for (const auto& [name, ts, deleted, payload] : list) m[name] = MapEntry{ts, deleted, payload};
  return m;
}

TEST(LwwMapTest, RoundTripsAndIsCanonical) {
  const LwwMap m = Entries({{"b", 5, false, "x"}, {"a", 7, true, ""}, {std::string("z\0y", 3), 1, false, "p"}});
  const std::string bytes = EncodeLwwMap(m);
  auto back = DecodeLwwMap(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(EncodeLwwMap(*back), bytes);
  EXPECT_TRUE(DecodeLwwMap(EncodeLwwMap({})).ok());
}

TEST(LwwMapTest, GarbageIsRefusedNotTrusted) {
  EXPECT_FALSE(DecodeLwwMap("").ok());
  EXPECT_FALSE(DecodeLwwMap("hello").ok());
  std::string bytes = EncodeLwwMap(Entries({{"a", 1, false, "v"}}));
  EXPECT_FALSE(DecodeLwwMap(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(DecodeLwwMap(bytes + "x").ok());
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::string b = bytes;
    b[rng() % b.size()] = static_cast<char>(rng());
    (void)DecodeLwwMap(b);  // must not crash; the result is either a map or an error
  }
  std::string over(kMaxMapNameBytes + 1, 'n');
  EXPECT_FALSE(DecodeLwwMap(EncodeLwwMap(Entries({{over, 1, false, ""}}))).ok());
}

TEST(LwwMapTest, NewerEntryWinsAndTiesBreakTheSameEverywhere) {
  LwwMap a = Entries({{"f", 5, false, "old"}});
  EXPECT_TRUE(MergeLwwMap(a, Entries({{"f", 6, true, ""}})));
  EXPECT_TRUE(a["f"].deleted);
  EXPECT_FALSE(MergeLwwMap(a, Entries({{"f", 4, false, "older"}})));
  EXPECT_TRUE(a["f"].deleted);
  LwwMap x = Entries({{"t", 9, false, "p"}});
  LwwMap y = Entries({{"t", 9, false, "q"}});
  LwwMap xy = x, yx = y;
  MergeLwwMap(xy, y);
  MergeLwwMap(yx, x);
  EXPECT_EQ(xy, yx);
  EXPECT_EQ(xy["t"].payload, "q");
}

TEST(LwwMapTest, MergeIsCommutativeAssociativeAndIdempotent) {
  std::mt19937_64 rng(42);
  auto random_map = [&] {
    LwwMap m;
    const int n = static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      m["k" + std::to_string(rng() % 6)] = MapEntry{1 + rng() % 4, rng() % 3 == 0, std::to_string(rng() % 3)};
    }
    if (rng() % 4 == 0) MergeLwwMap(m, LwwMap{{std::string(kMapClearName), MapEntry{1 + rng() % 4, true, {}}}});
    return m;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    const LwwMap a = random_map(), b = random_map(), c = random_map();
    LwwMap ab = a, ba = b;
    MergeLwwMap(ab, b);
    MergeLwwMap(ba, a);
    ASSERT_EQ(ab, ba);
    LwwMap ab_c = ab, bc = b;
    MergeLwwMap(ab_c, c);
    MergeLwwMap(bc, c);
    LwwMap a_bc = a;
    MergeLwwMap(a_bc, bc);
    ASSERT_EQ(ab_c, a_bc);
    LwwMap again = ab;
    EXPECT_FALSE(MergeLwwMap(again, a));
    ASSERT_EQ(again, ab);
    // The same entries make the same record, byte for byte.
    ASSERT_EQ(MapRecord(ab, 0).meta.checksum, MapRecord(ba, 0).meta.checksum);
  }
}

TEST(LwwMapTest, WritesAreStampedWithTheirTimestamp) {
  auto r = MapRecordFromWrite(EncodeLwwMap(Entries({{"a", 0, false, "x"}, {"b", 3, false, "y"}})), 10);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(IsMapRecord(r->meta));
  EXPECT_EQ(r->meta.ts, 10u);
  auto m = DecodeLwwMap(r->value);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["a"].ts, 10u);
  EXPECT_EQ((*m)["b"].ts, 3u);
  EXPECT_FALSE(MapRecordFromWrite("not a map", 10).ok());
  // A clear mark written live is stored deleted: it only ever cuts.
  auto marked = MapRecordFromWrite(EncodeLwwMap(Entries({{"/", 5, false, "x"}, {"c", 6, false, "z"}})), 10);
  ASSERT_TRUE(marked.ok());
  EXPECT_TRUE(DecodeLwwMap(marked->value)->at("/").deleted);
  // The fast merge leaves a marked stored map to the decoding path.
  Timestamp newest = 0;
  EXPECT_FALSE(MergeIntoEncoded(marked->value, Entries({{"d", 11, false, "w"}}), &newest).has_value());
}

TEST(LwwMapTest, RecordsMergeAndATombstoneCutsOlderEntries) {
  const Record a = MapRecord(Entries({{"x", 5, false, "1"}}), 0);
  const Record b = MapRecord(Entries({{"y", 6, false, "2"}}), 0);
  Record ab = MergeRecords(&a, b);
  ASSERT_TRUE(IsMapRecord(ab.meta));
  EXPECT_EQ(ab.meta.ts, 6u);
  EXPECT_EQ(DecodeLwwMap(ab.value)->size(), 2u);
  EXPECT_EQ(MergeRecords(&b, a).meta.checksum, ab.meta.checksum);
  EXPECT_EQ(MergeRecords(nullptr, a).value, a.value);

  const Record tomb = Record::Tombstone(6);
  Record t = MergeRecords(&ab, tomb);  // removes x (5) and y (6): not newer than the tombstone
  EXPECT_TRUE(t.meta.tombstone());
  const Record late = MapRecord(Entries({{"x", 4, false, "zombie"}}), 0);
  EXPECT_TRUE(MergeRecords(&t, late).meta.tombstone());  // an older entry cannot come back
  const Record newer = MapRecord(Entries({{"z", 7, false, "3"}}), 0);
  Record n = MergeRecords(&t, newer);
  ASSERT_TRUE(IsMapRecord(n.meta));
  EXPECT_EQ(DecodeLwwMap(n.value)->count("z"), 1u);

  // Plain records keep last-writer-wins.
  const Record v1 = Record::Value(3, "p"), v2 = Record::Value(4, "q");
  EXPECT_EQ(MergeRecords(&v1, v2).value, "q");
  EXPECT_EQ(MergeRecords(&v2, v1).value, "q");
}

TEST(LwwMapTest, ADeleteIsRememberedWhereNewerEntriesOutliveIt) {
  // A directory's map: P holds x and y; Q got the delete (tombstone at 7) and then a newer
  // entry z. P missed the delete. Whichever way they merge, x and y stay deleted (they came
  // back: Q kept only z, with no mark of the delete).
  const Record p = MapRecord(Entries({{"x", 5, false, "1"}, {"y", 6, false, "2"}}), 0);
  const Record tomb = Record::Tombstone(7);
  const Record z = MapRecord(Entries({{"z", 8, false, "3"}}), 0);
  Record q = MergeRecords(&p, tomb);
  ASSERT_TRUE(q.meta.tombstone());
  q = MergeRecords(&q, z);
  for (const Record& merged : {MergeRecords(&q, p), MergeRecords(&p, q)}) {
    ASSERT_TRUE(IsMapRecord(merged.meta));
    auto m = DecodeLwwMap(merged.value);
    ASSERT_TRUE(m.ok());
    size_t live = 0;
    for (const auto& [name, e] : *m) live += e.deleted ? 0 : 1;
    EXPECT_EQ(live, 1u) << "entries older than the delete came back";
    EXPECT_EQ(m->count("x") + m->count("y"), 0u);
    EXPECT_EQ(merged.meta.checksum, MergeRecords(&q, p).meta.checksum) << "the two orders differ";
  }
  // The same when the tombstone meets a map that already has newer entries.
  const Record pz = MergeRecords(&p, z);
  const Record cut = MergeRecords(&pz, tomb);
  auto m = DecodeLwwMap(MergeRecords(&cut, p).value);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->count("x") + m->count("y"), 0u);
  EXPECT_EQ(m->count("z"), 1u);
  // A write of an older entry into a map with the mark is dropped; a newer one stays.
  auto late = MergeRecords(&cut, MapRecord(Entries({{"w", 6, false, "old"}, {"v", 9, false, "new"}}), 0));
  auto lm = DecodeLwwMap(late.value);
  ASSERT_TRUE(lm.ok());
  EXPECT_EQ(lm->count("w"), 0u);
  EXPECT_EQ(lm->count("v"), 1u);
}

TEST(LwwMapTest, AMergedRecordKeepsTheLargerReplicaCount) {
  Record a = MapRecord(Entries({{"x", 5, false, "1"}}), 0);
  Record b = MapRecord(Entries({{"y", 6, false, "2"}}), 0);
  a.meta.set_replicas(2);
  b.meta.set_replicas(3);
  EXPECT_EQ(MergeRecords(&a, b).meta.replicas(), 3u);
  EXPECT_EQ(MergeRecords(&b, a).meta.replicas(), 3u);
  EXPECT_EQ(MergeRecords(&b, a).meta.flags, MergeRecords(&a, b).meta.flags);
  Record tomb = Record::Tombstone(5);
  tomb.meta.set_replicas(1);
  const Record cut = MergeRecords(&tomb, b);  // y (6) outlives the tombstone
  ASSERT_TRUE(IsMapRecord(cut.meta));
  EXPECT_EQ(cut.meta.replicas(), 3u);
}

TEST(LwwMapTest, ADamagedMapLosesToAHealthyOne) {
  Record bad = MapRecord(Entries({{"x", 5, false, "1"}}), 0);
  bad.value[bad.value.size() - 1] ^= 1;
  const Record good = MapRecord(Entries({{"y", 6, false, "2"}}), 0);
  EXPECT_EQ(MergeRecords(&bad, good).meta.checksum, good.meta.checksum);
  EXPECT_EQ(MergeRecords(&good, bad).meta.checksum, good.meta.checksum);
}

}  // namespace
}  // namespace ringstore

namespace ringstore {
namespace {

// The record the slow path makes: both maps decoded, merged, encoded.
Record SlowMerge(const Record& stored, const Record& incoming) {
  LwwMap a = *DecodeLwwMap(stored.value);
  MergeLwwMap(a, *DecodeLwwMap(incoming.value));
  Record r = MapRecord(a, std::max(stored.meta.ts, incoming.meta.ts));
  r.meta.set_replicas(std::max(stored.meta.replicas(), incoming.meta.replicas()));
  return r;
}

TEST(LwwMapMergeTest, MergingIntoTheEncodedMapGivesTheBytesOfDecodingMergingAndEncoding) {
  std::mt19937_64 rng(7);
  // Names and values that reach every msgpack width the encoding uses: bin8/bin16 names and
  // payloads, fixint to uint64 timestamps, fixarray and array16 entry counts, bytes >= 0x80.
  auto name = [&] {
    switch (rng() % 4) {
      case 0: return std::string(200 + rng() % 100, static_cast<char>('a' + rng() % 3));
      case 1: return std::string(1, static_cast<char>(0x80 + rng() % 4));
      default: return "n" + std::to_string(rng() % 40);
    }
  };
  auto ts = [&]() -> Timestamp {
    const Timestamp widths[] = {1, 0x80, 0x100, 0x10000, 0x100000000ull};
    return widths[rng() % 5] + rng() % 3;
  };
  auto random_map = [&](size_t max_entries) {
    LwwMap m;
    const size_t n = rng() % (max_entries + 1);
    for (size_t i = 0; i < n; ++i) m[name()] = MapEntry{ts(), rng() % 3 == 0, std::string(rng() % 2 ? 300 : rng() % 3, 'p')};
    return m;
  };
  for (int iter = 0; iter < 2000; ++iter) {
    const Record stored = MapRecord(random_map(iter % 2 ? 40 : 4), rng() % 2 ? 0 : ts());
    Record incoming = MapRecord(random_map(3), 0);
    incoming.meta.set_replicas(static_cast<uint8_t>(1 + rng() % 3));
    const Record want = SlowMerge(stored, incoming);
    const Record got = MergeRecords(&stored, incoming);
    ASSERT_EQ(got.value, want.value) << "iteration " << iter;
    ASSERT_EQ(got.meta.ts, want.meta.ts) << "iteration " << iter;
    ASSERT_EQ(got.meta.flags, want.meta.flags) << "iteration " << iter;
    ASSERT_EQ(got.meta.size, want.meta.size) << "iteration " << iter;
    ASSERT_EQ(got.meta.checksum, want.meta.checksum) << "iteration " << iter;
    Timestamp newest = 0;
    ASSERT_TRUE(MergeIntoEncoded(stored.value, *DecodeLwwMap(incoming.value), &newest).has_value());
  }
}

TEST(LwwMapMergeTest, AStoredMapNotInCanonicalFormIsMergedTheSlowWay) {
  // Entries out of order, and a timestamp in a wider format than it needs: valid maps that
  // EncodeLwwMap would not write.
  const std::string unsorted = EncodeLwwMapHeader(2) + [] {
    std::string s;
    AppendLwwMapEntry(&s, "b", MapEntry{2, false, "x"});
    AppendLwwMapEntry(&s, "a", MapEntry{1, false, "y"});
    return s;
  }();
  std::string wide = EncodeLwwMapHeader(1);
  wide += std::string("\x94\xc4\x01" "a" "\xcd\x00\x05" "\xc2\xc4\x00", 10);
  ASSERT_TRUE(DecodeLwwMap(wide).ok());
  for (const std::string& bytes : {unsorted, wide}) {
    Timestamp newest = 0;
    const LwwMap in = Entries({{"c", 9, false, "z"}});
    EXPECT_FALSE(MergeIntoEncoded(bytes, in, &newest).has_value());
    Record stored = Record::Value(1, bytes);
    stored.meta.flags |= kRecordMap;
    const Record incoming = MapRecord(in, 0);
    const Record got = MergeRecords(&stored, incoming);
    EXPECT_EQ(got.value, SlowMerge(stored, incoming).value);
    EXPECT_EQ(got.value, EncodeLwwMap(*DecodeLwwMap(got.value)));  // canonical again
  }
}

}  // namespace
}  // namespace ringstore
