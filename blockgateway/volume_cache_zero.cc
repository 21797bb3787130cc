// VolumeCache: zeroes of long ranges, applied a slice at a time, and the operations that wait
// behind one while it runs (see Zero in volume_cache.h). The zeroing itself is ZeroRange's,
// in volume_cache.cc.
#include <algorithm>
#include <memory>

#include "blockgateway/volume_cache.h"

namespace ringstore::block {

bool VolumeCache::HoldBehindZero(std::function<void()> op) {
  // Also while the held ones are being run: one that arrives then goes after them.
  if (!zeroing_ && held_ops_.empty()) return false;
  held_ops_.push_back(std::move(op));
  return true;
}

// A zero of a long range, applied a slice at a time (see Zero).
struct VolumeCache::ZeroJob {
  uint64_t next, end;
  bool fua, allocate;
  std::function<void(Status)> done;
  bool running = false;  // ZeroSlices is on the stack: a slice answered at once continues there
  bool again = false;
  bool finished = false;
  Status first;  // the first slice that failed
};

void VolumeCache::Zero(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done) {
  if (length == 0) return done(Status::Ok());
  if (Status s = Admit(); !s.ok()) return done(s);
  if (HoldBehindZero([this, offset, length, fua, allocate, done] { ZeroAdmitted(offset, length, fua, allocate, done); })) {
    return;
  }
  ZeroAdmitted(offset, length, fua, allocate, std::move(done));
}

void VolumeCache::ZeroAdmitted(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done) {
  const uint64_t slice = ZeroSliceBytes();
  if ((offset + length - 1) / slice == offset / slice) return ZeroRange(offset, length, fua, allocate, std::move(done));
  auto job = std::make_shared<ZeroJob>(ZeroJob{offset, offset + length, fua, allocate, std::move(done), false, false, false, Status::Ok()});
  zeroing_ = job;  // what arrives from now on waits behind it, so that arrival order holds
  ZeroSlices(job);
}

void VolumeCache::FinishZero(const std::shared_ptr<ZeroJob>& job, Status s) {
  job->finished = true;
  if (zeroing_ == job) zeroing_.reset();
  auto done = std::move(job->done);
  done(std::move(s));
  // Then what waited behind it, in order, until one of them starts another long zero. (Those
  // that arrive meanwhile queue behind them: HoldBehindZero.)
  while (!zeroing_ && !held_ops_.empty()) {
    auto op = std::move(held_ops_.front());
    held_ops_.pop_front();
    op();
  }
}

uint64_t VolumeCache::ZeroSliceBytes() const {
  const uint64_t cs = meta_.chunk_size;
  return std::max<uint64_t>(cs, limits_.dirty_bytes / 2 / cs * cs);
}

void VolumeCache::ZeroSlices(const std::shared_ptr<ZeroJob>& job) {
  // A trampoline: a slice answered at once (under the dirty limit) starts the next one from
  // this loop, not from a deeper frame, so a range of many slices needs no deep stack.
  if (job->running) {
    job->again = true;
    return;
  }
  job->running = true;
  do {
    job->again = false;
    if (job->finished) break;
    if (job->next == job->end) {
      job->running = false;
      return FinishZero(job, job->first);
    }
    // Slices end on multiples of the slice size, so all but the first start on a chunk.
    const uint64_t slice = ZeroSliceBytes();
    const uint64_t start = job->next;
    const uint64_t stop = std::min(job->end, (start / slice + 1) * slice);
    job->next = stop;
    ZeroRange(start, stop - start, job->fua, job->allocate, [this, job](Status s) {
      // A failed slice (a store failed) does not end it: the rest is applied all the same,
      // as a failed write is, and written back once stores work again.
      if (!s.ok() && job->first.ok()) job->first = s;
      ZeroSlices(job);
    });
  } while (job->again);
  job->running = false;
}

}  // namespace ringstore::block
