// Volume definitions: ParseSize and FormatSize, name and geometry validation, the metadata
// and catalog codecs (round trips, and corrupt bytes that must decode to an error, never
// throw), and chunk object ids.
#include "blockgateway/volume.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include <set>

#include "dht/random.h"

namespace ringstore::block {
namespace {

TEST(VolumeParseSizeTest, PlainNumbersAreBytes) {
  EXPECT_EQ(*ParseSize("0"), 0u);
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("18446744073709551615"), UINT64_MAX);
}

TEST(VolumeParseSizeTest, BinarySuffixesInAnySpelling) {
  EXPECT_EQ(*ParseSize("1K"), 1024u);
  EXPECT_EQ(*ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseSize("10G"), 10ull << 30);
  EXPECT_EQ(*ParseSize("1T"), 1ull << 40);
  EXPECT_EQ(*ParseSize("1P"), 1ull << 50);
  for (const char* s : {"10g", "10GiB", "10gib", "10GB", "10gb", "10Gib"}) {
    auto r = ParseSize(s);
    ASSERT_TRUE(r.ok()) << s;
    EXPECT_EQ(*r, 10ull << 30) << s;
  }
  EXPECT_EQ(*ParseSize("100B"), 100u);
  EXPECT_EQ(*ParseSize("100b"), 100u);
  EXPECT_EQ(*ParseSize("4KiB"), 4096u);
}

TEST(VolumeParseSizeTest, OverflowIsRefused) {
  EXPECT_FALSE(ParseSize("18446744073709551616").ok());  // UINT64_MAX + 1
  EXPECT_FALSE(ParseSize("99999999999999999999999").ok());
  EXPECT_FALSE(ParseSize("16384P").ok());  // 2^64
  EXPECT_EQ(*ParseSize("16383P"), 16383ull << 50);
  EXPECT_FALSE(ParseSize("17179869184G").ok());  // 2^34 G = 2^64
  EXPECT_EQ(*ParseSize("17179869183G"), 17179869183ull << 30);
}

TEST(VolumeParseSizeTest, JunkIsRefused) {
  for (const char* s : {"", "G", "abc", "-1", "+5", " 10G", "10 G", "10G ", "1.5G", "10X", "10KB5", "10GiBB",
                        "10iB", "10BB", "10BiB", "0x10", "10KK", "10GiBi", "B", "iB"}) {
    auto r = ParseSize(s);
    EXPECT_FALSE(r.ok()) << "'" << s << "' parsed as " << (r.ok() ? *r : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

TEST(VolumeParseSizeTest, FormatSizeUsesTheLargestExactUnit) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(1000), "1000 B");
  EXPECT_EQ(FormatSize(4096), "4 KiB");
  EXPECT_EQ(FormatSize(1536ull << 20), "1536 MiB");
  EXPECT_EQ(FormatSize(10ull << 30), "10 GiB");
  EXPECT_EQ(FormatSize(1ull << 60), "1024 PiB");
  for (uint64_t v : {1ull, 512ull, 4096ull, 3ull << 20, 10ull << 30, 7ull << 40, 1ull << 50}) {
    // What FormatSize prints, ParseSize reads back.
    std::string f = FormatSize(v);
    f.erase(f.find(' '), 1);
    EXPECT_EQ(*ParseSize(f), v) << f;
  }
}

TEST(VolumeNameTest, ValidNames) {
  for (const std::string& n : std::vector<std::string>{"a", "disk0", "my-volume", "my_volume", "v1.2", "A", std::string(64, 'x'), "0", "a..b",
                              "a-", "a."}) {
    EXPECT_TRUE(ValidateVolumeName(n).ok()) << n;
  }
}

TEST(VolumeNameTest, InvalidNames) {
  for (const std::string& n : std::vector<std::string>{std::string(), std::string(65, 'x'), ".hidden", "-dash", "a/b", "a b", "a\nb",
                              std::string("a\0b", 3), "caf\xc3\xa9", "a:b", "..", "a*", "vol@1"}) {
    Status s = ValidateVolumeName(n);
    EXPECT_FALSE(s.ok()) << n;
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << n;
  }
}

TEST(VolumeGeometryTest, ChunkSizeIsAPowerOfTwoWithinBounds) {
  for (uint64_t cs : std::vector<uint64_t>{kMinChunkSize, 8192ull, kDefaultChunkSize, kMaxChunkSize}) {
    EXPECT_TRUE(ValidateGeometry(1ull << 30, cs).ok()) << cs;
  }
  for (uint64_t cs : std::vector<uint64_t>{0ull, 1ull, 2048ull, 4095ull, 4097ull, 12288ull, kMaxChunkSize * 2, 3ull << 20}) {
    EXPECT_FALSE(ValidateGeometry(1ull << 30, cs).ok()) << cs;
  }
}

TEST(VolumeGeometryTest, SizeIsAPositiveMultipleOf512UpTo1PiB) {
  EXPECT_TRUE(ValidateGeometry(512, kMinChunkSize).ok()) << "smaller than a chunk is fine";
  EXPECT_TRUE(ValidateGeometry(kMaxVolumeSize, kDefaultChunkSize).ok());
  EXPECT_TRUE(ValidateGeometry(1536, kMinChunkSize).ok());
  for (uint64_t size : std::vector<uint64_t>{0ull, 1ull, 511ull, 513ull, 1000ull, kMaxVolumeSize + 512, UINT64_MAX, UINT64_MAX - 511}) {
    Status s = ValidateGeometry(size, kDefaultChunkSize);
    EXPECT_FALSE(s.ok()) << size;
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << size;
  }
}

TEST(VolumeGeometryTest, ChunkCountRoundsUp) {
  VolumeMeta m;
  m.chunk_size = 4096;
  m.size = 4096;
  EXPECT_EQ(m.chunks(), 1u);
  m.size = 4096 + 512;
  EXPECT_EQ(m.chunks(), 2u);
  m.size = 512;
  EXPECT_EQ(m.chunks(), 1u);
  m.size = kMaxVolumeSize;
  m.chunk_size = kMinChunkSize;
  EXPECT_EQ(m.chunks(), kMaxVolumeSize / kMinChunkSize);
}

VolumeMeta SampleMeta() {
  VolumeMeta m;
  m.name = "disk-1";
  m.size = 10ull << 30;
  m.chunk_size = 1u << 20;
  m.uuid = std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\xfe\xff", 16);
  m.quorum = Quorum{5, 3, 2};
  m.created_ms = 1700000000123;
  return m;
}

TEST(VolumeMetaCodecTest, RoundTrips) {
  const VolumeMeta m = SampleMeta();
  auto d = DecodeVolumeMeta(EncodeVolumeMeta(m));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->name, m.name);
  EXPECT_EQ(d->size, m.size);
  EXPECT_EQ(d->chunk_size, m.chunk_size);
  EXPECT_EQ(d->uuid, m.uuid);
  EXPECT_EQ(d->quorum.n, 5u);
  EXPECT_EQ(d->quorum.w, 3u);
  EXPECT_EQ(d->quorum.r, 2u);
  EXPECT_EQ(d->created_ms, m.created_ms);
  EXPECT_EQ(EncodeVolumeMeta(*d), EncodeVolumeMeta(m));
}

// Packs a 9-field metadata array with one field replaced by fn's packing.
template <typename F>
std::string MetaWith(int field, F&& fn) {
  const VolumeMeta m = SampleMeta();
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(9);
  auto put = [&](int i, auto&& dflt) {
    if (i == field) fn(pk);
    else dflt();
  };
  put(0, [&] { pk.pack(1u); });
  put(1, [&] { pk.pack(m.name); });
  put(2, [&] { pk.pack(m.size); });
  put(3, [&] { pk.pack(m.chunk_size); });
  put(4, [&] {
    pk.pack_bin(16);
    pk.pack_bin_body(m.uuid.data(), 16);
  });
  put(5, [&] { pk.pack(m.quorum.n); });
  put(6, [&] { pk.pack(m.quorum.w); });
  put(7, [&] { pk.pack(m.quorum.r); });
  put(8, [&] { pk.pack(m.created_ms); });
  return std::string(buf.data(), buf.size());
}

using Packer = msgpack::packer<msgpack::sbuffer>;

TEST(VolumeMetaCodecTest, CorruptFieldsAreCorruption) {
  ASSERT_TRUE(DecodeVolumeMeta(MetaWith(-1, [](Packer&) {})).ok()) << "the template itself decodes";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"format 2", MetaWith(0, [](Packer& p) { p.pack(2u); })},
      {"format as string", MetaWith(0, [](Packer& p) { p.pack(std::string("1")); })},
      {"name as int", MetaWith(1, [](Packer& p) { p.pack(7); })},
      {"size negative", MetaWith(2, [](Packer& p) { p.pack(-1); })},
      {"size not a sector multiple", MetaWith(2, [](Packer& p) { p.pack(uint64_t{1000}); })},
      {"size zero", MetaWith(2, [](Packer& p) { p.pack(uint64_t{0}); })},
      {"size too large", MetaWith(2, [](Packer& p) { p.pack(kMaxVolumeSize * 2); })},
      {"chunk size not a power of two", MetaWith(3, [](Packer& p) { p.pack(uint64_t{5000}); })},
      {"chunk size as nil", MetaWith(3, [](Packer& p) { p.pack_nil(); })},
      {"uuid as string", MetaWith(4, [](Packer& p) { p.pack(std::string(16, 'u')); })},
      {"uuid short", MetaWith(4, [](Packer& p) {
         p.pack_bin(15);
         p.pack_bin_body("0123456789abcde", 15);
       })},
      {"n zero", MetaWith(5, [](Packer& p) { p.pack(0u); })},
      {"w zero", MetaWith(6, [](Packer& p) { p.pack(0u); })},
      {"r zero", MetaWith(7, [](Packer& p) { p.pack(0u); })},
      {"w above n", MetaWith(6, [](Packer& p) { p.pack(6u); })},
      {"r above n", MetaWith(7, [](Packer& p) { p.pack(6u); })},
      {"n over 32 bits", MetaWith(5, [](Packer& p) { p.pack(uint64_t{1} << 33); })},
      {"created as array", MetaWith(8, [](Packer& p) { p.pack_array(0); })},
      {"created as float", MetaWith(8, [](Packer& p) { p.pack(1.5); })},
  };
  for (const auto& [what, bytes] : bad) {
    Result<VolumeMeta> r = Status::Corruption("unset");
    ASSERT_NO_THROW(r = DecodeVolumeMeta(bytes)) << what;
    EXPECT_FALSE(r.ok()) << what;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorruption) << what << ": " << r.status().ToString();
    }
  }
}

