#include "node/node_core.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "dht/client.h"
#include "storage/fault_injecting_store.h"
#include "storage/memory_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_network.h"
#include "tests/support/null_log.h"

namespace ringstore {
namespace {

using testing::FakeClock;
using testing::FakeNetwork;
using testing::FakeTransport;

using testing::NullLog;

// A peer that speaks raw bytes and records what comes back.
class RawPeer final : public TransportHandler {
 public:
  RawPeer(FakeNetwork& net, const std::string& address) : transport_(net, "") {
    transport_.SetHandler(this);
    conn_ = transport_.Connect(address);
  }
  void Send(const std::string& bytes) { transport_.SendRaw(conn_, bytes); }
  void Hello(const std::string& cluster = "ringstore") {
    Send(EncodeHello(Kind::kHello, 1, ringstore::Hello{cluster, kProtocolVersion, {}, ""}));
  }
  void OnAccepted(ConnId, const std::string&) override {}
  void OnConnected(ConnId) override {}
  void OnFrame(ConnId, Frame f) override { frames.push_back(std::move(f)); }
  void OnStreamError(ConnId, const Status&) override {}
  void OnClosed(ConnId, const Status&) override { closed = true; }
  // The last reply, decoded as an error.
  Status LastError() const {
    if (frames.empty() || frames.back().header.kind != static_cast<uint16_t>(Kind::kError)) {
      return Status::Ok();
    }
    auto e = DecodeError(frames.back().body);
    return e.ok() ? e->ToStatus() : e.status();
  }

  std::vector<Frame> frames;
  bool closed = false;

 private:
  FakeTransport transport_;
  ConnId conn_;
};

class NodeCoreTest : public ::testing::Test {
 protected:
  NodeCoreTest() : node_(Options(), clock_, node_transport_, store_, NullLog()) {}
  static NodeOptions Options() {
    NodeOptions o;
    o.node_id = "00112233445566778899aabbccddeeff";
    o.max_in_flight_per_conn = 8;
    return o;
  }
  void SetUp() override {
    node_.Start();
    ASSERT_TRUE(Connect(client_, "node:1").ok());
  }
  Status Connect(Client& c, const std::string& address) {
    std::optional<Status> out;
    c.Connect(address, [&](Status s) { out = s; });
    net_.RunUntilIdle();
    return out.value_or(Status::Timeout("no answer"));
  }
  template <typename T>
  Result<T> Call(const std::function<void(std::function<void(Result<T>)>)>& start) {
    std::optional<Result<T>> out;
    start([&](Result<T> r) { out.emplace(std::move(r)); });
    net_.RunUntilIdle();
    if (!out) return Status::Timeout("no reply");
    return std::move(*out);
  }
  Result<Ack> Put(const std::string& key, const std::string& value) {
    return Call<Ack>([&](auto cb) { client_.Put(ObjectId::Of("t", key), value, cb); });
  }
  Result<Record> Get(const std::string& key) {
    return Call<Record>([&](auto cb) { client_.Get(ObjectId::Of("t", key), cb); });
  }

  FakeNetwork net_;
  FakeClock clock_;
  MemoryStore mem_{net_.executor()};
  FaultInjectingStore store_{mem_};
  FakeTransport node_transport_{net_, "node:1"};
  NodeCore node_;
  FakeTransport client_transport_{net_, ""};
  SeededRandom random_{7};
  Client client_{ClientOptions{}, clock_, client_transport_, random_};
};

TEST_F(NodeCoreTest, PutGetStatDeleteThroughTheClient) {
  EXPECT_EQ(client_.server_node_id(), "00112233445566778899aabbccddeeff");
  auto ack = Put("k", "value");
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  auto rec = Get("k");
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_EQ(rec->value, "value");
  EXPECT_EQ(rec->meta.ts, ack->ts);  // the writer's timestamp is the one stored
  auto meta = Call<RecordMeta>([&](auto cb) { client_.Stat(ObjectId::Of("t", "k"), cb); });
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->size, 5u);
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Del(ObjectId::Of("t", "k"), cb); }).ok());
  EXPECT_TRUE(Get("k")->meta.tombstone());
  EXPECT_TRUE(Get("never").status().IsNotFound());
}

