#include "storage/range_digest.h"

#include <cstring>

#include "dht/checksum.h"

namespace ringstore {

uint32_t RangeDigest::LeafOf(const ObjectId& id) {
  const auto b = id.AsStringView();
  return (static_cast<uint32_t>(static_cast<uint8_t>(b[0])) << 4) | (static_cast<uint8_t>(b[1]) >> 4);
}

ObjectId RangeDigest::LeafBegin(uint32_t leaf) {
  char raw[ObjectId::kSize] = {};
  raw[0] = static_cast<char>(leaf >> 4);
  raw[1] = static_cast<char>((leaf & 0xf) << 4);
  return *ObjectId::FromBytes(std::string_view(raw, sizeof raw));
}

ObjectId RangeDigest::LeafEnd(uint32_t leaf) { return leaf + 1 >= kLeaves ? ObjectId::Max() : LeafBegin(leaf + 1); }

uint64_t RangeDigest::EntryHash(const ObjectId& id, const RecordMeta& meta) {
  char buf[ObjectId::kSize + 20];
  std::memcpy(buf, id.AsStringView().data(), ObjectId::kSize);
  uint64_t ts = meta.ts, ck = meta.checksum;
  uint32_t flags = meta.flags;
  std::memcpy(buf + ObjectId::kSize, &ts, 8);
  std::memcpy(buf + ObjectId::kSize + 8, &ck, 8);
  std::memcpy(buf + ObjectId::kSize + 16, &flags, 4);
  return Checksum64(buf, sizeof buf, 0x52414e4745ULL);
}

uint32_t RangeDigest::Width(uint32_t level) {
  uint32_t w = 1;
  for (uint32_t i = 0; i < level; ++i) w *= kFanout;
  return w;
}

namespace {
// The hash of an empty subtree whose root is at `level`.
uint64_t EmptyHash(uint32_t level) {
  static const std::array<uint64_t, RangeDigest::kDepth + 1> kEmpty = [] {
    std::array<uint64_t, RangeDigest::kDepth + 1> e{};
    e[RangeDigest::kDepth] = 0;  // an empty leaf sums nothing
    for (int l = static_cast<int>(RangeDigest::kDepth) - 1; l >= 0; --l) {
      std::array<uint64_t, RangeDigest::kFanout> kids;
      kids.fill(e[static_cast<size_t>(l) + 1]);
      e[static_cast<size_t>(l)] = Checksum64(kids.data(), sizeof kids);
    }
    return e;
  }();
  return kEmpty[level];
}
}  // namespace

void RangeDigest::Finish() {
  for (uint32_t l = 0; l < kDepth; ++l) levels_[l].clear();
  for (int level = static_cast<int>(kDepth) - 1; level >= 0; --level) {
    const auto& below = levels_[static_cast<size_t>(level) + 1];
    auto& cur = levels_[static_cast<size_t>(level)];
    for (auto it = below.begin(); it != below.end();) {
      const uint32_t parent = it->first / kFanout;
      std::array<uint64_t, kFanout> kids;
      kids.fill(EmptyHash(static_cast<uint32_t>(level) + 1));
      for (; it != below.end() && it->first / kFanout == parent; ++it) kids[it->first % kFanout] = it->second;
      cur[parent] = Checksum64(kids.data(), sizeof kids);
    }
  }
}

uint64_t RangeDigest::Root() const {
  auto it = levels_[0].find(0);
  return it == levels_[0].end() ? EmptyHash(0) : it->second;
}

std::array<uint64_t, RangeDigest::kFanout> RangeDigest::Children(uint32_t level, uint32_t index) const {
  std::array<uint64_t, kFanout> out{};
  if (level >= kDepth || index >= Width(level)) return out;
  out.fill(EmptyHash(level + 1));
  const auto& below = levels_[level + 1];
  for (auto it = below.lower_bound(index * kFanout); it != below.end() && it->first < (index + 1) * kFanout; ++it) {
    out[it->first % kFanout] = it->second;
  }
  return out;
}

}  // namespace ringstore
