// RangeDigest: a fixed-shape hash tree over the object id space, the digest two replicas
// compare to find the records they disagree on (anti-entropy, node/anti_entropy.h).
// The id space is cut into kLeaves ranges by the id's top 12 bits; a leaf's hash is the sum
// of EntryHash over the records in its range (order-free, so a scan can add them in any
// order), and each inner node hashes its kFanout children. Level 0 is the root, level
// kDepth the leaves. Two trees that differ in d leaves are told apart in kDepth round trips
// of at most d * kFanout hashes each: O(differences * log n), not a transfer of the range.
// Thread-safety: a value type.
#pragma once

#include <array>
#include <cstdint>
#include <map>

#include "dht/object_id.h"
#include "dht/record.h"

namespace ringstore {

class RangeDigest {
 public:
  static constexpr uint32_t kFanout = 16;
  static constexpr uint32_t kDepth = 3;
  static constexpr uint32_t kLeaves = 4096;  // kFanout ^ kDepth

  // The leaf an id falls in, and the id range [LeafBegin, LeafEnd) of a leaf; the last
  // leaf's end is ObjectId::Max(), which the range excludes (a 2^-256 chance to matter).
  static uint32_t LeafOf(const ObjectId& id);
  static ObjectId LeafBegin(uint32_t leaf);
  static ObjectId LeafEnd(uint32_t leaf);
  // What a record contributes: its id and version (timestamp, checksum, flags).
  static uint64_t EntryHash(const ObjectId& id, const RecordMeta& meta);
  // Nodes at a level: kFanout ^ level.
  static uint32_t Width(uint32_t level);

  // Leaves and inner nodes are kept sparse: memory and Finish's work grow with the leaves that
  // hold records, not with kLeaves (a node in a large ring builds one digest per peer, most
  // of them small). An empty subtree hashes to a fixed value per level.
  void Add(const ObjectId& id, const RecordMeta& meta) { levels_[kDepth][LeafOf(id)] += EntryHash(id, meta); }
  // Computes the inner levels; call after the last Add and before Children.
  void Finish();
  // The kFanout hashes under node `index` of `level` (level < kDepth), after Finish.
  std::array<uint64_t, kFanout> Children(uint32_t level, uint32_t index) const;
  uint64_t Root() const;
  void CountEntry() { ++entries_; }
  uint64_t entries() const { return entries_; }

 private:
  // levels_[l]: the non-empty nodes of level l (0 root .. kDepth leaves), by index.
  std::array<std::map<uint32_t, uint64_t>, kDepth + 1> levels_;
  uint64_t entries_ = 0;
};

}  // namespace ringstore
