#include "node/access_policy.h"

#include <gtest/gtest.h>

#include "dht/messages.h"

namespace ringstore {
namespace {

bool Allowed(Role role, Kind kind) {
  PeerIdentity who{role, "c", "x"};
  return Authorize(who, static_cast<uint16_t>(kind)).ok();
}

TEST(AccessPolicyTest, EachRoleGetsExactlyItsRequests) {
  const Kind reads[] = {Kind::kGet, Kind::kStat, Kind::kRouteTable, Kind::kDiskUsage, Kind::kWatch, Kind::kNodeStatus};
  const Kind writes[] = {Kind::kPut, Kind::kDel, Kind::kTxn, Kind::kNotify};
  const Kind admin[] = {Kind::kDecommission, Kind::kScan};
  const Kind node[] = {Kind::kGossip, Kind::kGossipReply, Kind::kPing, Kind::kPingReq, Kind::kPingAck,
                       Kind::kSyncTree, Kind::kSyncKeys, Kind::kSyncHave};
  for (Kind k : reads) {
    for (Role r : {Role::kReadOnly, Role::kReadWrite, Role::kAdmin, Role::kNode, Role::kOpen}) {
      EXPECT_TRUE(Allowed(r, k)) << RoleName(r) << " " << KindName(static_cast<uint16_t>(k));
    }
  }
  for (Kind k : writes) {
    EXPECT_FALSE(Allowed(Role::kReadOnly, k)) << KindName(static_cast<uint16_t>(k));
    for (Role r : {Role::kReadWrite, Role::kAdmin, Role::kNode, Role::kOpen}) EXPECT_TRUE(Allowed(r, k));
  }
  for (Kind k : admin) {
    EXPECT_FALSE(Allowed(Role::kReadOnly, k));
    EXPECT_FALSE(Allowed(Role::kReadWrite, k));
    for (Role r : {Role::kAdmin, Role::kNode, Role::kOpen}) EXPECT_TRUE(Allowed(r, k));
  }
  for (Kind k : node) {
    for (Role r : {Role::kReadOnly, Role::kReadWrite, Role::kAdmin}) {
      EXPECT_FALSE(Allowed(r, k)) << RoleName(r) << " " << KindName(static_cast<uint16_t>(k));
    }
    EXPECT_TRUE(Allowed(Role::kNode, k));
    EXPECT_TRUE(Allowed(Role::kOpen, k));
  }
  EXPECT_FALSE(Allowed(Role::kAdmin, static_cast<Kind>(999)));  // unknown kinds: nodes only
}

TEST(AccessPolicyTest, TheRefusalNamesThePeerTheRequestAndTheRoleNeeded) {
  const Status s = Authorize(PeerIdentity{Role::kReadOnly, "c", "alice"}, static_cast<uint16_t>(Kind::kPut));
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(s.message(), "permission denied: client 'alice' (read-only) may not send PUT (it needs the read-write role)");
  const Status g = Authorize(PeerIdentity{Role::kAdmin, "c", "root"}, static_cast<uint16_t>(Kind::kGossip));
  EXPECT_NE(g.message().find("needs node certificates"), std::string::npos) << g.message();
}

}  // namespace
}  // namespace ringstore
