// NbdSession's transmission phase: every command, range and flag checks, read-only exports,
// oversized writes, out-of-order and pipelined replies, DISC and the in-flight limits.
#include "tests/blockgateway/nbd_test_support.h"

namespace ringstore::block::nbd {
namespace {

using namespace ringstore::block::nbd::testing;

// ---- transmission --------------------------------------------------------------------

TEST(NbdTransmissionTest, RequestsReachTheHookWithTheirFields) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdRead, 0x1111, 4096, 512) + Write(0x2222, 8192, "hello", kCmdFlagFua) + Req(kCmdFlush, 0x3333, 0, 0) +
         Req(kCmdTrim, 0x4444, 100, 200) + Req(kCmdWriteZeroes, 0x5555, 300, 400, kCmdFlagNoHole | kCmdFlagFua));
  ASSERT_EQ(h.requests.size(), 5u);
  const Request& rd = h.requests[0];
  EXPECT_EQ(rd.type, kCmdRead);
  EXPECT_EQ(rd.handle, 0x1111u);
  EXPECT_EQ(rd.offset, 4096u);
  EXPECT_EQ(rd.length, 512u);
  EXPECT_FALSE(rd.fua());
  const Request& wr = h.requests[1];
  EXPECT_EQ(wr.type, kCmdWrite);
  EXPECT_EQ(wr.handle, 0x2222u);
  EXPECT_EQ(wr.offset, 8192u);
  EXPECT_EQ(wr.length, 5u);
  EXPECT_EQ(wr.payload, "hello");
  EXPECT_TRUE(wr.fua());
  EXPECT_EQ(h.requests[2].type, kCmdFlush);
  EXPECT_EQ(h.requests[2].handle, 0x3333u);
  EXPECT_EQ(h.requests[3].type, kCmdTrim);
  EXPECT_EQ(h.requests[3].offset, 100u);
  EXPECT_EQ(h.requests[3].length, 200u);
  EXPECT_EQ(h.requests[4].type, kCmdWriteZeroes);
  EXPECT_EQ(h.requests[4].flags, kCmdFlagNoHole | kCmdFlagFua);
  EXPECT_TRUE(h.requests[4].fua());
  EXPECT_EQ(h.session.in_flight(), 5u);
  EXPECT_EQ(h.Unread(), 0u) << "nothing is answered before the hook replies";

  h.Reply(0x1111, kOk, std::string(512, 'd'));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.error, kOk);
  EXPECT_EQ(r.handle, 0x1111u);
  EXPECT_EQ(h.Bytes(512), std::string(512, 'd'));
  h.Reply(0x2222, kOk);
  r = h.ReadSimple();
  EXPECT_EQ(r.handle, 0x2222u);
  EXPECT_EQ(h.Unread(), 0u) << "a write reply has no payload";
  h.Reply(0x3333, kEio);
  r = h.ReadSimple();
  EXPECT_EQ(r.error, kEio);
  EXPECT_EQ(r.handle, 0x3333u);
  EXPECT_EQ(h.session.in_flight(), 2u);
}

TEST(NbdTransmissionTest, FailedReadSendsNoPayload) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdRead, 9, 0, 512));
  h.Reply(9, kEio, std::string(512, 'x'));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.error, kEio);
  EXPECT_EQ(h.Unread(), 0u);
}

TEST(NbdTransmissionTest, ReplyForUnknownHandleIsIgnored) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdFlush, 1, 0, 0));
  h.Reply(2, kOk);
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_EQ(h.session.in_flight(), 1u);
  h.Reply(1, kOk);
  h.Reply(1, kOk);  // twice: the second is not ours any more
  EXPECT_EQ(h.ReadSimple().handle, 1u);
  EXPECT_EQ(h.Unread(), 0u);
}

TEST(NbdTransmissionTest, OutOfRangeReadIsEinval) {
  Harness h;
  h.Attach("disk");  // 1 MiB
  h.Feed(Req(kCmdRead, 1, (1u << 20) - 511, 512) + Req(kCmdRead, 2, 1u << 20, 1) +
         Req(kCmdRead, 3, ~0ull - 10, 100) /* wraps */ + Req(kCmdRead, 4, (1u << 20) - 512, 512));
  for (uint64_t handle : {1u, 2u, 3u}) {
    SimpleRep r = h.ReadSimple();
    EXPECT_EQ(r.error, kEinval);
    EXPECT_EQ(r.handle, handle);
  }
  ASSERT_EQ(h.requests.size(), 1u) << "the last read is in range, to the byte";
  EXPECT_EQ(h.requests[0].handle, 4u);
}

