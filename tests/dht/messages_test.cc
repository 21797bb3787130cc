#include "dht/messages.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "dht/random.h"

namespace ringstore {
namespace {

// Decodes a whole encoded frame and returns its body.
Frame Parse(const std::string& encoded) {
  FrameDecoder d;
  EXPECT_TRUE(d.Feed(encoded.data(), encoded.size()).ok());
  EXPECT_TRUE(d.HasFrame());
  return d.Next();
}

// Packs an arbitrary msgpack array body (for building malformed messages).
template <typename... Ts>
std::string Body(const Ts&... fields) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(sizeof...(Ts));
  (pk.pack(fields), ...);
  return std::string(buf.data(), buf.size());
}

msgpack::type::raw_ref BinRef(const std::string& s) { return {s.data(), static_cast<uint32_t>(s.size())}; }

const ObjectId kId = ObjectId::Of("ns", "key");

TEST(MessagesTest, HelloRoundTrips) {
  Hello h{"cluster-a", kProtocolVersion, {"txn", "pipelining"}, "abcd"};
  Frame f = Parse(EncodeHello(Kind::kHello, 7, h));
  EXPECT_EQ(f.header.kind, static_cast<uint16_t>(Kind::kHello));
  EXPECT_EQ(f.header.request_id, 7u);
  auto back = DecodeHello(f.body);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->cluster_id, "cluster-a");
  EXPECT_EQ(back->features, h.features);
  EXPECT_EQ(back->node_id, "abcd");
}

TEST(MessagesTest, DiskUsageRoundTripsAndMergeOpsDecode) {
  Frame f = Parse(EncodeDiskUsage(9, DiskUsage{1ull << 40, 12345, "host:77"}));
  EXPECT_EQ(f.header.kind, static_cast<uint16_t>(Kind::kDiskUsageReply));
  auto d = DecodeDiskUsage(f.body);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->capacity_bytes, 1ull << 40);
  EXPECT_EQ(d->free_bytes, 12345u);
  EXPECT_EQ(d->disk_id, "host:77");
  EXPECT_FALSE(DecodeDiskUsage(Body(1, 2)).ok());
  Txn t;
  t.txn_id = 3;
  t.ts = 4;
  t.ops.push_back(TxnOp{TxnOpType::kMerge, kId, "map bytes", {}});
  auto back = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(1, t)).body);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ops[0].type, TxnOpType::kMerge);
}

TEST(MessagesTest, WritesRoundTripAsTxns) {
  auto put = DecodeWrite(Kind::kPut, Parse(EncodePut(1, kId, "value", 99, 5)).body);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->ts, 99u);
  EXPECT_EQ(put->txn_id, 5u);
  ASSERT_EQ(put->ops.size(), 1u);
  EXPECT_EQ(put->ops[0].type, TxnOpType::kPut);
  EXPECT_EQ(put->ops[0].id, kId);
  EXPECT_EQ(put->ops[0].value, "value");

  auto del = DecodeWrite(Kind::kDel, Parse(EncodeDel(2, kId, 100, 6)).body);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->ops[0].type, TxnOpType::kDel);
  EXPECT_EQ(del->ts, 100u);

  Txn txn{77, 101, {{TxnOpType::kPut, kId, "a", {}}, {TxnOpType::kDel, ObjectId::Of("ns", "k2"), "", {}}}};
  auto back = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(3, txn)).body);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->txn_id, 77u);
  ASSERT_EQ(back->ops.size(), 2u);
  EXPECT_EQ(back->ops[1].type, TxnOpType::kDel);
  EXPECT_EQ(back->ops[1].id, ObjectId::Of("ns", "k2"));
}

TEST(MessagesTest, RouteNTravelsOnlyWhenGiven) {
  uint32_t n = 99;
  auto plain = DecodeKeyRequest(Parse(EncodeKeyRequest(Kind::kGet, 1, kId)).body, &n);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(n, 0u);
  auto routed = DecodeKeyRequest(Parse(EncodeKeyRequest(Kind::kStat, 2, kId, 3)).body, &n);
  ASSERT_TRUE(routed.ok()) << routed.status().ToString();
  EXPECT_EQ(*routed, kId);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(DecodeKeyRequest(Body(BinRef(std::string(kId.AsStringView())), std::string("x")), &n).status().code(),
            Code::kProtocolError);

  Txn txn{7, 8, {{TxnOpType::kPut, kId, "a", {}}}};
  auto old_form = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(3, txn)).body);
  ASSERT_TRUE(old_form.ok());
  EXPECT_EQ(old_form->route_n, 0u);
  txn.route_n = 2;
  auto routed_txn = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(4, txn)).body);
  ASSERT_TRUE(routed_txn.ok()) << routed_txn.status().ToString();
  EXPECT_EQ(routed_txn->route_n, 2u);
  EXPECT_EQ(routed_txn->ops[0].value, "a");
}

