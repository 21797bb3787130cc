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

void RangeDigest::Finish() {
  levels_.assign(kDepth, {});
  const std::vector<uint64_t>* below = &leaves_;
  for (int level = static_cast<int>(kDepth) - 1; level >= 0; --level) {
    auto& cur = levels_[static_cast<size_t>(level)];
    cur.assign(Width(static_cast<uint32_t>(level)), 0);
    for (uint32_t i = 0; i < cur.size(); ++i) {
      cur[i] = Checksum64(below->data() + static_cast<size_t>(i) * kFanout, kFanout * sizeof(uint64_t));
    }
    below = &cur;
  }
}

std::array<uint64_t, RangeDigest::kFanout> RangeDigest::Children(uint32_t level, uint32_t index) const {
  std::array<uint64_t, kFanout> out{};
  if (level >= kDepth || index >= Width(level) || levels_.empty()) return out;
  const std::vector<uint64_t>& below = level + 1 == kDepth ? leaves_ : levels_[level + 1];
  for (uint32_t c = 0; c < kFanout; ++c) out[c] = below[static_cast<size_t>(index) * kFanout + c];
  return out;
}

}  // namespace ringstore