TEST(VolumeMetaCodecTest, CorruptBytesNeverThrow) {
  const std::string good = EncodeVolumeMeta(SampleMeta());
  std::vector<std::string> inputs = {"", "\xc1", "\x90", "\x80", std::string(1, '\x99'), "\xdd\xff\xff\xff\xff",
                                     "\xdc\x00\x09", "not msgpack at all", std::string(100, '\xff')};
  // Every truncation, and an array too short.
  for (size_t n = 0; n < good.size(); ++n) inputs.push_back(good.substr(0, n));
  {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(8);
    for (int i = 0; i < 8; ++i) pk.pack(1u);
    inputs.emplace_back(buf.data(), buf.size());
  }
  // Random byte changes.
  SeededRandom rng(42);
  for (int i = 0; i < 3000; ++i) {
    std::string s = good;
    for (uint64_t k = 1 + rng.Uniform(3); k > 0; --k) s[rng.Uniform(s.size())] = static_cast<char>(rng.Next());
    inputs.push_back(s);
  }
  int decoded = 0;
  for (const auto& in : inputs) {
    Result<VolumeMeta> r = Status::Corruption("unset");
    ASSERT_NO_THROW(r = DecodeVolumeMeta(in));
    if (r.ok()) {
      ++decoded;
      // Whatever decodes is valid.
      EXPECT_TRUE(ValidateGeometry(r->size, r->chunk_size).ok());
      EXPECT_EQ(r->uuid.size(), 16u);
      EXPECT_GE(r->quorum.n, r->quorum.w);
      EXPECT_GE(r->quorum.n, r->quorum.r);
      EXPECT_GT(r->quorum.w, 0u);
      EXPECT_GT(r->quorum.r, 0u);
    } else {
      EXPECT_EQ(r.status().code(), Code::kCorruption);
    }
  }
  EXPECT_LT(decoded, static_cast<int>(inputs.size()));
  EXPECT_FALSE(DecodeVolumeMeta("").ok());
  EXPECT_FALSE(DecodeVolumeMeta(good.substr(0, good.size() - 1)).ok());
}