TEST(MessagesTest, ATxnCarriesTheReplicaCountItsRecordsKeep) {
  Txn txn{7, 8, {{TxnOpType::kPut, kId, "a", {}}}};
  txn.replicas = 3;  // without route_n: it is sent as 0 before the count
  auto back = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(1, txn)).body);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->route_n, 0u);
  EXPECT_EQ(back->replicas, 3u);
  txn.route_n = 1;
  back = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(2, txn)).body);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->route_n, 1u);
  EXPECT_EQ(back->replicas, 3u);
  txn.replicas = 0;
  back = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(3, txn)).body);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->replicas, 0u);
  txn.replicas = 256;  // does not fit the record's 8 bits
  EXPECT_EQ(DecodeWrite(Kind::kTxn, Parse(EncodeTxn(4, txn)).body).status().code(), Code::kProtocolError);

  // A copy of a stored record (repair, hints) asks for the N the record carries.
  Record r = Record::Value(5, "v");
  r.meta.set_replicas(2);
  EXPECT_EQ(CopyRecordTxn(ObjectKey(kId), r).replicas, 2u);
}

TEST(MessagesTest, ObjectNamesTravelWithEveryRequestThatNamesAnObject) {
  const ObjectKey key = ObjectKey::Of("photos", std::string("cat\0.jpg", 8));  // keys are bytes
  auto put = DecodeWrite(Kind::kPut, Parse(EncodePut(1, key, "v", 9, 5)).body);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_TRUE(put->ops[0].name.known);
  EXPECT_EQ(put->ops[0].name.ns, "photos");
  EXPECT_EQ(put->ops[0].name.key, key.name.key);
  EXPECT_TRUE(put->ops[0].name.Names(put->ops[0].id));
  EXPECT_EQ(put->txn_id, 5u);

  auto del = DecodeWrite(Kind::kDel, Parse(EncodeDel(2, key, 9, 6)).body);
  ASSERT_TRUE(del.ok()) << del.status().ToString();
  EXPECT_TRUE(del->ops[0].name.Names(kId) == false && del->ops[0].name.Names(key.id));

  Txn txn{7, 8, {{TxnOpType::kPut, key.id, "a", key.name}, {TxnOpType::kDel, kId, "", {}}}};
  txn.route_n = 3;
  auto t = DecodeWrite(Kind::kTxn, Parse(EncodeTxn(3, txn)).body);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->ops[0].name.Names(key.id));
  EXPECT_FALSE(t->ops[1].name.known);  // an op without a name stays without one
  EXPECT_EQ(t->route_n, 3u);

  // GET and STAT carry route_n (0: not given) before the name.
  for (uint32_t route_n : {0u, 2u}) {
    uint32_t n = 99;
    ObjectName name;
    auto id = DecodeKeyRequest(Parse(EncodeKeyRequest(Kind::kGet, 4, key, route_n)).body, &n, &name);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, key.id);
    EXPECT_EQ(n, route_n);
    EXPECT_TRUE(name.Names(key.id));
  }
  ObjectName none;
  ASSERT_TRUE(DecodeKeyRequest(Parse(EncodeKeyRequest(Kind::kGet, 5, kId, 2)).body, nullptr, &none).ok());
  EXPECT_FALSE(none.known);

  // A name over the bound is not sent: the request goes by id, as before names were sent.
  const ObjectKey huge = ObjectKey::Of("ns", std::string(kMaxObjectNameBytes, 'k'));
  auto unnamed = DecodeWrite(Kind::kPut, Parse(EncodePut(6, huge, "v", 1, 1)).body);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status().ToString();
  EXPECT_EQ(unnamed->ops[0].id, huge.id);
  EXPECT_FALSE(unnamed->ops[0].name.known);
  ObjectName over;
  ASSERT_TRUE(DecodeKeyRequest(Parse(EncodeKeyRequest(Kind::kGet, 7, huge)).body, nullptr, &over).ok());
  EXPECT_FALSE(over.known);
  // One that arrives anyway is refused; the fields are typed.
  const std::string raw(kId.AsStringView());
  msgpack::sbuffer big;
  msgpack::packer<msgpack::sbuffer> bpk(big);
  bpk.pack_array(4);
  bpk.pack_bin(32);
  bpk.pack_bin_body(raw.data(), 32);
  bpk.pack_uint32(0);
  bpk.pack_bin(2);
  bpk.pack_bin_body("ns", 2);
  const std::string long_key(kMaxObjectNameBytes, 'k');
  bpk.pack_bin(static_cast<uint32_t>(long_key.size()));
  bpk.pack_bin_body(long_key.data(), static_cast<uint32_t>(long_key.size()));
  EXPECT_EQ(DecodeKeyRequest(std::string_view(big.data(), big.size()), nullptr, &over).status().code(), Code::kTooLarge);
  EXPECT_EQ(DecodeKeyRequest(Body(BinRef(raw), 0, std::string("ns"), std::string("k")), nullptr, &none).status().code(),
            Code::kProtocolError);
}