TEST(NbdTransmissionTest, ReadOverMaxPayloadIsEinval) {
  Harness h;
  h.Attach("big");
  h.Feed(Req(kCmdRead, 1, 0, kMaxPayload + 1) + Req(kCmdRead, 2, 0, kMaxPayload));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.error, kEinval);
  EXPECT_EQ(r.handle, 1u);
  ASSERT_EQ(h.requests.size(), 1u);
  EXPECT_EQ(h.requests[0].handle, 2u);
}

TEST(NbdTransmissionTest, OutOfRangeWriteIsEnospcAndItsPayloadIsConsumed) {
  Harness h;
  h.Attach("disk");
  // The payload looks like a request: if it were not consumed, it would be parsed as one.
  const std::string decoy = Req(kCmdFlush, 666, 0, 0);
  h.Feed(Write(1, (1u << 20) - 10, decoy) + Write(2, ~0ull - 5, decoy) + Req(kCmdFlush, 3, 0, 0));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.error, kEnospc);
  EXPECT_EQ(r.handle, 1u);
  r = h.ReadSimple();
  EXPECT_EQ(r.error, kEnospc);
  EXPECT_EQ(r.handle, 2u);
  ASSERT_EQ(h.requests.size(), 1u);
  EXPECT_EQ(h.requests[0].handle, 3u);
  EXPECT_FALSE(h.session.Done());
}

TEST(NbdTransmissionTest, OutOfRangeTrimIsEinvalAndWriteZeroesEnospc) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdTrim, 1, 1u << 20, 1) + Req(kCmdWriteZeroes, 2, (1u << 20) - 1, 2));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.handle, 1u);
  EXPECT_EQ(r.error, kEinval);
  r = h.ReadSimple();
  EXPECT_EQ(r.handle, 2u);
  EXPECT_EQ(r.error, kEnospc);
  EXPECT_TRUE(h.requests.empty());
}

TEST(NbdTransmissionTest, WriteOverMaxPayloadIsSkippedThenEinval) {
  Harness h;
  h.Attach("big");
  const uint32_t len = kMaxPayload + 1;
  h.Feed(Req(kCmdWrite, 77, 0, len));
  // The payload streams through in pieces; nothing is answered until the last byte.
  const std::string piece(1u << 20, 'p');
  uint64_t left = len;
  while (left > 1) {
    const uint64_t n = std::min<uint64_t>(piece.size(), left - 1);
    h.session.Feed(piece.data(), n);
    left -= n;
    EXPECT_TRUE(h.session.WantsInput());
  }
  h.Collect();
  EXPECT_EQ(h.Unread(), 0u);
  h.Feed("p" + Req(kCmdFlush, 78, 0, 0));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.error, kEinval);
  EXPECT_EQ(r.handle, 77u);
  EXPECT_FALSE(h.session.Done());
  ASSERT_EQ(h.requests.size(), 1u) << "the connection goes on";
  EXPECT_EQ(h.requests[0].handle, 78u);
}

TEST(NbdTransmissionTest, OversizedWriteToReadOnlyExportIsEperm) {
  Harness h;
  h.Attach("ro");
  h.Feed(Req(kCmdWrite, 5, 0, kMaxPayload + 1));
  h.Feed(std::string(kMaxPayload, 'p'));
  EXPECT_EQ(h.Unread(), 0u);
  h.Feed("p" + Req(kCmdRead, 6, 0, 1));
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.error, kEperm);
  EXPECT_EQ(r.handle, 5u);
  ASSERT_EQ(h.requests.size(), 1u);
}

TEST(NbdTransmissionTest, ReadOnlyExportRefusesWritesTrimsAndZeroes) {
  Harness h;
  h.Attach("ro");
  h.Feed(Write(1, 0, "abcd") + Req(kCmdTrim, 2, 0, 10) + Req(kCmdWriteZeroes, 3, 0, 10) + Write(4, 1u << 30, "x") +
         Req(kCmdRead, 5, 0, 10) + Req(kCmdFlush, 6, 0, 0));
  for (uint64_t handle : {1u, 2u, 3u, 4u}) {
    SimpleRep r = h.ReadSimple();
    EXPECT_EQ(r.error, kEperm) << handle;
    EXPECT_EQ(r.handle, handle);
  }
  ASSERT_EQ(h.requests.size(), 2u);
  EXPECT_EQ(h.requests[0].type, kCmdRead);
  EXPECT_EQ(h.requests[1].type, kCmdFlush);
}

