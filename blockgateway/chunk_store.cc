#include "blockgateway/chunk_store.h"

#include <algorithm>

namespace ringstore::block {

struct ClusterChunkStore::Attempt {
  uint64_t index = 0;
  bool is_load = false;
  std::string data;  // for a store
  std::function<void(Result<std::string>)> loaded;
  std::function<void(Status)> stored;
  Clock::Duration deadline{};
  Clock::Duration backoff{};
};

ClusterChunkStore::ClusterChunkStore(VolumeMeta meta, ClusterClient& client, Clock& clock, RetryPolicy policy)
    : meta_(std::move(meta)), client_(client), clock_(clock), policy_(policy) {}

Quorum ClusterChunkStore::quorum() const { return FitToRing(meta_.quorum, client_.table().ring_nodes()); }

bool ClusterChunkStore::Retryable(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kTimeout || s.code() == Code::kBusy;
}

void ClusterChunkStore::Load(uint64_t index, std::function<void(Result<std::string>)> done) {
  auto a = std::make_shared<Attempt>();
  a->index = index;
  a->is_load = true;
  a->loaded = std::move(done);
  a->deadline = clock_.Now() + policy_.retry_budget;
  a->backoff = policy_.first_backoff;
  Run(std::move(a));
}

void ClusterChunkStore::Store(uint64_t index, std::string data, std::function<void(Status)> done) {
  auto a = std::make_shared<Attempt>();
  a->index = index;
  a->data = std::move(data);
  a->stored = std::move(done);
  a->deadline = clock_.Now() + policy_.retry_budget;
  a->backoff = policy_.first_backoff;
  Run(std::move(a));
}

void ClusterChunkStore::Exists(uint64_t index, std::function<void(Result<bool>)> done) {
  client_.Stat(meta_.ChunkId(index), quorum(), [done = std::move(done)](Result<RecordMeta> r) {
    if (r.ok()) return done(!r->tombstone());
    if (r.status().IsNotFound()) return done(false);
    done(r.status());
  });
}

void ClusterChunkStore::Run(std::shared_ptr<Attempt> a) {
  // Called on a failure: retry after a backoff while the budget lasts, else report it.
  auto retry_or = [this, a](const Status& s) -> bool {
    // The last wait is cut short so that the last try happens at the deadline.
    const Clock::Duration now = clock_.Now();
    if (!Retryable(s) || now >= a->deadline) return false;
    const Clock::Duration wait = std::min(a->backoff, a->deadline - now);
    a->backoff = std::min(a->backoff * 2, policy_.max_backoff);
    clock_.Schedule(wait, [this, a] {
      client_.Refresh([this, a](Status) { Run(a); });
    });
    return true;
  };
  const ObjectKey id = meta_.ChunkId(a->index);
  if (a->is_load) {
    client_.Get(id, quorum(), [this, a, retry_or](Result<Record> r) {
      if (!r.ok()) {
        if (r.status().IsNotFound()) return a->loaded(std::string());
        if (retry_or(r.status())) return;
        return a->loaded(r.status());
      }
      if (r->meta.tombstone()) return a->loaded(std::string());
      if (r->value.size() != meta_.chunk_size) {
        return a->loaded(Status::Corruption("chunk " + std::to_string(a->index) + " has " +
                                            std::to_string(r->value.size()) + " bytes, not the chunk size"));
      }
      a->loaded(std::move(r->value));
    });
    return;
  }
  if (gate_) {
    if (Status g = gate_(); !g.ok()) {
      if (!retry_or(g)) a->stored(g);
      return;
    }
  }
  auto on_ack = [a, retry_or](Result<Ack> r) {
    if (!r.ok() && retry_or(r.status())) return;
    a->stored(r.ok() ? Status::Ok() : r.status());
  };
  // The ClusterClient takes the value by move; a retry needs it again, so send a copy while
  // the budget allows another attempt.
  if (a->data.empty()) client_.Del(id, quorum(), std::move(on_ack));
  else client_.Put(id, a->data, quorum(), std::move(on_ack));
}

}  // namespace ringstore::block