TEST(MessagesTest, ANameNamesOnlyTheIdItHashesTo) {
  const ObjectKey key = ObjectKey::Of("a", "b");
  EXPECT_TRUE(key.name.Names(ObjectId::Of("a", "b")));
  EXPECT_FALSE(key.name.Names(ObjectId::Of("a", "c")));
  EXPECT_FALSE(ObjectName{}.Names(ObjectId::Of("", "")));  // not given
  // "x\0y" + "\0" + "z" hashes like namespace "x" with key "y\0z": a namespace holding NUL
  // names nothing, so a namespace check cannot be dodged by moving the split.
  const ObjectName shifted{std::string("x\0y", 3), "z", true};
  EXPECT_FALSE(shifted.Names(ObjectId::Of("x", std::string("y\0z", 3))));
  EXPECT_FALSE(ObjectKey(kId).name.known);
}

TEST(MessagesTest, RepliesRoundTrip) {
  EXPECT_EQ(DecodeAck(Parse(EncodeAck(1, Ack{1234})).body)->ts, 1234u);
  auto err = DecodeError(Parse(EncodeError(1, Status::NotFound("gone"))).body);
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(err->ToStatus(), Status::NotFound("gone"));

  Record r = Record::Value(555, "bytes");
  auto get = DecodeRecordReply(Kind::kGetReply, Parse(EncodeRecordReply(Kind::kGetReply, 1, r)).body);
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->value, "bytes");
  EXPECT_EQ(get->meta.ts, 555u);
  EXPECT_EQ(get->meta.checksum, r.meta.checksum);
  auto stat = DecodeRecordReply(Kind::kStatReply, Parse(EncodeRecordReply(Kind::kStatReply, 1, r)).body);
  ASSERT_TRUE(stat.ok());
  EXPECT_TRUE(stat->value.empty());
  EXPECT_EQ(stat->meta.size, 5u);
  auto tomb = DecodeRecordReply(Kind::kGetReply, Parse(EncodeRecordReply(Kind::kGetReply, 1, Record::Tombstone(9))).body);
  ASSERT_TRUE(tomb.ok());
  EXPECT_TRUE(tomb->meta.tombstone());
}

TEST(MessagesTest, ARelayedRecordReplySaysWhereItCameFrom) {
  Record r = Record::Value(555, "bytes");
  for (Kind kind : {Kind::kGetReply, Kind::kStatReply}) {
    std::string from = "stale";
    auto own = DecodeRecordReply(kind, Parse(EncodeRecordReply(kind, 1, r)).body, &from);
    ASSERT_TRUE(own.ok());
    EXPECT_EQ(from, "") << "a node's own answer names no source";
    auto relayed = DecodeRecordReply(kind, Parse(EncodeRecordReply(kind, 1, r, "10.0.0.7:7400")).body, &from);
    ASSERT_TRUE(relayed.ok()) << relayed.status().ToString();
    EXPECT_EQ(from, "10.0.0.7:7400");
    EXPECT_EQ(relayed->meta.ts, 555u);
    if (kind == Kind::kGetReply) {
      EXPECT_EQ(relayed->value, "bytes");
    }
  }
  // A decoder that does not ask for the source still reads the record (a trailing field).
  auto plain = DecodeRecordReply(Kind::kGetReply, Parse(EncodeRecordReply(Kind::kGetReply, 1, r, "n:1")).body);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->value, "bytes");
  // A source that is not a string is a protocol error.
  std::string body = Parse(EncodeRecordReply(Kind::kStatReply, 1, r)).body;
  ASSERT_EQ(static_cast<uint8_t>(body[0]), 0x95u);  // fixarray of 5
  body[0] = static_cast<char>(0x96);
  body += '\x07';  // positive fixint
  std::string from;
  EXPECT_EQ(DecodeRecordReply(Kind::kStatReply, body, &from).status().code(), Code::kProtocolError);
}

