#include "storage/read_windows.h"

#include "storage/page_cache_probe.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>

namespace ringstore {

namespace {

// Reads up to len bytes at offset into buf, stopping early only at the end of the file.
// The bytes read, or -errno.
int64_t ReadUpTo(int fd, char* buf, uint64_t len, uint64_t offset) {
  uint64_t got = 0;
  while (got < len) {
    const ssize_t r = ::pread(fd, buf + got, len - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    got += static_cast<uint64_t>(r);
    // The end of the file (a length that is not a whole block ends it too: the next O_DIRECT
    // read would start unaligned).
    if (r == 0 || got % ReadWindows::kBlockBytes != 0) break;
  }
  return static_cast<int64_t>(got);
}

}  // namespace

ReadWindows::~ReadWindows() {
  for (Window& w : windows_) std::free(w.data);
}

ReadWindows::Window* ReadWindows::Covering(uint64_t segment, uint64_t pos) {
  for (Window& w : windows_) {
    if (w.segment == segment && !w.forgotten && w.start <= pos && pos < w.start + w.len) return &w;
  }
  return nullptr;
}

ReadWindows::Way ReadWindows::Classify(uint64_t segment, uint64_t pos, uint64_t end) {
  // A read a window holds (or is loading) costs no device read.
  const bool held = Covering(segment, pos) != nullptr;
  // Following a recent read: starting after its end by at most this read's length and
  // kFollowSlack, so skipping one entry of about this size (the reads of a stream come a
  // little out of order, from concurrent readers or from values written concurrently); or
  // by at most kSparseEntries such entries, sparsely.
  const uint64_t entry = end - pos + kFollowSlack;
  uint32_t run = 1;
  uint32_t sparse_run = 1;
  for (const Recent& r : recent_) {
    if (r.segment != segment || r.end > pos) continue;
    if (pos - r.end <= entry) run = std::max(run, r.run + 1);
    if (pos - r.end <= kSparseEntries * entry) sparse_run = std::max(sparse_run, r.sparse_run + 1);
  }
  // (A read a window holds does not start a chain of its own: random reads that land in a
  // window would then pull in more windows.)
  recent_[recent_next_] = Recent{segment, end, std::min(run, kStreamReads), std::min(sparse_run, kStreamReads)};
  recent_next_ = (recent_next_ + 1) % kRecentReads;
  if (held || run >= kStreamReads) return Way::kWindows;
  return sparse_run >= kStreamReads ? Way::kExact : Way::kDecline;
}

ReadWindows::Window* ReadWindows::Victim() {
  Window* best = nullptr;
  for (Window& w : windows_) {
    if (w.loading || w.pins > 0) continue;
    if (w.segment == 0) return &w;
    if (best == nullptr || w.used < best->used) best = &w;
  }
  return best;
}

void ReadWindows::Settle(Window& w) {
  if (w.forgotten && !w.loading && w.pins == 0) {
    w.segment = 0;
    w.forgotten = false;
  }
}

ReadWindows::Window* ReadWindows::Load(std::unique_lock<std::mutex>& lock, uint64_t segment, int fd,
                                       uint64_t start, uint64_t len, Status* error) {
  Window* w = Victim();
  if (w == nullptr) return nullptr;
  if (w->data == nullptr &&
      ::posix_memalign(reinterpret_cast<void**>(&w->data), kBlockBytes, kWindowBytes) != 0) {
    w->data = nullptr;
    *error = Status::IOError("value log: out of memory for a read window");
    return nullptr;
  }
  w->segment = segment;
  w->start = start;
  w->len = len;
  w->loading = true;
  w->forgotten = false;
  w->used = ++tick_;
  lock.unlock();
  const int64_t got = ReadUpTo(fd, w->data, len, start);
  lock.lock();
  w->loading = false;
  changed_.notify_all();
  if (got < 0) {
    w->segment = 0;
    *error = Status::IOError(std::string("value log direct read: ") + std::strerror(static_cast<int>(-got)));
    return nullptr;
  }
  w->len = static_cast<uint64_t>(got);
  ++counters_.loads;
  counters_.bytes += w->len;
  Settle(*w);
  return w;
}

void ReadWindows::ReadAheadOf(std::unique_lock<std::mutex>& lock, uint64_t segment, int fd, const Window& w) {
  const uint64_t base = w.start / kWindowBytes * kWindowBytes;  // w may be an exact load
  for (uint64_t k = 1; k <= kReadAhead; ++k) {
    const uint64_t start = base + k * kWindowBytes;
    // Held, loading, or loaded short or empty (the end of the segment): not again.
    const bool there = std::any_of(std::begin(windows_), std::end(windows_), [&](const Window& o) {
      return o.segment == segment && !o.forgotten && o.start == start;
    });
    if (there) continue;
    Status ignored;  // a reader that needs these bytes will load them and see the error
    if (Load(lock, segment, fd, start, kWindowBytes, &ignored) != nullptr) ++counters_.readahead;
    return;
  }
}

std::optional<Status> ReadWindows::ReadSequential(uint64_t segment, int direct_fd, int cached_fd, uint64_t offset,
                                                  uint64_t size, std::string* out) {
  const uint64_t end = offset + size;
  std::unique_lock<std::mutex> lock(mu_);
  const Way way = Classify(segment, offset, end);
  if (way == Way::kDecline) return std::nullopt;
  if (way == Way::kExact) {
    lock.unlock();
    if (PageCacheHolds(cached_fd, offset, size)) return std::nullopt;
    lock.lock();
  }
  uint64_t pos = offset;
  while (pos < end) {
    if (Window* w = Covering(segment, pos)) {
      if (w->loading) {
        // Rather than idle, load what a sequential reader will want next: the device
        // then has more than one read in flight, as with the kernel's readahead. (A sparse
        // stream's next values are mostly not this log's to serve.)
        if (way == Way::kWindows) ReadAheadOf(lock, segment, direct_fd, *w);
        if (Window* again = Covering(segment, pos); again != nullptr && again->loading) changed_.wait(lock);
        continue;
      }
      const uint64_t n = std::min(end, w->start + w->len) - pos;
      w->used = ++tick_;
      ++w->pins;
      lock.unlock();
      out->append(w->data + (pos - w->start), n);
      lock.lock();
      --w->pins;
      Settle(*w);
      changed_.notify_all();
      pos += n;
      continue;
    }
    Status error;
    Window* w = nullptr;
    if (way == Way::kExact) {
      const uint64_t start = pos / kBlockBytes * kBlockBytes;
      const uint64_t stop = (end + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
      w = Load(lock, segment, direct_fd, start, std::min(kWindowBytes, stop - start), &error);
      if (w != nullptr) ++counters_.exact;
    } else {
      w = Load(lock, segment, direct_fd, pos / kWindowBytes * kWindowBytes, kWindowBytes, &error);
    }
    if (!error.ok()) return error;
    if (w == nullptr) {
      changed_.wait(lock);  // every window busy
      continue;
    }
    if (w->segment == 0) continue;  // forgotten meanwhile: read the file as it is now
    if (pos >= w->start + w->len) return Status::Corruption("value log entry past the end of segment " + std::to_string(segment));
  }
  return Status::Ok();
}

void ReadWindows::Forget(uint64_t segment) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Window& w : windows_) {
    if (w.segment != segment) continue;
    w.forgotten = true;
    Settle(w);
  }
  for (Recent& r : recent_) {
    if (r.segment == segment) r = Recent{};
  }
}

ReadWindows::Counters ReadWindows::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace ringstore
