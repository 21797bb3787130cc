#include "dht/object_id.h"

#include <gtest/gtest.h>

namespace ringstore {
namespace {

TEST(ObjectIdTest, IsSha256OfNamespaceNulKey) {
  // python3 -c "import hashlib;print(hashlib.sha256(b'default\x00hello').hexdigest())"
  EXPECT_EQ(ObjectId::Of("default", "hello").Hex(),
            "e20959cec7d01949f94ae2a0229c448eb197983b7a7e63ee3f327b7821d6bfbe");
  EXPECT_EQ(ObjectId::Of("", "").Hex(), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  // The separator keeps ("ab","c") and ("a","bc") apart.
  EXPECT_NE(ObjectId::Of("ab", "c"), ObjectId::Of("a", "bc"));
}

TEST(ObjectIdTest, HexRoundTripsAndRejectsBadInput) {
  const ObjectId id = ObjectId::Of("ns", "key");
  auto back = ObjectId::FromHex(id.Hex());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, id);
  auto upper = id.Hex();
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(*ObjectId::FromHex(upper), id);
  EXPECT_FALSE(ObjectId::FromHex("abc").ok());
  EXPECT_FALSE(ObjectId::FromHex(std::string(64, 'g')).ok());
  EXPECT_FALSE(ObjectId::FromBytes(std::string(31, 'x')).ok());
  EXPECT_TRUE(ObjectId::FromBytes(std::string(32, 'x')).ok());
}

TEST(ObjectIdTest, ByteOrderIsRingOrder) {
  EXPECT_LT(ObjectId::Min(), ObjectId::Of("a", "b"));
  EXPECT_LT(ObjectId::Of("a", "b"), ObjectId::Max());
  ObjectId::Bytes lo{}, hi{};
  lo[0] = 0x01;
  hi[0] = 0x02;
  EXPECT_LT(ObjectId(lo), ObjectId(hi));
  EXPECT_LT(ObjectId(lo).Prefix64(), ObjectId(hi).Prefix64());
}

}  // namespace
}  // namespace ringstore