TEST(MessagesTest, AGetReplyInTwoBuffersIsTheSameFrame) {
  for (const Record& r : {Record::Value(555, std::string(300000, 'x')), Record::Value(7, ""), Record::Tombstone(9)}) {
    const std::string joined = EncodeRecordReply(Kind::kGetReply, 3, r);
    const SharedFrame split = EncodeGetReply(3, r);
    ASSERT_NE(split.value, nullptr);
    EXPECT_EQ(*split.value, r.value);
    EXPECT_EQ(split.head + *split.value + split.tail, joined) << r.value.size() << " bytes";
    // And relayed, with its source after the value.
    const SharedFrame relayed = EncodeGetReply(3, r, "node7:7400");
    EXPECT_EQ(relayed.head + *relayed.value + relayed.tail, EncodeRecordReply(Kind::kGetReply, 3, r, "node7:7400"));
  }
}

TEST(MessagesTest, ATxnFrameSharingItsValueIsTheSameFrame) {
  auto txn_of = [](std::vector<TxnOp> ops, uint32_t route_n, uint32_t replicas) {
    auto t = std::make_shared<Txn>();
    t->txn_id = 77;
    t->ts = 1234;
    t->ops = std::move(ops);
    t->route_n = route_n;
    t->replicas = replicas;
    return t;
  };
  const ObjectName named{"vol", "chunk-7", true};
  const std::string big(kSharedValueBytes, 'v'), small(kSharedValueBytes - 1, 's');
  for (const auto& [route_n, replicas] : {std::pair{0u, 0u}, {3u, 0u}, {3u, 3u}}) {
    for (const ObjectName& name : {ObjectName{}, named}) {
      // One op with a large value: the frame's middle is that value, not a copy of it.
      auto t = txn_of({TxnOp{TxnOpType::kPut, kId, big, name}}, route_n, replicas);
      SharedFrame f = EncodeTxnShared(9, t);
      ASSERT_NE(f.value, nullptr);
      EXPECT_EQ(f.value.get(), &t->ops[0].value);
      EXPECT_EQ(f.head + *f.value + f.tail, EncodeTxn(9, *t)) << route_n << " " << replicas << " " << name.known;
      // A small value, or two ops: the whole frame in head.
      for (auto whole : {txn_of({TxnOp{TxnOpType::kPut, kId, small, name}}, route_n, replicas),
                         txn_of({TxnOp{TxnOpType::kPut, kId, big, name}, TxnOp{TxnOpType::kDel, kId, {}, name}},
                                route_n, replicas)}) {
        f = EncodeTxnShared(9, whole);
        EXPECT_EQ(f.value, nullptr);
        EXPECT_TRUE(f.tail.empty());
        EXPECT_EQ(f.head, EncodeTxn(9, *whole));
      }
    }
  }
}

TEST(MessagesTest, GetReplyWhoseBytesFailTheChecksumIsCorruption) {
  Record r = Record::Value(1, "bytes");
  r.value = "bytez";  // damaged after the checksum was taken
  auto get = DecodeRecordReply(Kind::kGetReply, Parse(EncodeRecordReply(Kind::kGetReply, 1, r)).body);
  EXPECT_EQ(get.status().code(), Code::kCorruption);
}

TEST(MessagesTest, MalformedBodiesAreProtocolErrors) {
  const std::string id = std::string(kId.AsStringView());
  struct Case {
    const char* name;
    Kind kind;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"not msgpack", Kind::kPut, "\xc1\xc1\xc1"},
      {"empty body", Kind::kGet, ""},
      {"not an array", Kind::kGet, Body().substr(0, 0) + "\x05"},
      {"too few fields", Kind::kPut, Body(BinRef(id))},
      {"id is a string", Kind::kGet, Body(std::string("not-bin"))},
      {"id too short", Kind::kGet, Body(BinRef(std::string(31, 'x')))},
      {"value is an int", Kind::kPut, Body(BinRef(id), 5, 1, 1)},
      {"ts is negative", Kind::kPut, Body(BinRef(id), BinRef("v"), -1, 1)},
      {"ts is a string", Kind::kDel, Body(BinRef(id), std::string("x"), 1)},
      {"trailing bytes", Kind::kGet, Body(BinRef(id)) + "\x01"},
      {"truncated msgpack", Kind::kPut, Body(BinRef(id), BinRef(std::string(100, 'v')), 1, 1).substr(0, 60)},
      {"txn ops not array", Kind::kTxn, Body(1, 1, 5)},
      {"txn with no ops", Kind::kTxn, Body(1, 1, std::vector<int>{})},
      {"txn op bad type", Kind::kTxn, Body(1, 1, std::vector<std::tuple<int, msgpack::type::raw_ref, msgpack::type::raw_ref>>{{9, BinRef(id), BinRef("")}})},
      {"map instead of array", Kind::kGet, std::string("\x81\x01\x02", 3)},
      {"nesting too deep", Kind::kGet, std::string(40, '\x91')},
  };
  for (const auto& c : cases) {
    Status s;
    if (c.kind == Kind::kGet) {
      s = DecodeKeyRequest(c.body).status();
    } else {
      s = DecodeWrite(c.kind, c.body).status();
    }
    EXPECT_FALSE(s.ok()) << c.name;
    EXPECT_TRUE(s.code() == Code::kProtocolError || s.code() == Code::kInvalidArgument) << c.name << ": " << s.ToString();
  }
}

