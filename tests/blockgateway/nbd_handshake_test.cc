// NbdSession's handshake: the greeting, client flags, and option haggling (GO, INFO, LIST,
// EXPORT_NAME, ABORT, unknown and oversized options, bad magic, too many options).
#include "tests/blockgateway/nbd_test_support.h"

namespace ringstore::block::nbd {
namespace {

using namespace ringstore::block::nbd::testing;

// ---- handshake -----------------------------------------------------------------------

TEST(NbdHandshakeTest, GreetingIsNewstyleWithNoZeroes) {
  Harness h;
  h.Collect();
  ASSERT_EQ(h.out.size(), 18u);
  EXPECT_EQ(h.out.substr(0, 8), "NBDMAGIC");
  EXPECT_EQ(h.out.substr(8, 8), "IHAVEOPT");
  EXPECT_EQ(GetBE(h.out.data() + 16, 2), kFlagFixedNewstyle | kFlagNoZeroes);
  EXPECT_TRUE(h.session.WantsInput());
  EXPECT_FALSE(h.session.Done());
  EXPECT_FALSE(h.session.transmitting());
}

TEST(NbdHandshakeTest, KnownClientFlagsAreAccepted) {
  for (uint32_t flags : {0u, 1u, 2u, 3u}) {
    Harness h;
    h.Feed(ClientFlags(flags));
    EXPECT_FALSE(h.session.Done()) << flags;
    EXPECT_TRUE(h.session.WantsInput()) << flags;
    EXPECT_EQ(h.out.size(), 18u) << flags;
  }
}

TEST(NbdHandshakeTest, UnknownClientFlagCloses) {
  for (uint32_t flags : {4u, 0x80000000u, 0x7u}) {
    Harness h;
    h.Feed(ClientFlags(flags) + Opt(kOptList));
    EXPECT_TRUE(h.session.Done()) << flags;
    EXPECT_FALSE(h.session.close_reason().empty());
    EXPECT_FALSE(h.session.WantsInput());
    EXPECT_EQ(h.out, Greeting()) << "no reply after the bad flags";
    h.Feed(Opt(kOptList));
    EXPECT_EQ(h.out, Greeting());
  }
}

TEST(NbdHandshakeTest, ClientFlagsFedInPiecesWait) {
  Harness h;
  h.Feed(std::string(3, '\0'));
  EXPECT_FALSE(h.session.Done());
  h.Feed(std::string(1, '\x04'));  // completes flags = 4: unknown
  EXPECT_TRUE(h.session.Done());
}

TEST(NbdHandshakeTest, GoRepliesExportAndBlockSizeThenAck) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptGo, InfoData("disk", {kInfoBlockSize})));
  h.SkipGreeting();
  OptRep a = h.ReadOpt();
  EXPECT_EQ(a.option, kOptGo);
  EXPECT_EQ(a.type, kRepInfo);
  ASSERT_EQ(a.data.size(), 12u);
  EXPECT_EQ(GetBE(a.data.data(), 2), kInfoExport);
  EXPECT_EQ(GetBE(a.data.data() + 2, 8), 1u << 20);
  EXPECT_EQ(GetBE(a.data.data() + 10, 2), kRwFlags);
  OptRep b = h.ReadOpt();
  EXPECT_EQ(b.option, kOptGo);
  EXPECT_EQ(b.type, kRepInfo);
  ASSERT_EQ(b.data.size(), 14u);
  EXPECT_EQ(GetBE(b.data.data(), 2), kInfoBlockSize);
  EXPECT_EQ(GetBE(b.data.data() + 2, 4), 1u);
  EXPECT_EQ(GetBE(b.data.data() + 6, 4), 4096u);
  EXPECT_EQ(GetBE(b.data.data() + 10, 4), kMaxPayload);
  OptRep c = h.ReadOpt();
  EXPECT_EQ(c.option, kOptGo);
  EXPECT_EQ(c.type, kRepAck);
  EXPECT_TRUE(c.data.empty());
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_TRUE(h.session.transmitting());
  EXPECT_EQ(h.session.export_name(), "disk");
  EXPECT_EQ(h.looked_up, std::vector<std::string>{"disk"});
}

TEST(NbdHandshakeTest, GoOnReadOnlyExportOffersNoWrites) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptGo, InfoData("ro")));
  h.SkipGreeting();
  OptRep a = h.ReadOpt();
  ASSERT_EQ(a.data.size(), 12u);
  EXPECT_EQ(GetBE(a.data.data() + 2, 8), 64u << 10);
  EXPECT_EQ(GetBE(a.data.data() + 10, 2), kRoFlags);
}

