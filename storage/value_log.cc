#include "storage/value_log.h"

#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "dht/checksum.h"
#include "dht/endian.h"
#include "storage/file_io.h"

namespace ringstore {
namespace fs = std::filesystem;

struct ValueLog::Segment {
  uint64_t number = 0;
  std::string path;
  int fd = -1;          // buffered, read-only: small value reads, entry walks and fdatasync
  int direct_fd = -1;   // read-only, O_DIRECT: large value reads (-1 where refused)
  int write_fd = -1;    // the active segment only: O_DIRECT where allowed
  int cached_write_fd = -1;  // the active segment only: through the page cache
  uint64_t bytes = 0;   // file length; set once the segment is sealed (guarded by mu_)
  ~Segment() {
    if (fd >= 0) ::close(fd);
    if (direct_fd >= 0) ::close(direct_fd);
    if (write_fd >= 0) ::close(write_fd);
    if (cached_write_fd >= 0) ::close(cached_write_fd);
  }
};

namespace {

constexpr char kMagic[4] = {'R', 'S', 'V', 'L'};
constexpr uint64_t kEntrySeed = 0x564c4f47;  // "VLOG"

uint32_t EntryChecksum(const char* h) {
  char tmp[ValueLog::kEntryHeaderBytes];
  std::memcpy(tmp, h, sizeof tmp);
  std::memset(tmp + 4, 0, 4);
  return static_cast<uint32_t>(Checksum64(tmp, sizeof tmp, kEntrySeed));
}

const std::string kVlogExt = ".vlog";

// Creates a segment for writing, with O_DIRECT where the file system allows it. (A file
// system that refuses O_DIRECT may have created the file already: the second open does
// not insist on creating it.)
int CreateSegmentFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644);
  if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  return fd;
}

// The read descriptor. O_NOATIME: a read, even one that RWF_NOWAIT turns away on the strand,
// would otherwise update the access time of a segment written since (relatime).
int OpenForReads(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // not the owner
  return fd;
}

// The O_DIRECT read descriptor of large values, or -1 where the file system refuses it.
int OpenForDirectReads(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME | O_DIRECT);
  if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  return fd;
}


}  // namespace

uint64_t ValueLog::EntryBytes(uint64_t value_size) { return AlignToBlock(kEntryHeaderBytes + value_size); }

ValueLog::ValueLog(std::string dir, uint64_t segment_bytes) : dir_(std::move(dir)), segment_bytes_(segment_bytes) {}

ValueLog::~ValueLog() = default;

Result<std::unique_ptr<ValueLog>> ValueLog::Open(const std::string& dir, uint64_t segment_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  std::unique_ptr<ValueLog> log(new ValueLog(dir, segment_bytes));
  uint64_t last = 0;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const uint64_t n = ParseSegmentFileName(entry.path().filename().string(), kVlogExt);
    if (n == 0) continue;
    auto seg = std::make_shared<Segment>();
    seg->number = n;
    seg->path = entry.path().string();
    seg->fd = OpenForReads(seg->path);
    if (seg->fd < 0) return ErrnoStatus("open " + seg->path);
    seg->direct_fd = OpenForDirectReads(seg->path);
    struct stat st {};
    if (::fstat(seg->fd, &st) != 0) return ErrnoStatus("stat " + seg->path);
    seg->bytes = static_cast<uint64_t>(st.st_size);
    log->segments_[n] = std::move(seg);
    last = std::max(last, n);
  }
  if (ec) return Status::IOError("cannot list " + dir + ": " + ec.message());
  log->previous_run_last_ = last;
  if (Status s = log->StartSegment(last + 1); !s.ok()) return s;
  return log;
}