TEST(VolumeCatalogCodecTest, RoundTrips) {
  for (const std::vector<std::string>& names :
       {std::vector<std::string>{}, std::vector<std::string>{"a"}, std::vector<std::string>{"a", "b-2", "zz.z"}}) {
    auto d = DecodeCatalog(EncodeCatalog(names));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(*d, names);
  }
  std::vector<std::string> many;
  for (size_t i = 0; i < kMaxVolumes; ++i) many.push_back("v" + std::to_string(i));
  auto d = DecodeCatalog(EncodeCatalog(many));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, many);
}

TEST(VolumeCatalogCodecTest, CorruptCatalogsAreCorruption) {
  std::vector<std::string> too_many(kMaxVolumes + 1, "v");
  msgpack::sbuffer map_buf;
  msgpack::packer<msgpack::sbuffer> mp(map_buf);
  mp.pack_map(1);
  mp.pack(std::string("a"));
  mp.pack(1);
  msgpack::sbuffer ints;
  msgpack::pack(ints, std::vector<int>{1, 2});
  const std::string good = EncodeCatalog({"alpha", "beta"});
  for (const std::string& in : {EncodeCatalog(too_many), std::string(map_buf.data(), map_buf.size()),
                                std::string(ints.data(), ints.size()), std::string(), std::string("\xc1"),
                                good.substr(0, good.size() - 2), std::string("\xdd\xff\xff\xff\xff"),
                                std::string("\xa3" "abc")}) {
    Result<std::vector<std::string>> r = Status::Corruption("unset");
    ASSERT_NO_THROW(r = DecodeCatalog(in));
    EXPECT_FALSE(r.ok()) << in.size() << " bytes";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorruption);
    }
  }
}

TEST(VolumeChunkIdTest, DistinctPerUuidAndIndex) {
  VolumeMeta a = SampleMeta(), b = SampleMeta();
  b.uuid[15] ^= 1;
  std::set<ObjectId> ids;
  for (uint64_t i = 0; i < 1000; ++i) {
    ids.insert(a.ChunkId(i).id);
    ids.insert(b.ChunkId(i).id);
  }
  for (uint64_t i : {uint64_t{1} << 32, uint64_t{1} << 40, UINT64_MAX}) ids.insert(a.ChunkId(i).id);
  EXPECT_EQ(ids.size(), 2003u);
  // Stable: the same volume and index always name the same object, whatever else changes.
  VolumeMeta c = a;
  c.name = "renamed";
  c.size = 512;
  EXPECT_EQ(c.ChunkId(7).id, a.ChunkId(7).id);
  // Not the metadata's id, and metadata ids differ by name.
  EXPECT_EQ(ids.count(VolumeMetaId(a.name).id), 0u);
  EXPECT_NE(VolumeMetaId("a").id, VolumeMetaId("b").id);
  EXPECT_EQ(VolumeMetaId("a").id, VolumeMetaId("a").id);
}

}  // namespace
}  // namespace ringstore::block