TEST(NbdHandshakeTest, InfoAnswersLikeGoButHagglingGoesOn) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptInfo, InfoData("ro")));
  h.SkipGreeting();
  OptRep a = h.ReadOpt();
  EXPECT_EQ(a.option, kOptInfo);
  EXPECT_EQ(a.type, kRepInfo);
  EXPECT_EQ(GetBE(a.data.data() + 10, 2), kRoFlags);
  EXPECT_EQ(h.ReadOpt().type, kRepInfo);
  OptRep ack = h.ReadOpt();
  EXPECT_EQ(ack.option, kOptInfo);
  EXPECT_EQ(ack.type, kRepAck);
  EXPECT_FALSE(h.session.transmitting());
  EXPECT_TRUE(h.session.WantsInput());
  // The INFO'd export is not kept: a GO for another one reports that one's flags.
  h.Feed(Opt(kOptGo, InfoData("disk")));
  OptRep g = h.ReadOpt();
  EXPECT_EQ(g.option, kOptGo);
  EXPECT_EQ(GetBE(g.data.data() + 10, 2), kRwFlags);
  h.ReadOpt();
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  EXPECT_TRUE(h.session.transmitting());
  // And writes are allowed (the read-only INFO left nothing behind).
  h.Feed(Write(1, 0, "abc"));
  ASSERT_EQ(h.requests.size(), 1u);
  EXPECT_EQ(h.requests[0].type, kCmdWrite);
}

TEST(NbdHandshakeTest, UnknownExportIsErrUnknownAndHagglingContinues) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptGo, InfoData("nope")));
  h.SkipGreeting();
  OptRep r = h.ReadOpt();
  EXPECT_EQ(r.option, kOptGo);
  EXPECT_EQ(r.type, kRepErrUnknown);
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_FALSE(h.session.transmitting());
  EXPECT_FALSE(h.session.Done());
  h.Feed(Opt(kOptInfo, InfoData("nope2")));
  EXPECT_EQ(h.ReadOpt().type, kRepErrUnknown);
  h.Feed(Opt(kOptGo, InfoData("disk")));
  EXPECT_EQ(h.ReadOpt().type, kRepInfo);
  EXPECT_EQ(h.ReadOpt().type, kRepInfo);
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  EXPECT_TRUE(h.session.transmitting());
}

TEST(NbdHandshakeTest, DeferredLookupPausesInputAndKeepsPipelinedBytes) {
  Harness h;
  h.defer_lookups = true;
  // A client may pipeline its first request right after GO.
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptGo, InfoData("disk")) + Req(kCmdRead, 7, 0, 512));
  EXPECT_FALSE(h.session.WantsInput());
  EXPECT_EQ(h.out.size(), 18u);
  EXPECT_TRUE(h.requests.empty());
  h.AnswerLookup();
  EXPECT_TRUE(h.session.transmitting());
  ASSERT_EQ(h.requests.size(), 1u);
  EXPECT_EQ(h.requests[0].handle, 7u);
}

TEST(NbdHandshakeTest, MalformedGoDataIsErrInvalid) {
  const std::vector<std::string> bad = {
      "",                                                 // empty
      Be(4, 4) + "di",                                    // shorter than the fixed fields
      Be(100, 4) + "disk" + Be(0, 2),                     // name length past the end
      Be(4, 4) + "disk" + Be(1, 2),                       // one info request announced, none sent
      Be(4, 4) + "disk" + Be(0, 2) + "x",                 // trailing byte
      Be(0xffffffffu, 4) + "disk" + Be(0, 2),             // absurd name length
      Be(4, 4) + "disk" + Be(2, 2) + Be(kInfoExport, 2),  // count says 2, one sent
  };
  for (uint32_t option : {uint32_t{kOptGo}, uint32_t{kOptInfo}}) {
    for (const auto& data : bad) {
      Harness h;
      h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(option, data));
      h.SkipGreeting();
      OptRep r = h.ReadOpt();
      EXPECT_EQ(r.option, option);
      EXPECT_EQ(r.type, kRepErrInvalid) << "data size " << data.size();
      EXPECT_TRUE(h.looked_up.empty());
      EXPECT_FALSE(h.session.Done());
      // Still haggling.
      h.Feed(Opt(kOptGo, InfoData("disk")));
      h.ReadOpt();
      h.ReadOpt();
      EXPECT_EQ(h.ReadOpt().type, kRepAck);
    }
  }
}

TEST(NbdHandshakeTest, ListWithDataIsErrInvalid) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptList, "x"));
  h.SkipGreeting();
  OptRep r = h.ReadOpt();
  EXPECT_EQ(r.option, kOptList);
  EXPECT_EQ(r.type, kRepErrInvalid);
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_FALSE(h.session.Done());
}

