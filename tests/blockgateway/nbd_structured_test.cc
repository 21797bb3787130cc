// NbdSession's structured replies and block status: STRUCTURED_REPLY, LIST_META_CONTEXT and
// SET_META_CONTEXT in the handshake; READ answered in OFFSET_DATA, NONE and ERROR chunks;
// BLOCK_STATUS handed out only for the export whose base:allocation was selected, and its
// extents framed, cut and checked.
#include "tests/blockgateway/nbd_test_support.h"

namespace ringstore::block::nbd {
namespace {

using namespace ringstore::block::nbd::testing;

std::string AllocationContext(uint32_t id) { return Be(id, 4) + kAllocationContext; }

TEST(NbdStructuredTest, MetaContextsNeedStructuredRepliesAndNameBaseAllocation) {
  Harness h;
  h.Feed(ClientFlags(kClientFixedNewstyle | kClientNoZeroes) +
         Opt(kOptSetMetaContext, MetaData("disk", {kAllocationContext})) + Opt(kOptStructuredReply, "x") +
         Opt(kOptStructuredReply));
  h.SkipGreeting();
  EXPECT_EQ(h.ReadOpt().type, kRepErrInvalid) << "SET_META_CONTEXT before STRUCTURED_REPLY";
  EXPECT_EQ(h.ReadOpt().type, kRepErrInvalid) << "STRUCTURED_REPLY with data";
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  EXPECT_TRUE(h.session.structured());

  // LIST: no query lists everything, "base:" the base namespace; other namespaces and
  // unknown leaves are ignored. The id of a listed context is 0.
  h.Feed(Opt(kOptListMetaContext, MetaData("disk", {})) + Opt(kOptListMetaContext, MetaData("disk", {"base:"})) +
         Opt(kOptListMetaContext, MetaData("disk", {"x-other:thing", "base:nothing"})));
  for (int i = 0; i < 2; ++i) {
    OptRep r = h.ReadOpt();
    EXPECT_EQ(r.option, kOptListMetaContext);
    EXPECT_EQ(r.type, kRepMetaContext);
    EXPECT_EQ(r.data, AllocationContext(0));
    EXPECT_EQ(h.ReadOpt().type, kRepAck);
  }
  EXPECT_EQ(h.ReadOpt().type, kRepAck) << "nothing matched";

  // SET selects base:allocation with its id; "base:" alone selects nothing.
  h.Feed(Opt(kOptSetMetaContext, MetaData("disk", {"base:", "qemu:dirty-bitmap:b", kAllocationContext})));
  OptRep r = h.ReadOpt();
  EXPECT_EQ(r.type, kRepMetaContext);
  EXPECT_EQ(r.data, AllocationContext(kAllocationContextId));
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  h.Feed(Opt(kOptSetMetaContext, MetaData("disk", {"base:"})));
  EXPECT_EQ(h.ReadOpt().type, kRepAck);

  // Malformed: a query longer than the data, trailing bytes, an oversized name.
  std::string longer = MetaData("disk", {kAllocationContext});
  longer[longer.size() - 16] = 0x7f;
  h.Feed(Opt(kOptSetMetaContext, longer) + Opt(kOptSetMetaContext, MetaData("disk", {kAllocationContext}) + "z") +
         Opt(kOptListMetaContext, Be(kMaxNameBytes + 1, 4) + std::string(kMaxNameBytes + 1, 'n') + Be(0, 4)) +
         Opt(kOptListMetaContext, "abc"));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(h.ReadOpt().type, kRepErrInvalid) << i;
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_FALSE(h.session.Done());
}

// Structured replies, base:allocation selected for name, then GO for go_name.
void AttachStructured(Harness& h, const std::string& name, const std::string& go_name) {
  h.Feed(ClientFlags(kClientFixedNewstyle | kClientNoZeroes) + Opt(kOptStructuredReply) +
         Opt(kOptSetMetaContext, MetaData(name, {kAllocationContext})) + Opt(kOptGo, InfoData(go_name)));
  h.SkipGreeting();
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  EXPECT_EQ(h.ReadOpt().type, kRepMetaContext);
  EXPECT_EQ(h.ReadOpt().type, kRepAck);
  for (int i = 0; i < 3; ++i) h.ReadOpt();  // INFO_EXPORT, INFO_BLOCK_SIZE, ACK
  ASSERT_TRUE(h.session.transmitting());
}

TEST(NbdStructuredTest, AContextSelectedForAnotherExportIsDropped) {
  Harness h;
  AttachStructured(h, "disk", "big");
  EXPECT_FALSE(h.session.allocation_context());
  h.Feed(Req(kCmdBlockStatus, 1, 0, 4096));
  ChunkRep r = h.ReadChunk();
  EXPECT_EQ(r.type, kReplyError);
  EXPECT_EQ(GetBE(r.payload.data(), 4), kEinval);
  EXPECT_TRUE(h.requests.empty());
}

TEST(NbdStructuredTest, ReadsAreAnsweredInChunksAndOtherCommandsSimply) {
  Harness h;
  AttachStructured(h, "disk", "disk");
  h.Feed(Req(kCmdRead, 1, 4096, 5) + Req(kCmdRead, 2, 0, 10) + Req(kCmdRead, 3, 0, 0) + Write(4, 0, "abc") +
         Req(kCmdRead, 5, 1u << 20, 1) /* past the end */ + Req(kCmdRead, 6, 0, 1, 1 << 2) /* DF: not offered */);
  ASSERT_EQ(h.requests.size(), 4u);
  // The two bad reads are answered at once, in ERROR chunks (never simple replies).
  for (uint64_t handle : {5u, 6u}) {
    ChunkRep e = h.ReadChunk();
    EXPECT_EQ(e.handle, handle);
    EXPECT_EQ(e.flags, kReplyFlagDone);
    EXPECT_EQ(e.type, kReplyError);
    ASSERT_EQ(e.payload.size(), 6u);
    EXPECT_EQ(GetBE(e.payload.data(), 4), kEinval);
    EXPECT_EQ(GetBE(e.payload.data() + 4, 2), 0u) << "no message";
  }
  h.Reply(1, kOk, "hello");
  ChunkRep d = h.ReadChunk();
  EXPECT_EQ(d.handle, 1u);
  EXPECT_EQ(d.flags, kReplyFlagDone);
  EXPECT_EQ(d.type, kReplyOffsetData);
  EXPECT_EQ(d.payload, Be(4096, 8) + "hello");
  h.Reply(2, kEio);
  ChunkRep e = h.ReadChunk();
  EXPECT_EQ(e.type, kReplyError);
  EXPECT_EQ(GetBE(e.payload.data(), 4), kEio);
  h.Reply(3, kOk);
  ChunkRep none = h.ReadChunk();
  EXPECT_EQ(none.type, kReplyNone);
  EXPECT_EQ(none.flags, kReplyFlagDone);
  EXPECT_TRUE(none.payload.empty());
  h.Reply(4, kOk);
  SimpleRep w = h.ReadSimple();
  EXPECT_EQ(w.handle, 4u);
  EXPECT_EQ(w.error, kOk);
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_EQ(h.session.in_flight(), 0u);
}

std::vector<std::pair<uint32_t, uint32_t>> Descriptors(const ChunkRep& r) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  EXPECT_EQ(r.type, kReplyBlockStatus);
  EXPECT_EQ(r.flags, kReplyFlagDone);
  EXPECT_EQ(GetBE(r.payload.data(), 4), kAllocationContextId);
  EXPECT_EQ((r.payload.size() - 4) % 8, 0u);
  for (size_t p = 4; p + 8 <= r.payload.size(); p += 8) {
    out.emplace_back(static_cast<uint32_t>(GetBE(r.payload.data() + p, 4)),
                     static_cast<uint32_t>(GetBE(r.payload.data() + p + 4, 4)));
  }
  return out;
}

TEST(NbdStructuredTest, BlockStatusExtentsAreFramedAndCut) {
  Harness h;
  AttachStructured(h, "disk", "disk");
  ASSERT_TRUE(h.session.allocation_context());
  const uint32_t hole = kStateHole | kStateZero;
  h.Feed(Req(kCmdBlockStatus, 1, 0, 10000) + Req(kCmdBlockStatus, 2, 4096, 100, kCmdFlagReqOne) +
         Req(kCmdBlockStatus, 3, 0, 10) + Req(kCmdBlockStatus, 4, 0, 10) +
         Req(kCmdBlockStatus, 5, (1u << 20) - 10, 11) /* past the end */ + Req(kCmdBlockStatus, 6, 0, 0) +
         Req(kCmdBlockStatus, 7, 0, 10, kCmdFlagFua | (1 << 2)) /* DF */);
  ASSERT_EQ(h.requests.size(), 4u);
  EXPECT_TRUE(h.requests[1].req_one());
  for (uint64_t handle : {5u, 6u, 7u}) {
    ChunkRep e = h.ReadChunk();
    EXPECT_EQ(e.handle, handle);
    EXPECT_EQ(e.type, kReplyError);
    EXPECT_EQ(GetBE(e.payload.data(), 4), kEinval);
  }
  // Extents after the one that reaches the end are left out, and empty ones.
  h.ReplyExtents(1, kOk, {{4096, 0}, {0, hole}, {8192, hole}, {4096, 0}});
  ChunkRep r = h.ReadChunk();
  EXPECT_EQ(r.handle, 1u);
  EXPECT_EQ(Descriptors(r), (std::vector<std::pair<uint32_t, uint32_t>>{{4096, 0}, {8192, hole}}));
  // REQ_ONE: one extent, no longer than the request.
  h.ReplyExtents(2, kOk, {{1u << 20, hole}, {4096, 0}});
  r = h.ReadChunk();
  EXPECT_EQ(Descriptors(r), (std::vector<std::pair<uint32_t, uint32_t>>{{100, hole}}));
  // An answer with no extent, or a failure, is an error chunk.
  h.ReplyExtents(3, kOk, {});
  h.ReplyExtents(4, kEio, {{10, 0}});
  for (uint64_t handle : {3u, 4u}) {
    ChunkRep e = h.ReadChunk();
    EXPECT_EQ(e.handle, handle);
    EXPECT_EQ(e.type, kReplyError);
    EXPECT_EQ(GetBE(e.payload.data(), 4), kEio);
  }
  EXPECT_EQ(h.Unread(), 0u);
  EXPECT_EQ(h.session.in_flight(), 0u);
  EXPECT_FALSE(h.session.Done());
}

}  // namespace
}  // namespace ringstore::block::nbd
