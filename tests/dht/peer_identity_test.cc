#include "dht/peer_identity.h"

#include <gtest/gtest.h>

namespace ringstore {
namespace {

TEST(PeerIdentityTest, UrisRoundTripForEveryRole) {
  for (Role role : {Role::kNode, Role::kAdmin, Role::kReadWrite, Role::kReadOnly}) {
    PeerIdentity id;
    id.role = role;
    id.cluster_id = "prod-1";
    id.name = "web.frontend_2";
    auto back = ParseIdentityUri(IdentityUri(id));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->role, role);
    EXPECT_EQ(back->cluster_id, "prod-1");
    EXPECT_EQ(back->name, "web.frontend_2");
  }
  EXPECT_EQ(IdentityUri({Role::kReadOnly, "c", "alice", ""}), "ringstore://c/client/alice?role=read-only");
  EXPECT_EQ(IdentityUri({Role::kNode, "c", "n1", ""}), "ringstore://c/node/n1");
}

TEST(PeerIdentityTest, MalformedUrisAreRefused) {
  for (const char* bad : {"", "https://c/node/n1", "ringstore://", "ringstore://c", "ringstore://c/node",
                          "ringstore://c/node/", "ringstore://c/node/n1?role=admin", "ringstore://c/client/a",
                          "ringstore://c/client/a?role=root", "ringstore://c/client/a?role=node",
                          "ringstore://c/ca/x", "ringstore://c/node/a/b", "ringstore://c d/node/n1",
                          "ringstore:///node/n1"}) {
    EXPECT_FALSE(ParseIdentityUri(bad).ok()) << bad;
  }
}

TEST(PeerIdentityTest, ANamespaceTravelsInTheUriOfReadOnlyAndReadWriteClients) {
  for (Role role : {Role::kReadWrite, Role::kReadOnly}) {
    PeerIdentity id{role, "c", "bob", "photos"};
    auto back = ParseIdentityUri(IdentityUri(id));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->ns, "photos");
    EXPECT_EQ(back->role, role);
  }
  EXPECT_EQ(IdentityUri({Role::kReadWrite, "c", "bob", "photos"}), "ringstore://c/client/bob?role=read-write&ns=photos");
  EXPECT_EQ((PeerIdentity{Role::kReadWrite, "c", "bob", "photos"}).Describe(),
            "client 'bob' (read-write, namespace 'photos')");
  for (const char* bad : {"ringstore://c/client/a?role=admin&ns=photos", "ringstore://c/client/a?role=read-only&ns=",
                          "ringstore://c/client/a?role=read-only&ns=ringstore.volume",
                          "ringstore://c/client/a?role=read-only&ns=a/b"}) {
    EXPECT_FALSE(ParseIdentityUri(bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateClientNamespace("photos-2024").ok());
  EXPECT_FALSE(ValidateClientNamespace("ringstore.fs").ok());
  EXPECT_FALSE(ValidateClientNamespace("").ok());
}

TEST(PeerIdentityTest, ClientRolesParseByName) {
  EXPECT_EQ(*ParseClientRole("read-only"), Role::kReadOnly);
  EXPECT_EQ(*ParseClientRole("read-write"), Role::kReadWrite);
  EXPECT_EQ(*ParseClientRole("admin"), Role::kAdmin);
  EXPECT_FALSE(ParseClientRole("node").ok());
  EXPECT_FALSE(ParseClientRole("open").ok());
  EXPECT_EQ((PeerIdentity{Role::kReadOnly, "c", "bob", ""}).Describe(), "client 'bob' (read-only)");
}

}  // namespace
}  // namespace ringstore