TEST(NbdHandshakeTest, ListSendsOneServerReplyPerExportThenAck) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptList));
  h.SkipGreeting();
  std::set<std::string> names;
  for (size_t i = 0; i < h.exports.size(); ++i) {
    OptRep r = h.ReadOpt();
    EXPECT_EQ(r.option, kOptList);
    EXPECT_EQ(r.type, kRepServer);
    ASSERT_GE(r.data.size(), 4u);
    const uint64_t n = GetBE(r.data.data(), 4);
    EXPECT_EQ(n, r.data.size() - 4);
    names.insert(r.data.substr(4));
  }
  EXPECT_EQ(names, (std::set<std::string>{"big", "disk", "ro"}));
  OptRep ack = h.ReadOpt();
  EXPECT_EQ(ack.type, kRepAck);
  EXPECT_EQ(h.Unread(), 0u);
  // A failing list is an error reply, and haggling goes on.
  h.list_error = Status::Unavailable("cluster down");
  h.Feed(Opt(kOptList));
  EXPECT_EQ(h.ReadOpt().type, kRepErrShutdown);
  EXPECT_FALSE(h.session.Done());
}

TEST(NbdHandshakeTest, UnknownOptionIsErrUnsupAndHagglingContinues) {
  Harness h;
  constexpr uint32_t kOptExtendedHeaders = 11;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptExtendedHeaders) + Opt(kOptStartTls) + Opt(0x1234, "data") +
         Opt(kOptGo, InfoData("disk")));
  h.SkipGreeting();
  for (uint32_t option : {kOptExtendedHeaders, uint32_t{kOptStartTls}, 0x1234u}) {
    OptRep r = h.ReadOpt();
    EXPECT_EQ(r.option, option);
    EXPECT_EQ(r.type, kRepErrUnsup);
  }
  h.ReadOpt();
  h.ReadOpt();
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  EXPECT_TRUE(h.session.transmitting());
}

TEST(NbdHandshakeTest, AbortIsAckedAndEndsTheSession) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptAbort) + Opt(kOptList));
  h.SkipGreeting();
  OptRep r = h.ReadOpt();
  EXPECT_EQ(r.option, kOptAbort);
  EXPECT_EQ(r.type, kRepAck);
  EXPECT_EQ(h.Unread(), 0u) << "nothing after ABORT is answered";
  EXPECT_TRUE(h.session.Done());
  h.Feed(Opt(kOptList));
  EXPECT_EQ(h.Unread(), 0u);
}

TEST(NbdHandshakeTest, ExportNameWithoutNoZeroesSends124Zeroes) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptExportName, "disk"));
  h.SkipGreeting();
  EXPECT_EQ(h.Num(8), 1u << 20);
  EXPECT_EQ(h.Num(2), kRwFlags);
  EXPECT_EQ(h.Bytes(124), std::string(124, '\0'));
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_TRUE(h.session.transmitting());
  EXPECT_EQ(h.session.export_name(), "disk");
}

TEST(NbdHandshakeTest, ExportNameWithNoZeroesSendsNone) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle | kClientNoZeroes) + Opt(kOptExportName, "ro") + Req(kCmdRead, 1, 0, 4));
  h.SkipGreeting();
  EXPECT_EQ(h.Num(8), 64u << 10);
  EXPECT_EQ(h.Num(2), kRoFlags);
  EXPECT_EQ(h.Unread(), 0u);
  ASSERT_EQ(h.requests.size(), 1u);  // the pipelined request was parsed in transmission
}

TEST(NbdHandshakeTest, ExportNameOfUnknownExportCloses) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptExportName, "nope") + Req(kCmdRead, 1, 0, 4));
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.out, Greeting());
  EXPECT_TRUE(h.requests.empty());
}

TEST(NbdHandshakeTest, OversizedOptionDataIsSkippedWithErrTooBig) {
  Harness h;
  const std::string big(kMaxOptionBytes + 1, 'z');
  const std::string stream = ClientFlags(kClientFixedNewstyle) + Opt(kOptInfo, big) + Opt(kOptGo, InfoData("disk"));
  // In pieces: the skip spans many feeds.
  for (size_t i = 0; i < stream.size(); i += 1000) h.Feed(stream.substr(i, 1000));
  h.SkipGreeting();
  OptRep r = h.ReadOpt();
  EXPECT_EQ(r.option, kOptInfo);
  EXPECT_EQ(r.type, kRepErrTooBig);
  EXPECT_TRUE(h.looked_up == std::vector<std::string>{"disk"});
  EXPECT_EQ(h.ReadOpt().type, kRepInfo);
  EXPECT_EQ(h.ReadOpt().type, kRepInfo);
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  EXPECT_TRUE(h.session.transmitting());
}