TEST(NbdTransmissionTest, UnknownCommandsAndFlagsAreEinval) {
  Harness h;
  h.Attach("disk");
  constexpr uint16_t kDf = 1 << 2, kReqOne = 1 << 3, kFastZero = 1 << 4;
  h.Feed(Req(kCmdCache, 1, 0, 10) + Req(kCmdBlockStatus, 2, 0, 10) + Req(99, 3, 0, 10) +
         Req(kCmdRead, 4, 0, 10, kDf) + Req(kCmdBlockStatus, 5, 0, 10, kReqOne) +
         Req(kCmdWriteZeroes, 6, 0, 10, kFastZero) + Req(kCmdFlush, 7, 0, 0, 0x8000) +
         Write(8, 0, Req(kCmdFlush, 666, 0, 0), kDf) /* payload consumed */ + Req(kCmdFlush, 9, 0, 0));
  for (uint64_t handle = 1; handle <= 8; ++handle) {
    SimpleRep r = h.ReadSimple();
    EXPECT_EQ(r.error, kEinval) << handle;
    EXPECT_EQ(r.handle, handle);
  }
  ASSERT_EQ(h.requests.size(), 1u);
  EXPECT_EQ(h.requests[0].handle, 9u);
  EXPECT_FALSE(h.session.Done());
}

TEST(NbdTransmissionTest, BadRequestMagicCloses) {
  Harness h;
  h.Attach("disk");
  std::string bad = Req(kCmdRead, 1, 0, 10);
  bad[3] ^= 0x40;
  h.Feed(Req(kCmdFlush, 1, 0, 0) + bad + Req(kCmdFlush, 2, 0, 0));
  EXPECT_TRUE(h.session.Done());
  EXPECT_FALSE(h.session.close_reason().empty());
  EXPECT_FALSE(h.session.WantsInput());
  ASSERT_EQ(h.requests.size(), 1u);
  // A reply for a request made before the close is not sent: the connection is going away.
  h.Reply(1, kOk);
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_EQ(h.session.in_flight(), 0u);
  h.Feed(Req(kCmdFlush, 3, 0, 0));
  EXPECT_EQ(h.requests.size(), 1u);
}

TEST(NbdTransmissionTest, RepliesOutOfOrderKeepTheirHandles) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdRead, 10, 0, 3) + Req(kCmdRead, 20, 3, 4) + Req(kCmdFlush, 30, 0, 0) + Req(kCmdRead, 40, 7, 1));
  ASSERT_EQ(h.requests.size(), 4u);
  h.Reply(30, kOk);
  h.Reply(40, kOk, "D");
  h.Reply(10, kOk, "AAA");
  h.Reply(20, kEio);
  SimpleRep r = h.ReadSimple();
  EXPECT_EQ(r.handle, 30u);
  r = h.ReadSimple();
  EXPECT_EQ(r.handle, 40u);
  EXPECT_EQ(h.Bytes(1), "D");
  r = h.ReadSimple();
  EXPECT_EQ(r.handle, 10u);
  EXPECT_EQ(h.Bytes(3), "AAA");
  r = h.ReadSimple();
  EXPECT_EQ(r.handle, 20u);
  EXPECT_EQ(r.error, kEio);
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_EQ(h.session.in_flight(), 0u);
}

// The whole conversation as one string, the same whether fed at once, byte by byte, or in
// odd-sized pieces.
std::string PipelinedConversation(int mode) {
  Harness h;
  h.auto_reply = true;
  std::string stream = ClientFlags(kClientFixedNewstyle | kClientNoZeroes) + Opt(0x42) + Opt(kOptList) +
                       Opt(kOptInfo, InfoData("ro")) + Opt(kOptGo, InfoData("disk", {kInfoBlockSize}));
  for (uint64_t i = 0; i < 20; ++i) {
    stream += Write(100 + i, i * 1000, std::string(i * 37 + 1, static_cast<char>('a' + i)), i % 3 == 0 ? kCmdFlagFua : 0);
    stream += Req(kCmdRead, 200 + i, i * 512, static_cast<uint32_t>(i + 1));
    if (i % 5 == 0) stream += Req(kCmdRead, 300 + i, 1u << 20, 1);  // out of range
    if (i % 4 == 0) stream += Req(kCmdTrim, 400 + i, 0, 4096);
  }
  stream += Req(kCmdFlush, 999, 0, 0) + Req(kCmdDisc, 1000, 0, 0) + Req(kCmdFlush, 1001, 0, 0);
  if (mode == 0) {
    h.Feed(stream);
  } else if (mode == 1) {
    h.FeedBytewise(stream);
  } else {
    for (size_t i = 0, n = 1; i < stream.size(); i += n, n = n % 97 + 13) h.Feed(stream.substr(i, n));
  }
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.requests.size(), 20u * 2 + 5 + 1);
  return h.out;
}