TEST(MessagesTest, LengthsAreBounded) {
  // An array header claiming 2^32-1 elements must not allocate them.
  EXPECT_FALSE(DecodeKeyRequest(std::string("\xdd\xff\xff\xff\xff", 5)).ok());
  // A bin header claiming 4 GiB with a few bytes behind it.
  EXPECT_FALSE(DecodeKeyRequest(std::string("\x91\xc6\xff\xff\xff\xff", 6)).ok());
  // Too many txn ops.
  const std::string id(kId.AsStringView());  // outlives the raw_refs below
  std::vector<std::tuple<int, msgpack::type::raw_ref, msgpack::type::raw_ref>> ops(
      kMaxTxnOps + 1, {1, BinRef(id), BinRef("")});
  EXPECT_FALSE(DecodeWrite(Kind::kTxn, Body(1, 1, ops)).ok());
  // A long string where a short one belongs.
  EXPECT_FALSE(DecodeHello(Body(std::string(kMaxShortString + 1, 'c'), 1, std::vector<int>{}, std::string())).ok());
}

TEST(MessagesTest, TrailingUnknownFieldsAreIgnored) {
  // Forward compatibility: a newer peer may append fields.
  auto r = DecodeKeyRequest(Body(BinRef(std::string(kId.AsStringView())), 42, std::string("future")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, kId);
}

TEST(MessagesTest, RandomMutationsNeverCrash) {
  // Seeded so a failure replays: flip, truncate and extend valid bodies of every kind.
  SeededRandom rnd(20261121);
  Txn txn{1, 2, {{TxnOpType::kPut, kId, "abc", {}}, {TxnOpType::kDel, kId, "", {}}}};
  const std::vector<std::pair<Kind, std::string>> seeds = {
      {Kind::kHello, Parse(EncodeHello(Kind::kHello, 1, Hello{"c", 1, {"f"}, "n"})).body},
      {Kind::kPut, Parse(EncodePut(1, kId, "value", 3, 4)).body},
      {Kind::kDel, Parse(EncodeDel(1, kId, 3, 4)).body},
      {Kind::kTxn, Parse(EncodeTxn(1, txn)).body},
      {Kind::kGet, Parse(EncodeKeyRequest(Kind::kGet, 1, kId)).body},
      {Kind::kAck, Parse(EncodeAck(1, Ack{5})).body},
      {Kind::kError, Parse(EncodeError(1, Status::Busy("x"))).body},
      {Kind::kGetReply, Parse(EncodeRecordReply(Kind::kGetReply, 1, Record::Value(1, "v"))).body},
  };
  for (int i = 0; i < 50000; ++i) {
    auto [kind, body] = seeds[rnd.Uniform(seeds.size())];
    const int edits = 1 + static_cast<int>(rnd.Uniform(4));
    for (int e = 0; e < edits && !body.empty(); ++e) {
      switch (rnd.Uniform(3)) {
        case 0: body[rnd.Uniform(body.size())] = static_cast<char>(rnd.Next()); break;
        case 1: body.resize(rnd.Uniform(body.size())); break;
        default: body.push_back(static_cast<char>(rnd.Next())); break;
      }
    }
    switch (kind) {
      case Kind::kHello: (void)DecodeHello(body); break;
      case Kind::kPut:
      case Kind::kDel:
      case Kind::kTxn: (void)DecodeWrite(kind, body); break;
      case Kind::kGet: (void)DecodeKeyRequest(body); break;
      case Kind::kAck: (void)DecodeAck(body); break;
      case Kind::kError: (void)DecodeError(body); break;
      default: (void)DecodeRecordReply(kind, body); break;
    }
  }
}

}  // namespace
}  // namespace ringstore