TEST_F(NodeCoreTest, TxnAppliesAllOps) {
  Txn txn;
  txn.ops = {{TxnOpType::kPut, ObjectId::Of("t", "x"), "1", {}}, {TxnOpType::kPut, ObjectId::Of("t", "y"), "2", {}}};
  ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Commit(txn, cb); }).ok());
  EXPECT_EQ(Get("x")->value, "1");
  EXPECT_EQ(Get("y")->value, "2");
  EXPECT_EQ(Get("x")->meta.ts, Get("y")->meta.ts);
}

TEST_F(NodeCoreTest, NodeAssignsATimestampWhenTheWriterGivesNone) {
  RawPeer peer(net_, "node:1");
  peer.Hello();
  peer.Send(EncodePut(2, ObjectId::Of("t", "raw"), "v", /*ts=*/0, /*txn_id=*/1));
  net_.RunUntilIdle();
  ASSERT_EQ(peer.frames.size(), 2u);
  ASSERT_EQ(peer.frames[1].header.kind, static_cast<uint16_t>(Kind::kAck));
  EXPECT_GT(DecodeAck(peer.frames[1].body)->ts, 0u);
}

TEST_F(NodeCoreTest, WritesStampedFarInTheFutureAreRefused) {
  RawPeer peer(net_, "node:1");
  peer.Hello();
  const uint64_t now_ms = static_cast<uint64_t>(clock_.WallMicros() / 1000);
  peer.Send(EncodePut(2, ObjectId::Of("t", "f"), "v", MakeTimestamp(now_ms + 3'600'000, 0), 1));
  peer.Send(EncodePut(3, ObjectId::Of("t", "g"), "v", MakeTimestamp(now_ms + 1'000, 0), 1));
  net_.RunUntilIdle();
  ASSERT_EQ(peer.frames.size(), 3u);
  auto e = DecodeError(peer.frames[1].body);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->code, Code::kInvalidArgument);
  EXPECT_NE(e->message.find("ahead of this node's clock"), std::string::npos);
  EXPECT_EQ(peer.frames[2].header.kind, static_cast<uint16_t>(Kind::kAck));  // modest skew is fine
  EXPECT_TRUE(Get("f").status().IsNotFound());
}

TEST_F(NodeCoreTest, NothingIsServedAfterARefusedHandshake) {
  // A wrong HELLO and a PUT arrive in one packet: the PUT must not be applied.
  RawPeer peer(net_, "node:1");
  peer.Send(EncodeHello(Kind::kHello, 1, Hello{"wrong-cluster", kProtocolVersion, {}, ""}) +
            EncodeHello(Kind::kHello, 2, Hello{"ringstore", kProtocolVersion, {}, ""}) +
            EncodePut(3, ObjectId::Of("t", "sneaky"), "v", 0, 1));
  net_.RunUntilIdle();
  EXPECT_TRUE(peer.closed);
  EXPECT_EQ(peer.frames.size(), 1u);
  EXPECT_TRUE(Get("sneaky").status().IsNotFound());
}

TEST_F(NodeCoreTest, StrangersMaySendOnlySmallFramesUntilTheirHelloIsAccepted) {
  RawPeer peer(net_, "node:1");
  // A header claiming 1 MiB before any HELLO: refused before any body byte is buffered.
  std::string big = EncodePut(1, ObjectId::Of("t", "k"), std::string(1 << 20, 'x'), 1, 1);
  peer.Send(big.substr(0, kFrameHeaderBytes));
  net_.RunUntilIdle();
  EXPECT_EQ(peer.LastError().code(), Code::kTooLarge);
  EXPECT_TRUE(peer.closed);
  // A big frame pipelined right behind the HELLO, in the same packet, is judged by the limit
  // that holds once the HELLO is accepted.
  RawPeer pipelined(net_, "node:1");
  pipelined.Send(EncodeHello(Kind::kHello, 1, Hello{"ringstore", kProtocolVersion, {}, ""}) + big);
  net_.RunUntilIdle();
  ASSERT_EQ(pipelined.frames.size(), 2u);
  EXPECT_EQ(pipelined.frames[1].header.kind, static_cast<uint16_t>(Kind::kAck));
  // After the handshake the same frame is fine.
  RawPeer ok(net_, "node:1");
  ok.Hello();
  net_.RunUntilIdle();
  ok.Send(big);
  net_.RunUntilIdle();
  ASSERT_EQ(ok.frames.size(), 2u);
  EXPECT_EQ(ok.frames[1].header.kind, static_cast<uint16_t>(Kind::kAck));
}

TEST_F(NodeCoreTest, HandshakeIsRequiredFirst) {
  RawPeer peer(net_, "node:1");
  peer.Send(EncodeKeyRequest(Kind::kGet, 5, ObjectId::Of("t", "k")));
  net_.RunUntilIdle();
  EXPECT_EQ(peer.LastError().code(), Code::kRefused);
  EXPECT_TRUE(peer.closed);
}

TEST_F(NodeCoreTest, WrongClusterIsRefusedOnBothSides) {
  FakeTransport t(net_, "");
  ClientOptions o;
  o.cluster_id = "other";
  Client other(o, clock_, t, random_);
  Status s = Connect(other, "node:1");
  EXPECT_EQ(s.code(), Code::kRefused);
  EXPECT_NE(s.message().find("cluster id mismatch"), std::string::npos) << s.ToString();
  EXPECT_EQ(node_.stats().handshakes_refused, 1u);
  EXPECT_EQ(t.open_connections(), 0u);
}

// Each class of malformed input gets an error reply; broken framing also closes the
// connection. The node keeps serving everyone else.
TEST_F(NodeCoreTest, MalformedFramesGetErrorsAndTheNodeStaysUp) {
  struct Case {
    const char* name;
    std::string bytes;
    Code code;
    bool closes;
  };
  std::string bad_magic = EncodeKeyRequest(Kind::kGet, 3, ObjectId::Of("t", "k"));
  bad_magic[1] ^= 0x55;
  std::string oversized = EncodeKeyRequest(Kind::kGet, 3, ObjectId::Of("t", "k"));
  oversized[19] = '\x40';  // body length of 1 GiB
  std::string bad_sum = EncodePut(3, ObjectId::Of("t", "k"), "value", 1, 1);
  bad_sum[bad_sum.size() - 3] ^= 1;
  std::string truncated_body = EncodePut(3, ObjectId::Of("t", "k"), "value", 1, 1);
  {  // a well-framed PUT whose msgpack body stops short
    std::string body = truncated_body.substr(kFrameHeaderBytes, 20);
    truncated_body = EncodeFrame(static_cast<uint16_t>(Kind::kPut), 3, body);
  }
  msgpack::sbuffer wrong;
  msgpack::packer<msgpack::sbuffer>(wrong).pack(std::make_tuple(std::string("id-as-string")));
  const std::string wrong_types = EncodeFrame(static_cast<uint16_t>(Kind::kGet), 3, std::string(wrong.data(), wrong.size()));
  const std::string unknown_kind = EncodeFrame(999, 3, "");
  const std::string reply_kind = EncodeAck(3, Ack{1});

  const std::vector<Case> cases = {
      {"bad magic", bad_magic, Code::kProtocolError, true},
      {"oversized length", oversized, Code::kTooLarge, true},
      {"checksum mismatch", bad_sum, Code::kCorruption, true},
      {"truncated body", truncated_body, Code::kProtocolError, false},
      {"wrong types", wrong_types, Code::kProtocolError, false},
      {"unknown kind", unknown_kind, Code::kProtocolError, false},
      {"reply kind sent to node", reply_kind, Code::kProtocolError, false},
  };
  for (const auto& c : cases) {
    RawPeer peer(net_, "node:1");
    peer.Hello();
    net_.RunUntilIdle();
    peer.Send(c.bytes);
    net_.RunUntilIdle();
    ASSERT_GE(peer.frames.size(), 2u) << c.name;
    EXPECT_EQ(peer.LastError().code(), c.code) << c.name << ": " << peer.LastError().ToString();
    EXPECT_EQ(peer.closed, c.closes) << c.name;
    // Broken framing is answered with request id 0; a bad message with its own id.
    EXPECT_EQ(peer.frames.back().header.request_id, c.closes ? 0u : 3u) << c.name;
    if (!c.closes) {  // the same connection still works
      peer.Send(EncodeKeyRequest(Kind::kStat, 4, ObjectId::Of("t", "nope")));
      net_.RunUntilIdle();
      EXPECT_EQ(peer.LastError().code(), Code::kNotFound) << c.name;
    }
    ASSERT_TRUE(Put("alive", c.name).ok()) << "node stopped serving after: " << c.name;
  }
  EXPECT_EQ(node_.stats().stream_errors, 3u);
}

TEST_F(NodeCoreTest, StoreWriteFailureIsReportedNotAcknowledged) {
  store_.FailNextWrites(1);
  auto ack = Put("k", "v");
  EXPECT_EQ(ack.status().code(), Code::kIOError);
  EXPECT_TRUE(Get("k").status().IsNotFound());
}

TEST_F(NodeCoreTest, CorruptReadIsNeverServed) {
  ASSERT_TRUE(Put("k", "the real bytes").ok());
  store_.CorruptNextReads(1);
  auto r = Get("k");
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_EQ(node_.stats().corruptions, 1u);
  EXPECT_EQ(Get("k")->value, "the real bytes");
}

TEST_F(NodeCoreTest, CachedReadsAreAnsweredAtOnceAndStillVerified) {
  mem_.set_cached_reads(true);
  ASSERT_TRUE(Put("k", "cached bytes").ok());
  EXPECT_EQ(Get("k")->value, "cached bytes");
  EXPECT_TRUE(Get("missing").status().IsNotFound());
  store_.CorruptNextReads(1);
  auto r = Get("k");
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_EQ(node_.stats().corruptions, 1u);
  EXPECT_EQ(node_.stats().in_flight, 0u);
  EXPECT_EQ(Get("k")->value, "cached bytes");
}

TEST_F(NodeCoreTest, InFlightRequestsAreBounded) {
  RawPeer peer(net_, "node:1");
  peer.Hello();
  net_.RunUntilIdle();
  for (uint64_t i = 0; i < 12; ++i) peer.Send(EncodeKeyRequest(Kind::kStat, 10 + i, ObjectId::Of("t", "k")));
  net_.RunUntilIdle();
  int busy = 0, answered = 0;
  for (const auto& f : peer.frames) {
    if (f.header.request_id < 10) continue;
    auto e = DecodeError(f.body);
    if (e.ok() && e->code == Code::kBusy) ++busy;
    ++answered;
  }
  EXPECT_EQ(answered, 12);  // every request gets exactly one reply
  EXPECT_EQ(busy, 4);       // bound is 8 per connection
}

TEST_F(NodeCoreTest, ShutdownFinishesInFlightWorkThenClosesTheStore) {
  std::optional<Result<Ack>> ack;
  client_.Put(ObjectId::Of("t", "k"), "v", [&](Result<Ack> r) { ack.emplace(std::move(r)); });
  net_.RunOne();  // the node receives the PUT and hands it to the store
  ASSERT_EQ(node_.stats().in_flight, 1u);
  bool stopped = false;
  node_.Shutdown([&](Status s) { stopped = s.ok(); });
  EXPECT_FALSE(stopped);
  net_.RunUntilIdle();
  EXPECT_TRUE(stopped);
  ASSERT_TRUE(ack.has_value());
  EXPECT_TRUE(ack->ok()) << ack->status().ToString();
  EXPECT_EQ(Get("k").status().code(), Code::kShuttingDown);
}

TEST_F(NodeCoreTest, ClientTimesOutWhenNoReplyComes) {
  FakeTransport hole(net_, "hole:1");  // accepts, never answers
  FakeTransport t(net_, "");
  ClientOptions o;
  o.connect_timeout = std::chrono::seconds(2);
  Client c(o, clock_, t, random_);
  std::optional<Status> out;
  c.Connect("hole:1", [&](Status s) { out = s; });
  net_.RunUntilIdle();
  EXPECT_FALSE(out.has_value());
  clock_.Advance(std::chrono::seconds(3));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->code(), Code::kTimeout);
}

TEST_F(NodeCoreTest, UnreachableNodeIsUnavailable) {
  FakeTransport t(net_, "");
  Client c(ClientOptions{}, clock_, t, random_);
  EXPECT_EQ(Connect(c, "nobody:1").code(), Code::kUnavailable);
}

TEST_F(NodeCoreTest, ClientDisconnectingMidRequestLeavesNoTrace) {
  client_.Put(ObjectId::Of("t", "k"), "v", [](Result<Ack>) {});
  net_.RunOne();
  client_transport_.Close(1);  // the client's first connection id
  net_.RunUntilIdle();
  EXPECT_EQ(node_.stats().in_flight, 0u);
  EXPECT_EQ(node_.stats().connections, 0u);
}

}  // namespace
}  // namespace ringstore