TEST(NbdTransmissionTest, PipelinedRequestsGiveTheSameResultInAnyPieces) {
  const std::string whole = PipelinedConversation(0);
  EXPECT_GT(whole.size(), 1000u);
  EXPECT_EQ(PipelinedConversation(1), whole);
  EXPECT_EQ(PipelinedConversation(2), whole);
}

TEST(NbdTransmissionTest, DiscWaitsForInFlightRepliesThenDone) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdRead, 1, 0, 2) + Write(2, 0, "xy") + Req(kCmdDisc, 3, 0, 0) + Req(kCmdFlush, 4, 0, 0));
  ASSERT_EQ(h.requests.size(), 2u) << "nothing after DISC is parsed";
  EXPECT_FALSE(h.session.Done());
  EXPECT_FALSE(h.session.WantsInput());
  EXPECT_EQ(h.Unread(), 0u) << "DISC has no reply";
  h.Feed(Req(kCmdFlush, 5, 0, 0));
  EXPECT_EQ(h.requests.size(), 2u);
  h.Reply(2, kOk);
  EXPECT_FALSE(h.session.Done());
  EXPECT_EQ(h.ReadSimple().handle, 2u);
  h.Reply(1, kOk, "ab");
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.ReadSimple().handle, 1u);
  EXPECT_EQ(h.Bytes(2), "ab");
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_TRUE(h.session.close_reason().empty()) << "a clean disconnect";
}

TEST(NbdTransmissionTest, DiscWithNothingInFlightIsDoneAtOnce) {
  Harness h;
  h.Attach("disk");
  h.Feed(Req(kCmdDisc, 3, 0, 0));
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.Unread(), 0u);
}

TEST(NbdTransmissionTest, InFlightCountLimitPausesInputUntilAReply) {
  SessionLimits limits;
  limits.max_in_flight = 2;
  Harness h(limits);
  h.Attach("disk");
  h.Feed(Req(kCmdFlush, 1, 0, 0) + Req(kCmdFlush, 2, 0, 0) + Req(kCmdFlush, 3, 0, 0) + Req(kCmdFlush, 4, 0, 0));
  EXPECT_EQ(h.requests.size(), 2u);
  EXPECT_FALSE(h.session.WantsInput());
  h.Reply(2, kOk);
  EXPECT_EQ(h.requests.size(), 3u);
  EXPECT_EQ(h.requests.back().handle, 3u);
  EXPECT_FALSE(h.session.WantsInput());
  h.Reply(1, kOk);
  h.Reply(3, kOk);
  EXPECT_EQ(h.requests.size(), 4u);
  EXPECT_TRUE(h.session.WantsInput());
}

TEST(NbdTransmissionTest, InFlightBytesLimitPausesInputUntilAReply) {
  SessionLimits limits;
  limits.max_in_flight_bytes = 8192;
  Harness h(limits);
  h.Attach("disk");
  h.Feed(Req(kCmdRead, 1, 0, 4096) + Write(2, 0, std::string(4096, 'w')) + Req(kCmdFlush, 3, 0, 0));
  EXPECT_EQ(h.requests.size(), 2u);
  EXPECT_FALSE(h.session.WantsInput());
  h.Reply(2, kOk);
  EXPECT_EQ(h.requests.size(), 3u);
  EXPECT_TRUE(h.session.WantsInput());
}

TEST(NbdTransmissionTest, UnsentOutputLimitPausesInputUntilTaken) {
  SessionLimits limits;
  limits.max_output_bytes = 40;  // two error replies and a bit
  Harness h(limits);
  h.Attach("disk");
  const std::string stream = Req(kCmdRead, 1, 1u << 20, 1) + Req(kCmdRead, 2, 1u << 20, 1) +
                             Req(kCmdRead, 3, 1u << 20, 1) + Req(kCmdRead, 4, 1u << 20, 1) + Req(kCmdFlush, 5, 0, 0);
  h.session.Feed(stream.data(), stream.size());
  EXPECT_FALSE(h.session.WantsInput());
  EXPECT_TRUE(h.requests.empty());
  h.Collect();  // TakeOutput makes room and parsing resumes
  for (uint64_t handle = 1; handle <= 4; ++handle) EXPECT_EQ(h.ReadSimple().handle, handle);
  ASSERT_EQ(h.requests.size(), 1u);
  EXPECT_TRUE(h.session.WantsInput());
}


}  // namespace
}  // namespace ringstore::block::nbd
