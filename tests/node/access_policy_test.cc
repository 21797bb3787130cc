#include "node/access_policy.h"

#include <gtest/gtest.h>

#include "dht/messages.h"

namespace ringstore {
namespace {

bool Allowed(Role role, Kind kind) {
  PeerIdentity who{role, "c", "x", ""};
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
  const Status s = Authorize(PeerIdentity{Role::kReadOnly, "c", "alice", ""}, static_cast<uint16_t>(Kind::kPut));
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(s.message(), "permission denied: client 'alice' (read-only) may not send PUT (it needs the read-write role)");
  const Status g = Authorize(PeerIdentity{Role::kAdmin, "c", "root", ""}, static_cast<uint16_t>(Kind::kGossip));
  EXPECT_NE(g.message().find("needs node certificates"), std::string::npos) << g.message();
}

Txn WriteOf(std::vector<TxnOp> ops) {
  Txn t;
  t.ops = std::move(ops);
  return t;
}

TxnOp Named(TxnOpType type, std::string_view ns, std::string_view key) {
  const ObjectKey k = ObjectKey::Of(ns, key);
  return TxnOp{type, k.id, "", k.name};
}

TEST(AccessPolicyTest, AReadWriteClientMustNameWhatItWritesAndMayNotWriteTheCatalogs) {
  const PeerIdentity rw{Role::kReadWrite, "c", "gw", ""};
  EXPECT_TRUE(AuthorizeWrite(rw, WriteOf({Named(TxnOpType::kPut, "default", "k")})).ok());
  EXPECT_TRUE(AuthorizeWrite(rw, WriteOf({Named(TxnOpType::kPut, "ringstore.chunk", "x"),
                                          Named(TxnOpType::kMerge, "ringstore.dir", "y")}))
                  .ok());
  // Unnamed: the node cannot tell the namespace.
  const Status unnamed = AuthorizeWrite(rw, WriteOf({TxnOp{TxnOpType::kPut, ObjectId::Of("default", "k"), "", {}}}));
  EXPECT_EQ(unnamed.code(), Code::kPermissionDenied);
  EXPECT_NE(unnamed.message().find("must name object"), std::string::npos) << unnamed.message();
  // A name that is not the id's.
  TxnOp lie = Named(TxnOpType::kPut, "default", "k");
  lie.id = ObjectId::Of("ringstore.volume", "vol");
  const Status lied = AuthorizeWrite(rw, WriteOf({lie}));
  EXPECT_EQ(lied.code(), Code::kPermissionDenied);
  EXPECT_NE(lied.message().find("does not hash to it"), std::string::npos) << lied.message();
  // The catalogs and the objects they list, whatever the op, even behind an allowed op.
  for (std::string_view ns : {reserved::kVolume, reserved::kVolumeCatalog, reserved::kFs, reserved::kFsCatalog}) {
    for (TxnOpType type : {TxnOpType::kPut, TxnOpType::kDel, TxnOpType::kMerge}) {
      const Status s = AuthorizeWrite(rw, WriteOf({Named(TxnOpType::kPut, "default", "k"), Named(type, ns, "all")}));
      EXPECT_EQ(s.code(), Code::kPermissionDenied) << ns;
      EXPECT_EQ(s.message(), "permission denied: client 'gw' (read-write) may not write namespace '" + std::string(ns) +
                                 "' (volumes and filesystems are created, resized and removed with the admin role)");
    }
  }
  // Admins, nodes and plaintext clusters may write anything, named or not.
  for (Role r : {Role::kAdmin, Role::kNode, Role::kOpen}) {
    EXPECT_TRUE(AuthorizeWrite(PeerIdentity{r, "c", "x", ""}, WriteOf({Named(TxnOpType::kPut, "ringstore.fs", "a")})).ok());
    EXPECT_TRUE(AuthorizeWrite(PeerIdentity{r, "c", "x", ""}, WriteOf({TxnOp{TxnOpType::kDel, ObjectId::Of("a", "b"), "", {}}}))
                    .ok());
  }
  // Reads need no name without a namespace restriction.
  EXPECT_TRUE(AuthorizeRead(rw, ObjectId::Of("ringstore.volume", "v"), ObjectName{}).ok());
  EXPECT_TRUE(AuthorizeRead(PeerIdentity{Role::kReadOnly, "c", "r", ""}, ObjectId::Of("x", "y"), ObjectName{}).ok());
}

TEST(AccessPolicyTest, ANamespaceRestrictedClientStaysInItsNamespace) {
  const PeerIdentity bob{Role::kReadWrite, "c", "bob", "photos"};
  const ObjectKey mine = ObjectKey::Of("photos", "cat.jpg");
  const ObjectKey theirs = ObjectKey::Of("videos", "dog.mp4");
  EXPECT_TRUE(AuthorizeWrite(bob, WriteOf({Named(TxnOpType::kPut, "photos", "cat.jpg")})).ok());
  EXPECT_TRUE(AuthorizeRead(bob, mine.id, mine.name).ok());
  const Status other = AuthorizeWrite(bob, WriteOf({Named(TxnOpType::kPut, "photos", "a"),
                                                    Named(TxnOpType::kDel, "videos", "dog.mp4")}));
  EXPECT_EQ(other.code(), Code::kPermissionDenied);
  EXPECT_EQ(other.message(), "permission denied: client 'bob' (read-write, namespace 'photos') may not use namespace 'videos'");
  EXPECT_EQ(AuthorizeRead(bob, theirs.id, theirs.name).code(), Code::kPermissionDenied);
  // Unnamed reads are refused too, and a name must hash to the id it claims.
  const Status unnamed = AuthorizeRead(bob, theirs.id, ObjectName{});
  EXPECT_EQ(unnamed.code(), Code::kPermissionDenied);
  EXPECT_NE(unnamed.message().find("may use only namespace 'photos'"), std::string::npos) << unnamed.message();
  EXPECT_EQ(AuthorizeRead(bob, theirs.id, mine.name).code(), Code::kPermissionDenied);
  // A read-only client with a namespace: reads in it, and still no writes at all.
  const PeerIdentity ro{Role::kReadOnly, "c", "viewer", "photos"};
  EXPECT_TRUE(AuthorizeRead(ro, mine.id, mine.name).ok());
  EXPECT_FALSE(Authorize(ro, static_cast<uint16_t>(Kind::kPut)).ok());
  // Change notification has no namespace: refused to restricted clients only.
  for (Kind k : {Kind::kWatch, Kind::kNotify}) {
    const Status s = Authorize(bob, static_cast<uint16_t>(k));
    EXPECT_EQ(s.code(), Code::kPermissionDenied);
    EXPECT_NE(s.message().find("change notification"), std::string::npos) << s.message();
    EXPECT_TRUE(Authorize(PeerIdentity{Role::kReadWrite, "c", "gw", ""}, static_cast<uint16_t>(k)).ok());
  }
  EXPECT_TRUE(Authorize(bob, static_cast<uint16_t>(Kind::kRouteTable)).ok());
}

}  // namespace
}  // namespace ringstore
