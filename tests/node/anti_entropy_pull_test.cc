// AntiEntropy's pulls with SYNC_GET (tests/node/anti_entropy_fixture.h): a joiner asks its
// peers for many records per request, at most 64 KiB of values each, and a GET each of a
// peer that does not announce SYNC_GET; a damaged record is neither sent nor stored, and the
// peer that met it repairs it.
#include <gtest/gtest.h>

#include "tests/node/anti_entropy_fixture.h"

namespace ringstore {
namespace {

TEST_F(AntiEntropyTest, AJoinerPullsManyRecordsPerRequest) {
  // Its peers announce SYNC_GET: the records come many to a request, not a GET each (as many
  // as wait to be pulled: throttled, they pile up).
  rate_ = 2000;
  const std::vector<ObjectId> ids = Ids(400);
  JoinAfter(ids);
  const size_t placed = CheckJoinerHoldsItsShare(ids);
  ASSERT_GT(placed, 200u);
  const uint64_t gets = HoldersGets();
  EXPECT_LT(gets * 10, placed) << gets << " GETs for " << placed << " records pulled";
  EXPECT_GT(asked_.requests, 0u);
  EXPECT_GE(asked_.most, 16u) << "the most records in one SYNC_GET";
  EXPECT_EQ(ring_.nodes[3]->store->bulk_writes(), placed) << "pulled records are stored as bulk writes";
}

TEST_F(AntiEntropyTest, APeerThatDoesNotAnnounceSyncGetIsPulledFromWithGets) {
  // Peers of before SYNC_GET: their HELLO_REPLY lacks the feature, and they get a GET each.
  for (size_t n = 0; n < 3; ++n) {
    ring_.nodes[n]->transport->on_send = [](std::string& frame) {
      std::optional<Frame> f = OneFrame(frame);
      if (!f || f->header.kind != static_cast<uint16_t>(Kind::kHelloReply)) return;
      auto hello = DecodeHello(f->body);
      ASSERT_TRUE(hello.ok());
      std::erase(hello->features, std::string(kSyncGetFeature));
      frame = EncodeHello(Kind::kHelloReply, f->header.request_id, *hello);
    };
  }
  const std::vector<ObjectId> ids = Ids(400);
  JoinAfter(ids);
  const size_t placed = CheckJoinerHoldsItsShare(ids);
  ASSERT_GT(placed, 200u);
  EXPECT_EQ(HoldersGets(), placed);
  EXPECT_EQ(asked_.requests, 0u) << "SYNC_GETs sent to peers that did not announce it";
}

TEST_F(AntiEntropyTest, APullRequestAsksForAtMost64KiBOfValues) {
  // Larger requests would make a peer answer in bursts that its other requests wait behind.
  value_bytes_ = 20000;  // three to a request
  rate_ = 1e6;
  const std::vector<ObjectId> ids = Ids(120);
  JoinAfter(ids);
  const size_t placed = CheckJoinerHoldsItsShare(ids);
  ASSERT_GT(placed, 60u);
  EXPECT_EQ(asked_.most, 3u) << "the most records in one SYNC_GET";
}

TEST_F(AntiEntropyTest, ADamagedRecordInAPeersAnswerIsNotStored) {
  // A peer's store hands it damaged bytes (a bad disk): the joiner keeps none of them, and
  // gets those records again in a later round.
  faulty_node_ = 0;
  const std::vector<ObjectId> ids = Ids(400);
  JoinAfter(ids, [this] { faulty_->CorruptNextReads(20); });
  EXPECT_EQ(faulty_->injected(), 20u) << "the peer answered the joiner with 20 damaged records";
  CheckJoinerHoldsItsShare(ids);
  size_t damaged = 0;
  for (const ObjectId& id : ids) {
    const Record* r = ring_.nodes[3]->store->MutableRecordForTest(id);
    damaged += r != nullptr && !r->Intact() ? 1 : 0;
  }
  EXPECT_EQ(damaged, 0u);
}

TEST_F(AntiEntropyTest, ASyncGetIsAnsweredInTheOrderAskedWithNoneForWhatIsNotHeld) {
  const std::vector<ObjectId> ids = Ids(50);
  JoinAfter(ids);
  SyncGetRequest req;
  req.ids = {ids[7], ObjectId::Of("ae", "never written"), ids[3]};
  Frame reply = Ask(ring_, *repair_[0], EncodeSyncGetRequest(9, req));
  ASSERT_EQ(reply.header.kind, static_cast<uint16_t>(Kind::kSyncGetReply));
  EXPECT_EQ(reply.header.request_id, 9u);
  auto got = DecodeSyncGetReply(reply.body);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->records.size(), 3u);
  ASSERT_TRUE(got->records[0].has_value() && got->records[2].has_value());
  EXPECT_EQ(got->records[0]->value, "value 7");
  EXPECT_FALSE(got->records[1].has_value());
  EXPECT_EQ(got->records[2]->value, "value 3");
}

TEST_F(AntiEntropyTest, ASyncGetThatMeetsADamagedRecordAnswersNoneAndRepairsIt) {
  // As a GET does: the damaged bytes are not sent, and the copy is restored from a replica.
  faulty_node_ = 0;
  const std::vector<ObjectId> ids = Ids(50);
  JoinAfter(ids);
  const uint64_t repaired = repair_[0]->status().repaired;
  faulty_->CorruptNextReads(1);
  SyncGetRequest req;
  req.ids = {ids[5], ids[6]};
  Frame reply = Ask(ring_, *repair_[0], EncodeSyncGetRequest(3, req));
  auto got = DecodeSyncGetReply(reply.body);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->records.size(), 2u);
  EXPECT_FALSE(got->records[0].has_value()) << "damaged bytes were sent";
  ASSERT_TRUE(got->records[1].has_value());
  EXPECT_EQ(got->records[1]->value, "value 6");
  ring_.Pump(std::chrono::milliseconds(500));
  EXPECT_EQ(repair_[0]->status().repaired, repaired + 1) << "the damaged copy was not repaired";
}

}  // namespace
}  // namespace ringstore
