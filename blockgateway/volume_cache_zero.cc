// VolumeCache: zeroes of long ranges, applied a slice at a time, and the operations that wait
// behind one while it runs (see Zero in volume_cache.h). The zeroing itself is ZeroRange's,
// in volume_cache.cc.
#include <algorithm>
#include <memory>

#include "blockgateway/volume_cache.h"

namespace ringstore::block {

// A zero of a long range, applied a slice at a time (see Zero).
struct VolumeCache::ZeroJob {
  uint64_t next = 0, end = 0;  // what is left to apply
  bool fua = false, allocate = false;
  std::function<void(Status)> done;
  Status first;  // the first slice that failed
  Rerun slices;  // ZeroSlices
};

bool VolumeCache::Waits(uint64_t first, uint64_t last, std::list<Held>::const_iterator held_end) const {
  // Chunks [first, last] wait if they share a chunk with the part of a running zero not
  // applied yet, or with an operation held before held_end: operations on one chunk keep
  // their order, and the rest of the volume is served meanwhile.
  if (zeroing_ && zeroing_->next < zeroing_->end) {
    const uint64_t cs = meta_.chunk_size;
    if (first <= (zeroing_->end - 1) / cs && zeroing_->next / cs <= last) return true;
  }
  for (auto e = held_ops_.begin(); e != held_end; ++e) {
    if (first <= e->last && e->first <= last) return true;
  }
  return false;
}

bool VolumeCache::MustWait(uint64_t offset, uint64_t length) const {
  // Also while the held ones are being run: one that arrives then goes after them.
  if (length == 0) return false;
  const uint64_t cs = meta_.chunk_size;
  return Waits(offset / cs, (offset + length - 1) / cs, held_ops_.end());
}

void VolumeCache::Hold(uint64_t offset, uint64_t length, std::function<void()> op, bool in_slices) {
  const uint64_t cs = meta_.chunk_size;
  held_ops_.push_back(Held{offset / cs, (offset + std::max<uint64_t>(length, 1) - 1) / cs, in_slices, std::move(op)});
}

bool VolumeCache::StaysHeld(std::list<Held>::const_iterator it) const {
  return (zeroing_ && it->in_slices) || Waits(it->first, it->last, it);
}

void VolumeCache::DrainHeld() {
  // One pass at a time: a zero that finishes inside an operation run here asks this pass to
  // look again from the start, rather than walking the list beneath it.
  std::weak_ptr<bool> alive = alive_;
  draining_.Run([&] {
    // In order, each that need not wait (for a zero running now, or for one before it that
    // still waits). One that arrives meanwhile is appended, and looked at in this pass too.
    for (auto it = held_ops_.begin(); it != held_ops_.end();) {
      if (StaysHeld(it)) {
        ++it;
        continue;
      }
      auto op = std::move(it->op);
      it = held_ops_.erase(it);
      op();
      if (alive.expired()) return false;
    }
    return true;
  });
}

void VolumeCache::Zero(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done) {
  if (length == 0) return done(Status::Ok());
  if (Status s = Admit(); !s.ok()) return done(s);
  // One zero runs in slices at a time: another waits for it even where they do not overlap.
  if (MustWait(offset, length) || (zeroing_ && InSlices(offset, length))) {
    return Hold(
        offset, length, [this, offset, length, fua, allocate, done] { ZeroAdmitted(offset, length, fua, allocate, done); },
        InSlices(offset, length));
  }
  ZeroAdmitted(offset, length, fua, allocate, std::move(done));
}

bool VolumeCache::InSlices(uint64_t offset, uint64_t length) const {
  const uint64_t slice = ZeroSliceBytes();
  return (offset + length - 1) / slice != offset / slice;
}

void VolumeCache::ZeroAdmitted(uint64_t offset, uint64_t length, bool fua, bool allocate, std::function<void(Status)> done) {
  if (!InSlices(offset, length)) return ZeroRange(offset, length, fua, allocate, std::move(done));
  auto job = std::make_shared<ZeroJob>();
  job->next = offset;
  job->end = offset + length;
  job->fua = fua;
  job->allocate = allocate;
  job->done = std::move(done);
  zeroing_ = job;  // what overlaps it waits behind it from now on, so that arrival order holds
  ZeroSlices(job);
}

void VolumeCache::FinishZero(const std::shared_ptr<ZeroJob>& job, Status s) {
  if (zeroing_ == job) zeroing_.reset();
  auto done = std::move(job->done);
  done(std::move(s));
  // Then what waited behind it, in order; where one of them starts another long zero, those
  // after it that do not touch it still run. (What arrives meanwhile and shares a chunk with
  // one still waiting queues behind: MustWait.)
  DrainHeld();
}

uint64_t VolumeCache::ZeroSliceBytes() const {
  const uint64_t cs = meta_.chunk_size;
  return std::max<uint64_t>(cs, limits_.dirty_bytes / 2 / cs * cs);
}

void VolumeCache::ZeroSlices(const std::shared_ptr<ZeroJob>& job) {
  // A slice answered at once (under the dirty limit) starts the next one from this loop, not
  // from a deeper frame, so a range of many slices needs no deep stack.
  job->slices.Run([&] {
    if (job->next == job->end) {
      FinishZero(job, job->first);
      return false;  // the job is over: nothing calls this again
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
    return true;
  });
}

}  // namespace ringstore::block
