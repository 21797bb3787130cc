#include "dht/sync_messages.h"

#include <gtest/gtest.h>

#include <random>

namespace ringstore {
namespace {

std::string_view Body(const std::string& frame) { return std::string_view(frame).substr(kFrameHeaderBytes); }

KeyVersion Version(int i) {
  KeyVersion v;
  v.id = ObjectId::Of("sync", std::to_string(i));
  v.meta = Record::Value(100 + i, std::string(static_cast<size_t>(i), 'x')).meta;
  return v;
}

TEST(SyncMessagesTest, EveryMessageRoundTrips) {
  SyncTreeRequest t{{0xabcdefULL, 3, "node-a"}, 2, {0, 5, 255}};
  auto t2 = DecodeSyncTreeRequest(Body(EncodeSyncTreeRequest(1, t)));
  ASSERT_TRUE(t2.ok()) << t2.status().ToString();
  EXPECT_EQ(t2->scope.ring_digest, t.scope.ring_digest);
  EXPECT_EQ(t2->scope.from, "node-a");
  EXPECT_EQ(t2->level, 2u);
  EXPECT_EQ(t2->indices, t.indices);

  SyncTreeReply tr{{1, 2, 3, UINT64_MAX}};
  EXPECT_EQ(DecodeSyncTreeReply(Body(EncodeSyncTreeReply(1, tr)))->hashes, tr.hashes);

  SyncKeysRequest k{{9, 2, "b"}, {4095, 0}, std::nullopt};
  auto k2 = DecodeSyncKeysRequest(Body(EncodeSyncKeysRequest(1, k)));
  ASSERT_TRUE(k2.ok()) << k2.status().ToString();
  EXPECT_EQ(k2->leaves, k.leaves);
  EXPECT_FALSE(k2->start.has_value());
  // The rest of a leaf listed in part: from an id on (field 4, optional).
  k.start = Version(3).id;
  k2 = DecodeSyncKeysRequest(Body(EncodeSyncKeysRequest(1, k)));
  ASSERT_TRUE(k2.ok()) << k2.status().ToString();
  ASSERT_TRUE(k2->start.has_value());
  EXPECT_EQ(*k2->start, *k.start);

  SyncKeysReply kr;
  kr.done = {7};
  for (int i = 0; i < 50; ++i) kr.entries.push_back(Version(i));
  auto kr2 = DecodeSyncKeysReply(Body(EncodeSyncKeysReply(1, kr)));
  ASSERT_TRUE(kr2.ok());
  ASSERT_EQ(kr2->entries.size(), 50u);
  EXPECT_EQ(kr2->entries[49].id, kr.entries[49].id);
  EXPECT_EQ(kr2->entries[49].meta.ts, kr.entries[49].meta.ts);
  EXPECT_EQ(kr2->entries[49].meta.checksum, kr.entries[49].meta.checksum);
  EXPECT_EQ(kr2->entries[49].meta.size, 49u);
  EXPECT_FALSE(kr2->cut.has_value());
  kr.cut = Version(60).id;  // field 2, optional: the last leaf listed below it
  kr2 = DecodeSyncKeysReply(Body(EncodeSyncKeysReply(1, kr)));
  ASSERT_TRUE(kr2.ok()) << kr2.status().ToString();
  ASSERT_TRUE(kr2->cut.has_value());
  EXPECT_EQ(*kr2->cut, *kr.cut);

  SyncHaveRequest h;
  for (int i = 0; i < 3; ++i) h.entries.push_back(Version(i));
  h.placed = {false, true, false};
  auto h2 = DecodeSyncHaveRequest(Body(EncodeSyncHaveRequest(1, h)));
  ASSERT_TRUE(h2.ok()) << h2.status().ToString();
  EXPECT_EQ(h2->entries.size(), 3u);
  EXPECT_EQ(h2->placed, h.placed);

  SyncHaveReply hr{{true, false, true}};
  EXPECT_EQ(DecodeSyncHaveReply(Body(EncodeSyncHaveReply(1, hr)))->have, hr.have);

  ScanRequest s{ObjectId::Min(), ObjectId::Max(), 100};
  EXPECT_EQ(DecodeScanRequest(Body(EncodeScanRequest(1, s)))->limit, 100u);
  ScanRequest zero{ObjectId::Min(), ObjectId::Max(), 0};
  EXPECT_FALSE(DecodeScanRequest(Body(EncodeScanRequest(1, zero))).ok());

  RepairStatus st;
  st.node_id = "n1";
  st.pulled_bytes = 12345;
  st.left = 1;
  st.hints_pending = 7;
  st.hints_handed_off = 9;
  auto st2 = DecodeRepairStatus(Body(EncodeRepairStatus(1, st)));
  ASSERT_TRUE(st2.ok());
  EXPECT_EQ(st2->pulled_bytes, 12345u);
  EXPECT_EQ(st2->left, 1u);
  EXPECT_EQ(st2->hints_pending, 7u);
  EXPECT_EQ(st2->hints_handed_off, 9u);
}

TEST(SyncMessagesTest, OutOfRangeFieldsAreRefusedAndGarbageNeverCrashes) {
  SyncTreeRequest bad_level{{1, 3, "a"}, 3, {0}};
  EXPECT_FALSE(DecodeSyncTreeRequest(Body(EncodeSyncTreeRequest(1, bad_level))).ok());
  SyncTreeRequest bad_index{{1, 3, "a"}, 0, {4096}};
  EXPECT_FALSE(DecodeSyncTreeRequest(Body(EncodeSyncTreeRequest(1, bad_index))).ok());
  SyncTreeRequest bad_n{{1, 0, "a"}, 0, {0}};
  EXPECT_FALSE(DecodeSyncTreeRequest(Body(EncodeSyncTreeRequest(1, bad_n))).ok());

  SyncKeysReply kr;
  kr.done = {1, 2};
  for (int i = 0; i < 20; ++i) kr.entries.push_back(Version(i));
  const std::string good(Body(EncodeSyncKeysReply(1, kr)));
  std::mt19937 rng(5);
  for (int round = 0; round < 3000; ++round) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    (void)DecodeSyncKeysReply(b);
    (void)DecodeSyncTreeRequest(b);
    (void)DecodeSyncHaveRequest(b);
    (void)DecodeScanReply(b);
    (void)DecodeRepairStatus(b);
  }
}

TEST(SyncMessagesTest, AnOfferWithoutPlacedFlagsIsStillUnderstood) {
  // A peer of before the placed field (one field: the versions) offers nothing as placed.
  SyncHaveRequest h;
  h.entries.push_back(Version(1));
  const std::string full(Body(EncodeSyncHaveRequest(1, h)));
  // The versions' bytes are those of the full message after its two array headers.
  const std::string body = [&] {
    std::string body = full.substr(1);  // drop the outer array(2) header
    body.resize(body.size() - 1);       // and the empty placed array at the end
    return "\x91" + body;             // array(1)
  }();
  auto old = DecodeSyncHaveRequest(body);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->entries.size(), 1u);
  EXPECT_TRUE(old->placed.empty());
  // More flags than entries is malformed.
  SyncHaveRequest more;
  more.entries.push_back(Version(1));
  more.placed = {true};
  std::string b(Body(EncodeSyncHaveRequest(1, more)));
  ASSERT_EQ(b.substr(b.size() - 2), std::string("\x91\xc3"));
  b.replace(b.size() - 2, 2, "\x92\xc3\xc3");
  EXPECT_FALSE(DecodeSyncHaveRequest(b).ok());
}

