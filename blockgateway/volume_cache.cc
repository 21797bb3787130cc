#include "blockgateway/volume_cache.h"

#include <algorithm>
#include <cstring>
#include <memory>

namespace ringstore::block {

namespace {

constexpr Clock::Duration kTickInterval = std::chrono::milliseconds(200);
// How long a chunk whose store failed waits before it is stored again.
constexpr Clock::Duration kFailedStoreDelay = std::chrono::seconds(1);

// Counts the parts of one operation down and answers once with the first failure.
struct Joiner {
  size_t pending;
  Status first;
  std::function<void(Status)> done;
  void Finish(const Status& s) {
    if (!s.ok() && first.ok()) first = s;
    if (--pending == 0) done(first);
  }
};

}  // namespace

VolumeCache::VolumeCache(VolumeMeta meta, ChunkStore& store, Clock& clock, CacheLimits limits)
    : meta_(std::move(meta)), store_(store), clock_(clock), limits_(limits) {}

VolumeCache::~VolumeCache() {
  *alive_ = false;
  if (tick_armed_) clock_.Cancel(tick_);
}

std::vector<VolumeCache::Part> VolumeCache::Split(uint64_t offset, uint64_t length) const {
  std::vector<Part> parts;
  const uint64_t cs = meta_.chunk_size;
  uint64_t pos = 0;
  while (pos < length) {
    const uint64_t abs = offset + pos;
    const uint64_t index = abs / cs, begin = abs % cs;
    const uint64_t end = std::min(cs, begin + (length - pos));
    parts.push_back(Part{index, begin, end, pos});
    pos += end - begin;
  }
  return parts;
}

// ---- chunk access --------------------------------------------------------------------

VolumeCache::Chunk& VolumeCache::At(uint64_t index) {
  auto [it, fresh] = chunks_.try_emplace(index);
  if (fresh) it->second.version = it->second.durable = versions_;
  return it->second;
}

void VolumeCache::WithChunk(uint64_t index, bool need_data, std::function<void(Status)> fn) {
  Chunk& c = At(index);
  if (c.state == State::kReady && c.queue.empty()) {
    ++stats_.hits;
    return fn(Status::Ok());
  }
  if (c.state == State::kAbsent && !need_data) {
    c.state = State::kReady;  // replaced whole: the old bytes are not needed
    return fn(Status::Ok());
  }
  ++stats_.misses;
  c.queue.push_back(std::move(fn));
  if (c.state == State::kAbsent) StartLoad(index);
}

void VolumeCache::StartLoad(uint64_t index) {
  Chunk& c = At(index);
  c.state = State::kLoading;
  ++loads_in_flight_;
  ++stats_.loads;
  std::weak_ptr<bool> alive = alive_;
  store_.Load(index, [this, alive, index](Result<std::string> r) {
    if (alive.expired()) return;
    OnLoaded(index, std::move(r));
  });
}

void VolumeCache::OnLoaded(uint64_t index, Result<std::string> r) {
  --loads_in_flight_;
  const Status s = r.status();
  std::list<std::function<void(Status)>> failed;
  {
    Chunk& c = At(index);
    if (s.ok()) {
      c.state = State::kReady;
      SetData(c, std::move(*r));
    } else {
      ++stats_.load_failures;
      c.state = State::kAbsent;
      failed.swap(c.queue);  // only these fail: one issued from their callbacks loads afresh
    }
  }
  // Run the waiting operations in arrival order; one that arrives meanwhile queues behind.
  // Their callbacks may start other operations, which may evict and erase chunks, so the
  // chunk is looked up again each time; if it was dropped and another load of it started,
  // what queued since waits for that load.
  for (;;) {
    std::function<void(Status)> fn;
    if (!s.ok()) {
      if (failed.empty()) break;
      fn = std::move(failed.front());
      failed.pop_front();
    } else {
      auto it = chunks_.find(index);
      if (it == chunks_.end() || it->second.state != State::kReady || it->second.queue.empty()) break;
      fn = std::move(it->second.queue.front());
      it->second.queue.pop_front();
    }
    fn(s);
  }
  if (auto it = chunks_.find(index); it != chunks_.end()) {
    Chunk& c = it->second;
    if (c.state == State::kReady && dirty_.count(index) == 0) Touch(index, c);
    if (c.state == State::kAbsent && c.queue.empty() && c.waiters.empty()) chunks_.erase(it);
  }
  Evict();
}

void VolumeCache::SetData(Chunk& c, std::string data) {
  resident_bytes_ -= c.data.size();
  c.zeros = false;
  c.data = std::move(data);
  resident_bytes_ += c.data.size();
}

void VolumeCache::Touch(uint64_t index, Chunk& c) {
  if (c.in_lru) {
    lru_.splice(lru_.end(), lru_, c.lru);
  } else {
    c.lru = lru_.insert(lru_.end(), index);
    c.in_lru = true;
  }
}

void VolumeCache::MarkDirty(uint64_t index, Chunk& c) {
  c.version = ++versions_;
  c.retry_at = Clock::Duration{};  // new bytes: worth a store when age or pressure asks
  if (c.in_lru) {
    lru_.erase(c.lru);
    c.in_lru = false;
  }
  if (dirty_.insert(index).second) {
    c.dirtied_at = clock_.Now();
    ArmTick();
  }
}

void VolumeCache::Evict() {
  while (!lru_.empty() && resident_bytes_ + lru_.size() * kEntryBytes > limits_.cache_bytes) {
    const uint64_t index = lru_.front();
    lru_.pop_front();
    Chunk& c = At(index);
    c.in_lru = false;
    // Operations still queued on it (its load's callbacks are running) need its bytes; it
    // goes back on the list once they have run.
    if (!c.queue.empty()) continue;
    Remember(index, c.data.empty() && !c.zeros);  // clean: what it holds is what is stored
    SetData(c, std::string());
    if (c.waiters.empty() && !c.storing) chunks_.erase(index);
    else c.state = State::kAbsent;
  }
}

void VolumeCache::Readahead(uint64_t last_index) {
  for (uint64_t i = 1; i <= limits_.readahead_chunks; ++i) {
    const uint64_t index = last_index + i;
    if (index >= meta_.chunks() || loads_in_flight_ >= limits_.max_loads) return;
    auto it = chunks_.find(index);
    if (it != chunks_.end() && it->second.state != State::kAbsent) continue;
    ++stats_.readahead;
    StartLoad(index);
  }
}

// ---- operations ----------------------------------------------------------------------

void VolumeCache::Read(uint64_t offset, uint64_t length, std::function<void(Result<std::string>)> done) {
  if (MustWait(offset, length)) return Hold(offset, length, [this, offset, length, done] { ReadUnheld(offset, length, done); });
  ReadUnheld(offset, length, std::move(done));
}

void VolumeCache::ReadUnheld(uint64_t offset, uint64_t length, std::function<void(Result<std::string>)> done) {
  if (length == 0) return done(std::string());
  const auto parts = Split(offset, length);
  // Sequential: the chunk before this read is in memory, so fetch ahead of it.
  const uint64_t first = parts.front().index;
  if (first > 0) {
    auto it = chunks_.find(first - 1);
    if (it != chunks_.end() && it->second.state == State::kReady) Readahead(parts.back().index);
  }
  if (parts.size() == 1) {
    // Within one chunk (the usual read): the reply is made from the chunk's bytes at once,
    // not zeroed first and then copied over.
    const Part p = parts.front();
    WithChunk(p.index, true, [this, p, done = std::move(done)](Status s) {
      if (!s.ok()) return done(s);
      Chunk& c = At(p.index);
      std::string out = c.data.empty() ? std::string(p.end - p.begin, '\0')
                                       : c.data.substr(p.begin, p.end - p.begin);
      if (dirty_.count(p.index) == 0) Touch(p.index, c);
      done(std::move(out));
    });
    return Evict();
  }
  auto out = std::make_shared<std::string>(length, '\0');
  auto join = std::make_shared<Joiner>(Joiner{parts.size(), Status::Ok(), nullptr});
  join->done = [out, done](Status s) {
    if (!s.ok()) return done(s);
    done(std::move(*out));
  };
  for (const Part& p : parts) {
    WithChunk(p.index, true, [this, p, out, join](Status s) {
      if (s.ok()) {
        Chunk& c = At(p.index);
        if (!c.data.empty()) std::memcpy(out->data() + p.pos, c.data.data() + p.begin, p.end - p.begin);
        if (dirty_.count(p.index) == 0) Touch(p.index, c);
      }
      join->Finish(s);
    });
  }
  Evict();
}

std::optional<bool> VolumeCache::KnownHole(uint64_t index) const {
  if (auto it = chunks_.find(index); it != chunks_.end()) {
    const Chunk& c = it->second;
    if (c.state == State::kLoading || !c.queue.empty()) return false;  // operations waiting on it
    if (c.state == State::kReady) return c.data.empty() && !c.zeros;
    if (c.version > c.durable) return false;
  }
  // Not in memory, or absent and clean: as stored.
  if (index < known_.size() && known_[index] == kData) return false;
  return std::nullopt;
}

void VolumeCache::Remember(uint64_t index, bool hole) {
  if (hole) {  // a hole is never remembered: another writer could fill it
    if (index < known_.size()) known_[index] = kUnknown;
    return;
  }
  if (known_.empty()) {
    if (meta_.chunks() > kMaxKnownChunks) return;
    known_.assign(meta_.chunks(), kUnknown);
  }
  if (index < known_.size()) known_[index] = kData;
}

void VolumeCache::Holes(uint64_t offset, uint64_t length, uint32_t max_chunks,
                        std::function<void(std::vector<bool>)> done) {
  if (MustWait(offset, length)) {
    return Hold(offset, length, [this, offset, length, max_chunks, done] { HolesUnheld(offset, length, max_chunks, done); });
  }
  HolesUnheld(offset, length, max_chunks, std::move(done));
}

void VolumeCache::HolesUnheld(uint64_t offset, uint64_t length, uint32_t max_chunks,
                              std::function<void(std::vector<bool>)> done) {
  const uint64_t cs = meta_.chunk_size;
  const uint64_t first = offset / cs;
  const uint64_t last = length == 0 ? first : std::min((offset + length - 1) / cs, first + std::max(max_chunks, 1u) - 1);
  struct Query {
    std::vector<bool> holes;
    size_t pending = 0;
    std::function<void(std::vector<bool>)> done;
  };
  auto q = std::make_shared<Query>();
  q->holes.assign(last - first + 1, false);
  q->done = std::move(done);
  std::vector<uint64_t> ask;
  for (uint64_t i = first; i <= last; ++i) {
    if (auto known = KnownHole(i)) q->holes[i - first] = *known;
    else ask.push_back(i);
  }
  if (ask.empty()) return q->done(std::move(q->holes));
  q->pending = ask.size();
  for (uint64_t i : ask) {
    exists_waiting_.emplace_back(i, [this, q, i, first](Result<bool> stored) {
      // A write that came meanwhile has the chunk in memory: that is the newer answer.
      const auto known = KnownHole(i);
      if (!known && stored.ok()) Remember(i, !*stored);
      q->holes[i - first] = known ? *known : (stored.ok() && !*stored);
      if (--q->pending == 0) q->done(std::move(q->holes));
    });
  }
  PumpExists();
}

void VolumeCache::PumpExists() {
  if (pumping_exists_) return;  // a completion inside the loop below: the loop goes on
  pumping_exists_ = true;
  std::weak_ptr<bool> alive = alive_;
  while (!exists_waiting_.empty() && exists_in_flight_ < limits_.max_loads) {
    auto [index, fn] = std::move(exists_waiting_.front());
    exists_waiting_.pop_front();
    ++exists_in_flight_;
    store_.Exists(index, [this, alive, fn = std::move(fn)](Result<bool> r) {
      if (alive.expired()) return;
      --exists_in_flight_;
      fn(std::move(r));
      PumpExists();
    });
    if (alive.expired()) return;
  }
  pumping_exists_ = false;
}

Status VolumeCache::Admit() const {
  if (failed_chunks_ == 0 || dirty_bytes() <= limits_.dirty_bytes) return Status::Ok();
  return Status::IOError("writeback is failing (" + std::to_string(failed_chunks_) + " chunk(s)) and " +
                         FormatSize(dirty_bytes()) +
                         " of dirty data is over the limit: nothing more is taken in until they are stored");
}

void VolumeCache::Write(uint64_t offset, std::string data, bool fua, std::function<void(Status)> done) {
  if (data.empty()) return done(Status::Ok());
  if (Status s = Admit(); !s.ok()) return done(s);
  if (MustWait(offset, data.size())) {
    auto bytes = std::make_shared<std::string>(std::move(data));
    return Hold(offset, bytes->size(), [this, offset, bytes, fua, done] { WriteAdmitted(offset, std::move(*bytes), fua, done); });
  }
  WriteAdmitted(offset, std::move(data), fua, std::move(done));
}

void VolumeCache::WriteAdmitted(uint64_t offset, std::string data, bool fua, std::function<void(Status)> done) {
  const auto parts = Split(offset, data.size());
  auto bytes = std::make_shared<std::string>(std::move(data));
  auto versions = std::make_shared<std::vector<std::pair<uint64_t, uint64_t>>>();
  auto join = std::make_shared<Joiner>(Joiner{parts.size(), Status::Ok(), nullptr});
  join->done = [this, versions, fua, done](Status s) {
    if (!s.ok()) return done(s);
    Acknowledge(fua, std::move(*versions), done);
  };
  const uint64_t cs = meta_.chunk_size;
  for (const Part& p : parts) {
    const bool whole = p.begin == 0 && p.end == cs;
    WithChunk(p.index, !whole, [this, p, bytes, versions, join, cs](Status s) {
      if (s.ok()) {
        Chunk& c = At(p.index);
        if (c.data.empty()) SetData(c, std::string(cs, '\0'));
        std::memcpy(c.data.data() + p.begin, bytes->data() + p.pos, p.end - p.begin);
        MarkDirty(p.index, c);
        versions->emplace_back(p.index, c.version);
      }
      join->Finish(s);
    });
  }
  Pump();
}

void VolumeCache::ZeroRange(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done) {
  const auto parts = Split(offset, length);
  auto versions = std::make_shared<std::vector<std::pair<uint64_t, uint64_t>>>();
  auto join = std::make_shared<Joiner>(Joiner{parts.size(), Status::Ok(), nullptr});
  join->done = [this, versions, fua, done](Status s) {
    if (!s.ok()) return done(s);
    Acknowledge(fua, std::move(*versions), done);
  };
  const uint64_t cs = meta_.chunk_size;
  for (const Part& p : parts) {
    const bool whole = p.begin == 0 && p.end == cs;
    WithChunk(p.index, !whole, [this, p, versions, join, whole, allocate](Status s) {
      if (s.ok()) {
        Chunk& c = At(p.index);
        if (whole) {
          SetData(c, std::string());
          c.zeros = allocate;
          MarkDirty(p.index, c);
          Urgent(p.index);
        } else if (!c.data.empty()) {
          std::memset(c.data.data() + p.begin, 0, p.end - p.begin);
          MarkDirty(p.index, c);
        } else if (allocate && !c.zeros) {
          c.zeros = true;  // a hole, to be stored as zeros
          MarkDirty(p.index, c);
        }
        // A partial zero of a hole (or of stored zeros) changes nothing, but a FUA still
        // waits for what is pending on the chunk.
        versions->emplace_back(p.index, c.version);
      }
      join->Finish(s);
    });
  }
  Pump();
}

void VolumeCache::Acknowledge(bool fua, std::vector<std::pair<uint64_t, uint64_t>> versions,
                              std::function<void(Status)> done) {
  if (fua) return WaitDurable(std::move(versions), std::move(done));
  if (dirty_bytes() > limits_.dirty_bytes) {
    ++stats_.throttled;
    throttled_.push_back(std::move(done));
    Pump();
    return;
  }
  done(Status::Ok());
}

void VolumeCache::Flush(std::function<void(Status)> done) {
  // Never held behind a zero in slices: it covers what was answered before it, which that
  // zero and what waits behind it are not. (And its stores may be what the zero waits for.)
  std::vector<std::pair<uint64_t, uint64_t>> targets;
  targets.reserve(dirty_.size());
  for (uint64_t index : dirty_) targets.emplace_back(index, At(index).version);
  WaitDurable(std::move(targets), std::move(done));
}

// ---- writeback -----------------------------------------------------------------------

void VolumeCache::WaitDurable(std::vector<std::pair<uint64_t, uint64_t>> targets, std::function<void(Status)> done) {
  std::vector<std::pair<uint64_t, uint64_t>> pending;
  for (const auto& [index, version] : targets) {
    auto it = chunks_.find(index);
    if (it != chunks_.end() && it->second.durable < version) pending.emplace_back(index, version);
  }
  if (pending.empty()) return done(Status::Ok());
  auto join = std::make_shared<Joiner>(Joiner{pending.size(), Status::Ok(), std::move(done)});
  for (const auto& [index, version] : pending) {
    At(index).waiters.push_back(Waiter{version, [join](Status s) { join->Finish(s); }});
    Urgent(index);
  }
  Pump();
}

void VolumeCache::Urgent(uint64_t index) {
  Chunk& c = At(index);
  if (c.urgent) return;
  c.urgent = true;
  urgent_.push_back(index);
}

void VolumeCache::Pump() {
  // A store that completes before it returns (one that fails at once) calls Pump again from
  // OnStored: that call only asks this one to go round again, so the stack does not grow by
  // a store per dirty chunk.
  std::weak_ptr<bool> alive = alive_;
  // One time for the whole call: a chunk whose store fails in it is not due again before the
  // call ends. And the scan for memory pressure goes on from where the last round stopped.
  const Clock::Duration now = clock_.Now();
  uint64_t scan_from = 0;
  pumping_.Run([&] {
    // Under memory pressure the lowest dirty chunks go out too (volume order: see the top of
    // volume_cache.h).
    if (dirty_bytes() > limits_.dirty_bytes / 2) {
      for (auto it = dirty_.lower_bound(scan_from); it != dirty_.end() && urgent_.size() < limits_.max_stores; ++it) {
        scan_from = *it + 1;
        Chunk& c = At(*it);
        if (!c.storing && now >= c.retry_at) Urgent(*it);
      }
    }
    while (stores_in_flight_ < limits_.max_stores && !urgent_.empty()) {
      const uint64_t index = urgent_.front();
      urgent_.pop_front();
      // Dropped from memory since it was queued (stored and evicted): nothing to store, and At
      // would make it an empty entry that nothing removes.
      auto found = chunks_.find(index);
      if (found == chunks_.end()) continue;
      Chunk& c = found->second;
      c.urgent = false;
      if (c.storing || c.version == c.durable || c.state != State::kReady) continue;
      StartStore(index);
      if (alive.expired()) return false;
    }
    return true;
  });
}

void VolumeCache::StartStore(uint64_t index) {
  Chunk& c = At(index);
  c.storing = true;
  ++stores_in_flight_;
  ++stats_.stores;
  const uint64_t version = c.version;
  std::weak_ptr<bool> alive = alive_;
  store_.Store(index, c.zeros ? std::string(meta_.chunk_size, '\0') : c.data, [this, alive, index, version](Status s) {
    if (alive.expired()) return;
    OnStored(index, version, std::move(s));
  });
}

void VolumeCache::OnStored(uint64_t index, uint64_t version, Status s) {
  --stores_in_flight_;
  Chunk& c = At(index);
  c.storing = false;
  if (c.store_failed != !s.ok()) {
    c.store_failed = !s.ok();
    if (c.store_failed) ++failed_chunks_;
    else --failed_chunks_;
  }
  if (s.ok()) {
    c.durable = std::max(c.durable, version);
    if (c.durable == c.version) {
      dirty_.erase(index);
      if (c.state == State::kReady) Touch(index, c);
    }
  } else {
    ++stats_.store_failures;
    c.retry_at = clock_.Now() + kFailedStoreDelay;
  }
  // Answer the flushes this store covered (or failed); keep the ones waiting for more.
  std::vector<Waiter> keep;
  std::vector<std::function<void(Status)>> answer;
  for (auto& w : c.waiters) {
    if (w.version <= version) answer.push_back(std::move(w.done));
    else keep.push_back(std::move(w));
  }
  c.waiters = std::move(keep);
  if (!c.waiters.empty()) Urgent(index);
  const Status reply = s.ok() ? Status::Ok() : Status::IOError("chunk " + std::to_string(index) + ": " + s.ToString());
  // Replies held by the dirty limit: released once under it. While still over it, a failed
  // store (the chunk store has already retried for its budget) fails them all, so that a
  // held write is answered EIO after a bounded time rather than when the cluster is back.
  // Their bytes stay in the cache, dirty, and are written back once stores work again.
  std::deque<std::function<void(Status)>> held;
  Status held_reply = Status::Ok();
  if (dirty_bytes() <= limits_.dirty_bytes) {
    held.swap(throttled_);
  } else if (!s.ok()) {
    held.swap(throttled_);
    held_reply = Status::IOError("writeback is failing, " + reply.message());
  }
  Pump();
  Evict();
  for (auto& fn : answer) fn(reply);
  for (auto& fn : held) fn(held_reply);
}

void VolumeCache::ArmTick() {
  if (tick_armed_) return;
  tick_armed_ = true;
  std::weak_ptr<bool> alive = alive_;
  tick_ = clock_.Schedule(kTickInterval, [this, alive] {
    if (alive.expired()) return;
    tick_armed_ = false;
    Tick();
  });
}

void VolumeCache::Tick() {
  const Clock::Duration now = clock_.Now();
  for (uint64_t index : dirty_) {
    Chunk& c = At(index);
    if (!c.storing && now >= c.retry_at && now - c.dirtied_at >= limits_.writeback_delay) Urgent(index);
  }
  Pump();
  if (!dirty_.empty()) ArmTick();
}

}  // namespace ringstore::block
