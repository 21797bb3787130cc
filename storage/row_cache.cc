#include "storage/row_cache.h"

namespace ringstore {

const Record* RowCache::Find(const ObjectId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->record;
}

void RowCache::Insert(const ObjectId& id, const Record& record) {
  Erase(id);
  const size_t cost = Cost(record);
  if (record.value.size() > max_value_bytes_ || cost > capacity_bytes_) return;
  while (bytes_ + cost > capacity_bytes_) {
    bytes_ -= Cost(lru_.back().record);
    index_.erase(lru_.back().id);
    lru_.pop_back();
  }
  lru_.push_front(Entry{id, record});
  index_.emplace(id, lru_.begin());
  bytes_ += cost;
}

void RowCache::Erase(const ObjectId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  bytes_ -= Cost(it->second->record);
  lru_.erase(it->second);
  index_.erase(it);
}

void RowCache::Clear() {
  index_.clear();
  lru_.clear();
  bytes_ = 0;
}

}  // namespace ringstore
