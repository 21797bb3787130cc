#include "dht/frame.h"

#include <gtest/gtest.h>

#include "dht/checksum.h"

namespace ringstore {
namespace {

TEST(FrameTest, RoundTripsWholeAndByteByByte) {
  const std::string a = EncodeFrame(10, 42, "hello", 3);
  const std::string b = EncodeFrame(11, 43, std::string(100000, 'z'));
  const std::string c = EncodeFrame(12, 44, "");
  const std::string stream = a + b + c;

  FrameDecoder whole;
  ASSERT_TRUE(whole.Feed(stream.data(), stream.size()).ok());
  FrameDecoder bytewise;
  for (char ch : stream) ASSERT_TRUE(bytewise.Feed(&ch, 1).ok());

  for (FrameDecoder* d : {&whole, &bytewise}) {
    ASSERT_TRUE(d->HasFrame());
    Frame f = d->Next();
    EXPECT_EQ(f.header.kind, 10);
    EXPECT_EQ(f.header.request_id, 42u);
    EXPECT_EQ(f.header.flags, 3);
    EXPECT_EQ(f.body, "hello");
    f = d->Next();
    EXPECT_EQ(f.header.kind, 11);
    EXPECT_EQ(f.body.size(), 100000u);
    f = d->Next();
    EXPECT_EQ(f.header.kind, 12);
    EXPECT_TRUE(f.body.empty());
    EXPECT_FALSE(d->HasFrame());
    EXPECT_FALSE(d->MidFrame());
  }
}

TEST(FrameTest, TruncatedFrameIsPendingNotDelivered) {
  const std::string a = EncodeFrame(10, 1, "payload");
  FrameDecoder d;
  ASSERT_TRUE(d.Feed(a.data(), a.size() - 1).ok());
  EXPECT_FALSE(d.HasFrame());
  EXPECT_TRUE(d.MidFrame());  // EOF here means a truncated frame
}

TEST(FrameTest, BadMagicBreaksTheStream) {
  std::string a = EncodeFrame(10, 1, "x");
  a[0] ^= 0xff;
  FrameDecoder d;
  Status s = d.Feed(a.data(), a.size());
  EXPECT_EQ(s.code(), Code::kProtocolError);
  EXPECT_NE(s.message().find("magic"), std::string::npos);
  // A broken stream stays broken: good bytes after it are not trusted.
  const std::string good = EncodeFrame(10, 2, "y");
  EXPECT_FALSE(d.Feed(good.data(), good.size()).ok());
  EXPECT_FALSE(d.HasFrame());
}

TEST(FrameTest, UnsupportedVersionIsRefused) {
  std::string a = EncodeFrame(10, 1, "x");
  a[4] = 9;
  FrameDecoder d;
  EXPECT_EQ(d.Feed(a.data(), a.size()).code(), Code::kProtocolError);
}

TEST(FrameTest, OversizedLengthIsRefusedBeforeAllocating) {
  std::string a = EncodeFrame(10, 1, "x");
  a[16] = '\xff';
  a[17] = '\xff';
  a[18] = '\xff';
  a[19] = '\x7f';  // ~2 GiB
  FrameDecoder d;
  EXPECT_EQ(d.Feed(a.data(), kFrameHeaderBytes).code(), Code::kTooLarge);
  FrameDecoder small(16);
  const std::string b = EncodeFrame(10, 1, std::string(17, 'a'));
  EXPECT_EQ(small.Feed(b.data(), b.size()).code(), Code::kTooLarge);
}

TEST(FrameTest, ChecksumIsXxh3OfEveryLengthWhicheverCodeHashesIt) {
  // Known answers of XXH3-64 with seed 42 (computed with the reference code, SSE2 path):
  // stored records and frames depend on them, and lengths from 4096 bytes up are hashed by
  // libxxhash's AVX dispatch instead of the inlined code.
  const std::pair<size_t, uint64_t> known[] = {{0, 0xb029411ff43d84d2ull},
                                               {100, 0x611996587f149276ull},
                                               {4095, 0xab520017aeb5b77dull},
                                               {4096, 0x6c012bd9da1209b9ull},
                                               {1048576, 0x354f5ae66059a54eull}};
  for (const auto& [n, want] : known) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + 1);
    EXPECT_EQ(Checksum64(s, 42), want) << n << " bytes";
  }
}

TEST(FrameTest, ChecksumOfPiecesIsTheChecksumOfTheirConcatenation) {
  for (size_t n : {0, 1, 100, 240, 241, 4095, 4096, 300000}) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 13 + 5);
    const uint64_t want = Checksum64(s, 42);
    for (size_t cut : {size_t{0}, std::min<size_t>(n, 1), n / 3, n - std::min<size_t>(n, 1), n}) {
      const std::string_view v(s);
      EXPECT_EQ(Checksum64Parts({v.substr(0, cut), v.substr(cut)}, 42), want) << n << " bytes cut at " << cut;
      EXPECT_EQ(Checksum64Parts({v.substr(0, cut / 2), v.substr(cut / 2, cut - cut / 2), v.substr(cut)}, 42), want)
          << n << " bytes cut at " << cut / 2 << " and " << cut;
    }
  }
}

TEST(FrameTest, AHeaderForTwoPiecesFramesTheirConcatenation) {
  const std::string head = "the fields", tail(70000, 'v');
  std::string frame(kFrameHeaderBytes, '\0');
  EncodeFrameHeaderParts(7, 99, {head, tail}, 0, frame.data());
  frame += head + tail;
  EXPECT_EQ(frame, EncodeFrame(7, 99, head + tail));
  FrameDecoder d;
  ASSERT_TRUE(d.Feed(frame.data(), frame.size()).ok());
  ASSERT_TRUE(d.HasFrame());
  EXPECT_EQ(d.Next().body, head + tail);
}

TEST(FrameTest, ChecksumCoversHeaderAndBody) {
  for (size_t pos : {size_t{5}, size_t{6}, size_t{8}, size_t{20}, kFrameHeaderBytes + 2}) {
    std::string a = EncodeFrame(10, 1, "some body");
    a[pos] ^= 0x01;
    FrameDecoder d;
    EXPECT_EQ(d.Feed(a.data(), a.size()).code(), Code::kCorruption) << "flipped byte " << pos;
    EXPECT_FALSE(d.HasFrame());
  }
}

}  // namespace
}  // namespace ringstore
