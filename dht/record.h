// Record: one version of an object as it travels on the wire and sits in a store: the bytes,
// the HLC timestamp, flags (tombstone) and the XXH3-64 checksum of the bytes.
// Thread-safety: plain value type.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>

#include "dht/checksum.h"
#include "dht/hlc.h"
#include "dht/object_id.h"

namespace ringstore {

constexpr uint32_t kRecordTombstone = 1u << 0;
// The value is an LwwMap (dht/lww_map.h): replicas merge it entry by entry.
constexpr uint32_t kRecordMap = 1u << 1;
// Bits 8-15: the object's replica count N as its writer placed it (0: not recorded, for
// records written before it was; the node's --replicas then applies). Repair keeps this many
// copies (docs/repair.md R4). It is part of the version: every copy of a write carries the same.
constexpr uint32_t kRecordReplicasShift = 8;
constexpr uint32_t kRecordReplicasMask = 0xffu << kRecordReplicasShift;

struct RecordMeta {
  Timestamp ts = 0;
  uint32_t flags = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
  bool tombstone() const { return (flags & kRecordTombstone) != 0; }
  uint32_t replicas() const { return (flags & kRecordReplicasMask) >> kRecordReplicasShift; }
  // n is at most kMaxReplicas (routing/placement.h), so it fits the 8 bits.
  void set_replicas(uint32_t n) { flags = (flags & ~kRecordReplicasMask) | ((n & 0xffu) << kRecordReplicasShift); }
};

struct Record {
  RecordMeta meta;
  std::string value;

  static Record Value(Timestamp ts, std::string bytes) {
    Record r;
    r.meta.ts = ts;
    r.meta.size = bytes.size();
    r.meta.checksum = Checksum64(bytes);
    r.value = std::move(bytes);
    return r;
  }
  static Record Tombstone(Timestamp ts) {
    Record r;
    r.meta.ts = ts;
    r.meta.flags = kRecordTombstone;
    r.meta.checksum = Checksum64(std::string_view());
    return r;
  }
  // True when value matches size and checksum.
  bool Intact() const { return value.size() == meta.size && Checksum64(value) == meta.checksum; }
};

// Last-writer-wins order: newer timestamp wins; equal timestamps are broken by the checksum
// and then by the tombstone flag, so every replica picks the same winner.
inline bool Supersedes(const RecordMeta& a, const RecordMeta& b) {
  return std::tie(a.ts, a.checksum, a.flags) > std::tie(b.ts, b.checksum, b.flags);
}

}  // namespace ringstore