TEST(NbdHandshakeTest, OptionDataAtTheLimitIsNotTooBig) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(0x99, std::string(kMaxOptionBytes, 'z')));
  h.SkipGreeting();
  EXPECT_EQ(h.ReadOpt().type, kRepErrUnsup);
}

TEST(NbdHandshakeTest, OversizedExportNameCloses) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptExportName, std::string(kMaxOptionBytes + 1, 'n')));
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.out, Greeting());
  EXPECT_TRUE(h.looked_up.empty());
}

TEST(NbdHandshakeTest, BadOptionMagicCloses) {
  Harness h;
  std::string o = Opt(kOptList);
  o[0] ^= 1;
  h.Feed(ClientFlags(kClientFixedNewstyle) + o);
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.out, Greeting());
}

TEST(NbdHandshakeTest, TooManyOptionsClose) {
  Harness h;
  std::string s = ClientFlags(kClientFixedNewstyle);
  for (uint32_t i = 0; i < kMaxOptions + 1; ++i) s += Opt(0x99);
  h.Feed(s);
  EXPECT_TRUE(h.session.Done());
  EXPECT_EQ(h.out.size(), 18u + kMaxOptions * 20u + std::string("option not supported").size() * kMaxOptions);
}


}  // namespace
}  // namespace ringstore::block::nbd

namespace ringstore::block::nbd {
namespace {

using namespace ringstore::block::nbd::testing;

SessionLimits ForcedTls() {
  SessionLimits l;
  l.require_tls = true;
  return l;
}

TEST(NbdStartTlsTest, ForcedTlsRefusesOptionsUntilStartTlsThenGoesOnOverTls) {
  Harness h(ForcedTls());
  h.Feed(ClientFlags(kClientFixedNewstyle | kClientNoZeroes) + Opt(kOptList) + Opt(kOptGo, InfoData("disk")) +
         Opt(kOptStartTls));
  h.SkipGreeting();
  for (uint32_t option : {uint32_t{kOptList}, uint32_t{kOptGo}}) {
    OptRep r = h.ReadOpt();
    EXPECT_EQ(r.option, option);
    EXPECT_EQ(r.type, kRepErrTlsReqd);
  }
  EXPECT_EQ(h.session.tls_refusals(), 2u);
  OptRep ack = h.ReadOpt();
  EXPECT_EQ(ack.option, kOptStartTls);
  EXPECT_EQ(ack.type, kRepAck);
  EXPECT_TRUE(h.looked_up.empty());
  // The server switches: the bytes after STARTTLS are the client's TLS handshake, not options.
  ASSERT_TRUE(h.session.StartTlsPending());
  EXPECT_FALSE(h.session.WantsInput());
  h.Feed("\x16\x03\x01");
  EXPECT_EQ(h.session.BeginTls(), "\x16\x03\x01");
  EXPECT_FALSE(h.session.WantsInput());
  h.session.TlsEstablished();
  EXPECT_TRUE(h.session.tls_active());
  // Over TLS (the harness now stands for the decrypted stream): GO works; STARTTLS again does not.
  h.Feed(Opt(kOptStartTls) + Opt(kOptGo, InfoData("disk")));
  OptRep again = h.ReadOpt();
  EXPECT_EQ(again.option, kOptStartTls);
  EXPECT_EQ(again.type, kRepErrInvalid);
  while (h.ReadOpt().type != kRepAck) {
  }
  EXPECT_TRUE(h.session.transmitting());
}

TEST(NbdStartTlsTest, ExportNameBeforeStartTlsClosesAndStartTlsWithoutTlsIsUnsupported) {
  Harness forced(ForcedTls());
  forced.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptExportName, "disk"));
  forced.Collect();
  EXPECT_TRUE(forced.session.Done());
  EXPECT_NE(forced.session.close_reason().find("EXPORT_NAME before STARTTLS"), std::string::npos);

  Harness plain;
  plain.Feed(ClientFlags(kClientFixedNewstyle) + Opt(kOptStartTls));
  plain.SkipGreeting();
  OptRep r = plain.ReadOpt();
  EXPECT_EQ(r.option, kOptStartTls);
  EXPECT_EQ(r.type, kRepErrUnsup);
  EXPECT_FALSE(plain.session.StartTlsPending());
}

}  // namespace
}  // namespace ringstore::block::nbd