Status ValueLog::StartSegment(uint64_t number) {
  auto seg = std::make_shared<Segment>();
  seg->number = number;
  seg->path = dir_ + "/" + SegmentFileName(number, kVlogExt);
  seg->write_fd = CreateSegmentFile(seg->path);
  if (seg->write_fd < 0) return ErrnoStatus("create " + seg->path);
  seg->cached_write_fd = ::open(seg->path.c_str(), O_WRONLY | O_CLOEXEC);
  seg->fd = OpenForReads(seg->path);
  seg->direct_fd = OpenForDirectReads(seg->path);
  // The file must outlive a crash once anything in it is acknowledged.
  Status s = seg->fd < 0                ? ErrnoStatus("open " + seg->path)
             : seg->cached_write_fd < 0 ? ErrnoStatus("open " + seg->path + " for writing")
                                        : SyncDir(dir_);
  if (!s.ok()) {
    ::unlink(seg->path.c_str());  // so that the next try can create it again
    return s;
  }
  int sealed_write_fd = -1, sealed_cached_fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = segments_.find(active_); it != segments_.end()) {
      // Sealed: it keeps one (read) descriptor.
      it->second->bytes = active_bytes_;
      sealed_write_fd = std::exchange(it->second->write_fd, -1);
      sealed_cached_fd = std::exchange(it->second->cached_write_fd, -1);
    }
    segments_[number] = std::move(seg);
  }
  if (sealed_write_fd >= 0) ::close(sealed_write_fd);  // not under mu_, which readers take
  if (sealed_cached_fd >= 0) ::close(sealed_cached_fd);
  active_ = number;
  active_bytes_ = 0;
  return Status::Ok();
}

std::shared_ptr<ValueLog::Segment> ValueLog::Find(uint64_t number) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = segments_.find(number);
  return it == segments_.end() ? nullptr : it->second;
}

Result<ValuePointer> ValueLog::Append(const ObjectId& id, std::string_view value, bool bulk) {
  if (active_bytes_ >= segment_bytes_) {
    if (Status s = Flush(); !s.ok()) return s;
    if (Status s = StartSegment(active_ + 1); !s.ok()) return s;
  }
  // The entry is laid out in the pending buffer, as whole blocks padded with zeros (O_DIRECT
  // needs that); Flush writes the buffer in one call.
  const uint64_t len = EntryBytes(value.size());
  char* b = write_buffer_.Reserve(pending_bytes_ + len, pending_bytes_);
  if (b == nullptr) return Status::IOError("value log: out of memory for a " + std::to_string(len) + "-byte entry");
  char* h = b + pending_bytes_;
  std::memset(h, 0, kEntryHeaderBytes);
  std::memcpy(h, kMagic, 4);
  std::memcpy(h + 8, id.AsStringView().data(), ObjectId::kSize);
  PutLE(h + 40, value.size(), 8);
  PutLE(h + 4, EntryChecksum(h), 4);
  std::memcpy(h + kEntryHeaderBytes, value.data(), value.size());
  std::memset(h + kEntryHeaderBytes + value.size(), 0, len - kEntryHeaderBytes - value.size());
  const uint64_t start = active_bytes_;
  pending_bytes_ += len;
  if (value.size() >= kCachedWriteBytes || bulk) pending_large_ = true;
  active_bytes_ = start + len;
  index_[active_].push_back(IndexEntry{id, start + kEntryHeaderBytes, value.size()});
  while (index_.size() > kIndexedSegments) index_.erase(index_.begin());  // the oldest
  if (pending_bytes_ >= kFlushBytes) {
    if (Status s = Flush(); !s.ok()) return s;
  }
  return ValuePointer{active_, start + kEntryHeaderBytes};
}

void ValueLog::DropRetired() {
  std::erase_if(retired_, [](const std::shared_ptr<Segment>& s) { return s.use_count() == 1; });
}