TEST(SyncMessagesTest, ASyncGetRoundTripsWithAbsentRecords) {
  SyncGetRequest g;
  for (int i = 0; i < 3; ++i) g.ids.push_back(Version(i).id);
  auto g2 = DecodeSyncGetRequest(Body(EncodeSyncGetRequest(5, g)));
  ASSERT_TRUE(g2.ok()) << g2.status().ToString();
  EXPECT_EQ(g2->ids, g.ids);

  SyncGetReply r;
  r.records.push_back(Record::Value(7, "seven"));
  r.records.push_back(std::nullopt);  // not held there
  Record dead = Record::Tombstone(9);
  r.records.push_back(dead);
  Record damaged = Record::Value(11, "eleven");
  damaged.value[0] = 'E';  // passed on as stored: the asker checks it
  r.records.push_back(damaged);
  auto r2 = DecodeSyncGetReply(Body(EncodeSyncGetReply(5, r)));
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  ASSERT_EQ(r2->records.size(), 4u);
  ASSERT_TRUE(r2->records[0].has_value());
  EXPECT_EQ(r2->records[0]->value, "seven");
  EXPECT_EQ(r2->records[0]->meta.ts, 7u);
  EXPECT_TRUE(r2->records[0]->Intact());
  EXPECT_FALSE(r2->records[1].has_value());
  ASSERT_TRUE(r2->records[2].has_value());
  EXPECT_TRUE(r2->records[2]->meta.tombstone());
  ASSERT_TRUE(r2->records[3].has_value());
  EXPECT_FALSE(r2->records[3]->Intact());
}

TEST(SyncMessagesTest, ASyncGetOfTooManyIdsOrABadIdIsRefused) {
  SyncGetRequest g;
  for (size_t i = 0; i <= kMaxSyncGetIds; ++i) g.ids.push_back(Version(static_cast<int>(i)).id);
  // The encoder sends at most the limit; a body of more is refused.
  EXPECT_EQ(DecodeSyncGetRequest(Body(EncodeSyncGetRequest(1, g)))->ids.size(), kMaxSyncGetIds);
  std::string over = "\x91\xdc";  // array(1) of array16(kMaxSyncGetIds + 1)
  over.push_back(static_cast<char>((kMaxSyncGetIds + 1) >> 8));
  over.push_back(static_cast<char>((kMaxSyncGetIds + 1) & 0xff));
  for (size_t i = 0; i <= kMaxSyncGetIds; ++i) over += "\xc4\x20" + std::string(32, 'i');
  EXPECT_FALSE(DecodeSyncGetRequest(over).ok());
  EXPECT_FALSE(DecodeSyncGetRequest(std::string("\x91\x91\xc4\x03" "abc")).ok()) << "an id of 3 bytes";
  EXPECT_FALSE(DecodeSyncGetReply(std::string("\x91\x91\x93\x01\x02\x03")).ok()) << "a record of 3 fields";
}

}  // namespace
}  // namespace ringstore
