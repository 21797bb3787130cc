// Value-log garbage collection: the RocksDbStore members that give the value log's dead bytes
// back (rocksdb_store.h says when they run; docs/storage-format.md §2a the rules). All of
// them run on the writer thread, the only one that writes records, so a record cannot change
// between the check that its value is live and the write that moves it.
#include "storage/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/rocksdb_keys.h"

namespace ringstore {
using rocks::FromRocks;
using rocks::Key;

void RocksDbStore::NoteReplaced(const Stored& old) {
  if (!old.present || old.damaged || !old.header.in_log) return;
  dead_bytes_[old.header.log.segment] += ValueLog::EntryBytes(old.header.meta.size);
  gc_due_ = true;
}

Result<bool> RocksDbStore::LiveAt(const ObjectId& id, ValuePointer p, StoredHeader* header) {
  auto stored = StoredAt(id);
  if (!stored.ok()) return stored.status();
  if (!stored->present || stored->damaged || !stored->header.in_log || !(stored->header.log == p)) return false;
  if (header) *header = stored->header;
  return true;
}

// A segment may be collected only if every entry in it was seen: no damage hid one, and only
// the previous run's last segment may end in a torn append.
bool RocksDbStore::Collectable(uint64_t segment, const ValueLog::Walk& walk) const {
  return !walk.damaged && (walk.tail_bytes == 0 || segment == vlog_->previous_run_last());
}

void RocksDbStore::ExamineSegment(uint64_t segment, uint64_t bytes) {
  uint64_t live = 0;
  bool unsure = false;
  auto walk = vlog_->ForEachEntry(segment, [&](const ObjectId& id, ValuePointer p, uint64_t size) {
    auto is_live = LiveAt(id, p, nullptr);
    if (!is_live.ok()) unsure = true;
    if (!is_live.ok() || *is_live) live += ValueLog::EntryBytes(size);
  });
  if (walk.ok() && !walk->damaged && walk->tail_bytes > 0 && segment == vlog_->previous_run_last() &&
      vlog_->CutTail(segment, bytes - walk->tail_bytes).ok()) {
    // The torn append of a crash: cut off, so that later runs see a segment that ends well.
    bytes -= walk->tail_bytes;
    walk->tail_bytes = 0;
  }
  if (!walk.ok() || !Collectable(segment, *walk)) {
    kept_.insert(segment);  // never collected (docs/storage-format.md §2a)
  } else if (!unsure) {
    dead_bytes_[segment] = bytes - std::min(bytes, live);
  } else {
    unexamined_.insert(segment);  // a later round looks again
  }
}

void RocksDbStore::CollectGarbage() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!log_failed_.ok()) return;  // nothing more is written until the store is reopened
  }
  gc_due_ = false;
  const auto sealed = vlog_->SealedSegments();
  if (!unexamined_.empty()) {
    const uint64_t segment = *unexamined_.begin();
    unexamined_.erase(unexamined_.begin());
    gc_due_ = true;  // its count is new
    for (const auto& seg : sealed) {
      if (seg.number == segment) ExamineSegment(seg.number, seg.bytes);
    }
  }
  // A segment that is all dead goes at once (nothing to move). One that still holds live
  // values is moved out only while the dead bytes are more than value_log_garbage_ratio of
  // the sealed segments: values keep dying in place under overwrites, and moving them early
  // only writes them twice (1 MiB PUTs over 64 keys ran at 300 MB/s with a per-segment
  // half-dead rule, 800 without moves). Then the segment with the most dead bytes goes.
  const ValueLog::SegmentInfo* all_dead = nullptr;
  const ValueLog::SegmentInfo* most_dead = nullptr;
  uint64_t most = 0, total = 0, dead_total = 0;
  for (const auto& seg : sealed) {
    total += seg.bytes;
    if (unexamined_.count(seg.number) != 0 || kept_.count(seg.number) != 0) continue;
    auto it = dead_bytes_.find(seg.number);
    const uint64_t dead = it == dead_bytes_.end() ? 0 : std::min(it->second, seg.bytes);
    dead_total += dead;
    if (dead == seg.bytes && all_dead == nullptr) all_dead = &seg;  // empty ones too
    if (dead > most) {
      most_dead = &seg;
      most = dead;
    }
  }
  const bool over = static_cast<double>(dead_total) > options_.value_log_garbage_ratio * static_cast<double>(total);
  const ValueLog::SegmentInfo* victim = all_dead != nullptr ? all_dead : over ? most_dead : nullptr;
  if (victim == nullptr) return;
  gc_due_ = true;  // another segment may qualify too: look again after the next group
  if (!RelocateSegment(victim->number).ok()) {
    // Tried again once more of it is known dead.
    dead_bytes_[victim->number] = 0;
  }
}

Status RocksDbStore::RelocateSegment(uint64_t segment) {
  struct Move {
    ObjectId id;
    ValuePointer from;
    uint64_t size = 0;
    StoredHeader header;
  };
  std::vector<Move> moves;
  Status unsure;
  auto walk = vlog_->ForEachEntry(segment, [&](const ObjectId& id, ValuePointer p, uint64_t size) {
    StoredHeader h;
    auto is_live = LiveAt(id, p, &h);
    if (!is_live.ok()) {
      unsure = is_live.status();
    } else if (*is_live) {
      moves.push_back(Move{id, p, size, h});
    }
  });
  if (!walk.ok()) return walk.status();
  if (!unsure.ok()) return unsure;
  if (!Collectable(segment, *walk)) {
    kept_.insert(segment);
    return Status::Corruption("value log segment " + std::to_string(segment) + " is damaged");
  }
  if (!moves.empty()) {
    rocksdb::WriteBatch batch;
    for (Move& m : moves) {
      auto value = vlog_->Read(m.from, m.size);
      if (!value.ok()) return value.status();
      auto p = vlog_->Append(m.id, *value);
      if (!p.ok()) return p.status();
      m.header.log = *p;
      batch.Put(data_cf_, Key(m.id), EncodeLogRecord(m.header.meta, *p));
    }
    // The moved values and the records that point at them are durable before the old copies
    // go, whatever the store's durability.
    if (Status s = vlog_->Sync(); !s.ok()) return s;
    if (Status s = WriteLogged(batch); !s.ok()) {
      meta_cache_.clear();  // unsure what reached the disk
      return s;
    }
    for (const Move& m : moves) {
      if (auto it = meta_cache_.find(m.id); it != meta_cache_.end()) it->second = m.header;
    }
  }
  // The moves, and the writes that made the other entries dead, must be durable before their
  // old values go: the last groups may not be synced yet (sync durability: the syncer is
  // behind; async: never). Without this, a crash could bring back a record that points into
  // the deleted segment.
  if (Status s = SyncLog(); !s.ok()) return s;
  dead_bytes_.erase(segment);
  return vlog_->Remove(segment);
}

}  // namespace ringstore