Status ValueLog::Flush() {
  DropRetired();
  if (pending_bytes_ == 0) return Status::Ok();
  auto seg = Find(active_);
  const uint64_t start = active_bytes_ - pending_bytes_;
  const char* b = write_buffer_.data;
  // Small values go through the page cache, so that reads of what was just written find
  // them there; large ones, and bulk ones, bypass it (see the top).
  const int fd = pending_large_ ? seg->write_fd : seg->cached_write_fd;
  // Through the page cache (also around it where O_DIRECT is refused: no direct_fd either
  // then), in slices; with O_DIRECT, in one call.
  const bool direct = pending_large_ && seg->direct_fd >= 0;
  uint64_t done = 0;
  while (done < pending_bytes_) {
    const uint64_t n = direct ? pending_bytes_ - done : std::min(kCachedWriteSliceBytes, pending_bytes_ - done);
    const ssize_t w = ::pwrite(fd, b + done, n, static_cast<off_t>(start + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      // Whatever part was written is past every pointer that may be published; cut it off,
      // so the segment ends on its last whole entry (a walk would take it for a torn tail).
      Status failed = ErrnoStatus("write " + seg->path);
      (void)::ftruncate(seg->write_fd, static_cast<off_t>(start));
      // The cut-off bytes' offsets will hold other entries, and a read window may hold the
      // cut-off bytes (even the truncation may have failed): the next good flush, which
      // writes those entries, forgets the segment's windows.
      forget_at_flush_ = true;
      active_bytes_ = start;
      pending_bytes_ = 0;
      pending_large_ = false;
      if (auto it = index_.find(active_); it != index_.end()) {
        std::erase_if(it->second, [start](const IndexEntry& e) { return e.offset > start; });
      }
      return failed;
    }
    done += static_cast<uint64_t>(w);
  }
  pending_bytes_ = 0;
  pending_large_ = false;
  if (forget_at_flush_) {
    windows_.Forget(active_);
    forget_at_flush_ = false;
  }
  if (unsynced_.empty() || unsynced_.back() != active_) unsynced_.push_back(active_);
  return Status::Ok();
}

Status ValueLog::Sync() {
  if (Status s = Flush(); !s.ok()) return s;
  for (const uint64_t n : unsynced_) {
    auto seg = Find(n);  // a removed segment needs no sync
    if (seg && ::fdatasync(seg->fd) != 0) return ErrnoStatus("fdatasync " + seg->path);
  }
  unsynced_.clear();
  return Status::Ok();
}

std::optional<std::string> ValueLog::ReadCached(ValuePointer p, uint64_t size) const {
  auto seg = Find(p.segment);
  if (!seg) return std::nullopt;
  std::string out(size, '\0');
  uint64_t done = 0;
  while (done < size) {
    iovec v{out.data() + done, size - done};
    const ssize_t r = ::preadv2(seg->fd, &v, 1, static_cast<off_t>(p.offset + done), RWF_NOWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;  // not all cached, or an error the full Read reports
    done += static_cast<uint64_t>(r);
  }
  return out;
}

Result<std::string> ValueLog::Read(ValuePointer p, uint64_t size) const {
  auto seg = Find(p.segment);
  if (!seg) return Status::NotFound("value log segment " + std::to_string(p.segment) + " is gone");
  std::string out;
  // A large value was written around the page cache; a sequential stream of them is read
  // around it too, through the read windows (read_windows.h), appended to out (not zeroed
  // first). Other reads go through the page cache, as does a direct read that failed or came
  // short: its error, if the file's, shows again.
  if (size >= kCachedWriteBytes && seg->direct_fd >= 0) {
    out.reserve(size);
    if (auto s = windows_.ReadSequential(seg->number, seg->direct_fd, seg->fd, p.offset, size, &out)) {
      if (s->ok()) return out;
      // A short direct read (the end of the file, or a file system's short read): the
      // buffered read below tells which.
    }
  }
  out.assign(size, '\0');
  if (Status s = ReadFully(seg->fd, out.data(), size, p.offset, seg->path); !s.ok()) return s;
  return out;
}

std::vector<ValueLog::SegmentInfo> ValueLog::SealedSegments() const {
  std::vector<SegmentInfo> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [n, seg] : segments_) {
    if (n != active_) out.push_back(SegmentInfo{n, seg->bytes});
  }
  return out;
}

Result<ValueLog::Walk> ValueLog::ForEachEntry(
    uint64_t segment, const std::function<void(const ObjectId&, ValuePointer, uint64_t)>& fn) const {
  auto seg = Find(segment);
  if (!seg) return Status::NotFound("value log segment " + std::to_string(segment) + " is gone");
  if (auto it = index_.find(segment); it != index_.end()) {
    // Written by this run: its entries are known without reading the file, which for a
    // segment of small values meant reading all of it.
    for (const IndexEntry& e : it->second) fn(e.id, ValuePointer{segment, e.offset}, e.size);
    return Walk{};
  }
  struct stat st {};
  if (::fstat(seg->fd, &st) != 0) return ErrnoStatus("stat " + seg->path);
  const uint64_t end = static_cast<uint64_t>(st.st_size);
  Walk walk;
  char h[kEntryHeaderBytes];
  // The entry at `at`: its value size, or nullopt if no good entry header starts there.
  const auto entry = [&](uint64_t at) -> Result<std::optional<uint64_t>> {
    if (Status s = ReadFully(seg->fd, h, sizeof h, at, seg->path); !s.ok()) return s;
    if (std::memcmp(h, kMagic, 4) != 0 || static_cast<uint32_t>(GetLE(h + 4, 4)) != EntryChecksum(h)) {
      return std::optional<uint64_t>();
    }
    const uint64_t size = GetLE(h + 40, 8);
    if (size > end - at - kEntryHeaderBytes) return std::optional<uint64_t>();  // cut short
    return std::optional<uint64_t>(size);
  };
  uint64_t at = 0;
  while (at + kBlockBytes <= end) {
    auto size = entry(at);
    if (!size.ok()) return size.status();
    if (!*size) {
      // Damage, or the torn tail of a crash: look for a good entry further on.
      uint64_t next = at + kBlockBytes;
      for (; next + kBlockBytes <= end; next += kBlockBytes) {
        size = entry(next);
        if (!size.ok()) return size.status();
        if (*size) break;
      }
      if (next + kBlockBytes > end) {
        walk.tail_bytes = end - at;
        return walk;
      }
      walk.damaged = true;
      at = next;
    }
    auto id = ObjectId::FromBytes(std::string_view(h + 8, ObjectId::kSize));
    if (id.ok()) fn(*id, ValuePointer{segment, at + kEntryHeaderBytes}, **size);
    at += EntryBytes(**size);
  }
  if (at < end) walk.tail_bytes = end - at;
  return walk;
}

Status ValueLog::Remove(uint64_t segment) {
  if (segment == active_) return Status::InvalidArgument("the active value log segment cannot be removed");
  std::shared_ptr<Segment> seg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = segments_.find(segment);
    if (it == segments_.end()) return Status::Ok();
    seg = std::move(it->second);
    segments_.erase(it);
  }
  index_.erase(segment);
  windows_.Forget(segment);
  // The last reference closes the file, and closing an unlinked file frees its blocks: keep
  // it here until no reader holds it, so that this happens on the writer thread, never on
  // the strand (ValueLog::ReadCached).
  DropRetired();
  if (seg.use_count() > 1) retired_.push_back(seg);
  // Readers holding the segment keep reading the unlinked file through their reference.
  if (::unlink(seg->path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink " + seg->path);
  return Status::Ok();
}

Status ValueLog::WriteForTest(ValuePointer p, std::string_view bytes) {
  auto seg = Find(p.segment);
  if (!seg) return Status::NotFound("no such value log segment");
  // Through a buffered descriptor of its own: unaligned, and flushed before it returns.
  const int fd = ::open(seg->path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + seg->path);
  const bool ok = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(p.offset)) ==
                      static_cast<ssize_t>(bytes.size()) &&
                  ::fdatasync(fd) == 0;
  ::close(fd);
  windows_.Forget(p.segment);  // once the file has changed (read_windows.h)
  return ok ? Status::Ok() : ErrnoStatus("write " + seg->path);
}

Status ValueLog::CutTail(uint64_t segment, uint64_t length) {
  auto seg = Find(segment);
  if (!seg || segment == active_) return Status::InvalidArgument("no sealed value log segment " + std::to_string(segment));
  const int fd = ::open(seg->path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + seg->path);
  const bool ok = ::ftruncate(fd, static_cast<off_t>(length)) == 0 && ::fdatasync(fd) == 0;
  ::close(fd);
  windows_.Forget(segment);
  if (!ok) return ErrnoStatus("truncate " + seg->path);
  std::lock_guard<std::mutex> lock(mu_);
  seg->bytes = length;
  return Status::Ok();
}

}  // namespace ringstore
