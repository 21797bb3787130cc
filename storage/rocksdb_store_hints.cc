// RocksDbStore: the hints column family (see rocksdb_store.h; docs/storage-format.md §3).
// A hint lives under the object id's 32 bytes; its value is the N (4 bytes) and the newest
// fallback write's timestamp (8 bytes), little-endian.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <memory>

#include "dht/endian.h"
#include "storage/rocksdb_keys.h"
#include "storage/rocksdb_store.h"

namespace ringstore {
using rocks::FromRocks;
using rocks::Key;

namespace {

constexpr size_t kHintBytes = 12;

std::string EncodeHint(const StoredHint& h) {
  std::string v(kHintBytes, '\0');
  PutLE(v.data(), h.route_n, 4);
  PutLE(v.data() + 4, h.ts, 8);
  return v;
}

Result<StoredHint> DecodeHint(std::string_view key, std::string_view value) {
  auto id = ObjectId::FromBytes(key);
  if (!id.ok() || value.size() != kHintBytes) return Status::Corruption("a damaged hint");
  return StoredHint{*id, static_cast<uint32_t>(GetLE(value.data(), 4)), GetLE(value.data() + 4, 8)};
}

}  // namespace

void RocksDbStore::Hints(const ObjectId& begin, size_t limit,
                         std::function<void(Result<std::vector<StoredHint>>)> done) {
  auto run = [this, begin, limit, done]() {
    std::vector<StoredHint> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), hints_cf_));
    for (it->Seek(Key(begin)); it->Valid() && out.size() < limit; it->Next()) {
      auto h = DecodeHint(std::string_view(it->key().data(), it->key().size()),
                          std::string_view(it->value().data(), it->value().size()));
      if (!h.ok()) continue;  // a damaged hint is skipped: anti-entropy still moves its record
      out.push_back(*h);
    }
    const Status status = FromRocks(it->status());
    Result<std::vector<StoredHint>> r =
        status.ok() ? Result<std::vector<StoredHint>>(std::move(out)) : Result<std::vector<StoredHint>>(status);
    executor_([done, r = std::move(r)]() mutable { done(std::move(r)); });
  };
  ReadTask t{ObjectId(), nullptr, nullptr, std::move(run)};
  if (!EnqueueRead(t)) {
    executor_([done = std::move(done), s = Refusal()] { done(s); });
  }
}

void RocksDbStore::ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) {
  EnqueueWrite(WriteTask{{}, std::move(done), std::move(hints)});
}

Result<std::optional<StoredHint>*> RocksDbStore::HintAt(GroupHints& now, const ObjectId& id) {
  auto it = now.find(id);
  if (it != now.end()) return &it->second;
  std::optional<StoredHint> stored;
  rocksdb::PinnableSlice raw;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), hints_cf_, Key(id), &raw);
  if (s.ok()) {
    auto h = DecodeHint(id.AsStringView(), std::string_view(raw.data(), raw.size()));
    // A damaged one counts as the oldest: the next fallback write replaces it, a drop removes it.
    stored = h.ok() ? *h : StoredHint{id, 0, 0};
  } else if (!s.IsNotFound()) {
    return FromRocks(s);
  }
  return &now.emplace(id, stored).first->second;
}

Status RocksDbStore::KeepHint(rocksdb::WriteBatch& batch, GroupHints& now, const ObjectId& id, uint32_t route_n,
                              Timestamp ts) {
  auto at = HintAt(now, id);
  if (!at.ok()) return at.status();
  std::optional<StoredHint>& h = **at;
  if (!h) h = StoredHint{id, 0, 0};
  h->route_n = std::max(h->route_n, route_n);
  h->ts = std::max(h->ts, ts);
  return FromRocks(batch.Put(hints_cf_, Key(id), EncodeHint(*h)));
}

Status RocksDbStore::DropHint(rocksdb::WriteBatch& batch, GroupHints& now, const StoredHint& drop) {
  auto at = HintAt(now, drop.id);
  if (!at.ok()) return at.status();
  std::optional<StoredHint>& h = **at;
  if (!h || h->ts > drop.ts) return Status::Ok();  // none, or a newer fallback write's
  h.reset();
  return FromRocks(batch.Delete(hints_cf_, Key(drop.id)));
}

}  // namespace ringstore
