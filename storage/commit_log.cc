#include "storage/commit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <optional>

#include "dht/checksum.h"
#include "dht/endian.h"

namespace ringstore {
namespace fs = std::filesystem;

struct CommitLog::Segment {
  uint64_t number = 0;
  std::string path;
  int fd = -1;         // read-write; O_DIRECT where allowed
  uint64_t bytes = 0;  // the file's size
  uint64_t seed = 0;   // of its header's current use
  uint64_t first = 0;  // lsn of its first record; 0 when its header is not valid
  uint64_t last = 0;   // lsn of its last record (first - 1 when it holds none)
  bool free = true;    // may be reused
  ~Segment() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

const std::string kClogExt = ".clog";
constexpr char kHeaderMagic[4] = {'R', 'S', 'C', 'L'};
constexpr char kRecordMagic[4] = {'R', 'S', 'C', 'R'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderSeed = 0x52534354;  // "RSCT"
// Header block: checksum(8) magic(4) version(4) seed(8) first lsn(8); the rest is zeros.
constexpr size_t kHeaderFields = 32;
// Record: checksum(8) magic(4) payload length(4) lsn(8), payload, zeros to the block's end.
// The checksum is XXH3 of everything after it up to the payload's end, with the segment's seed.

struct Header {
  uint64_t seed = 0;
  uint64_t first = 0;
};

std::optional<Header> ParseHeader(const char* b) {
  if (std::memcmp(b + 8, kHeaderMagic, 4) != 0 || GetLE(b + 12, 4) != kVersion) return std::nullopt;
  if (GetLE(b, 8) != Checksum64(b + 8, kHeaderFields - 8, kHeaderSeed)) return std::nullopt;
  Header h{GetLE(b + 16, 8), GetLE(b + 24, 8)};
  if (h.first == 0) return std::nullopt;
  return h;
}

// Opens a segment read-write, with O_DIRECT if *direct and the file system allows it.
int OpenSegment(const std::string& path, int flags, bool* direct) {
  int fd = -1;
  if (*direct) {
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_DIRECT | flags, 0644);
    if (fd >= 0 || errno != EINVAL) return fd;
    // Refused. The file may have been created all the same (tmpfs before Linux 6.6), so the
    // second open does not insist on creating it.
    *direct = false;
    flags &= ~O_EXCL;
  }
  return ::open(path.c_str(), O_RDWR | O_CLOEXEC | flags, 0644);
}

// The first `bytes` of a file, through the page cache (recovery only; the segment's own
// descriptor may be O_DIRECT). A read error, or a file shorter than that, is an error: only
// bytes read can end the log.
Status ReadWhole(const std::string& path, uint64_t bytes, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + path);
  out->resize(bytes);
  Status s = ReadFully(fd, out->data(), bytes, 0, path);
  ::close(fd);
  return s;
}

// The payload of the record at `at` in a segment's bytes, if one is there with this lsn and
// the segment's seed; *next is then where the next record starts.
std::optional<std::string_view> RecordAt(const std::string& data, uint64_t at, uint64_t lsn, uint64_t seed,
                                         uint64_t* next) {
  if (at + CommitLog::kRecordHeaderBytes > data.size()) return std::nullopt;
  const char* r = data.data() + at;
  const uint64_t len = GetLE(r + 12, 4);
  if (std::memcmp(r + 8, kRecordMagic, 4) != 0 || GetLE(r + 16, 8) != lsn) return std::nullopt;
  if (len > data.size() - at - CommitLog::kRecordHeaderBytes) return std::nullopt;
  if (GetLE(r, 8) != Checksum64(r + 8, CommitLog::kRecordHeaderBytes - 8 + len, seed)) return std::nullopt;
  *next = at + CommitLog::RecordBytes(len);
  return std::string_view(r + CommitLog::kRecordHeaderBytes, len);
}

}  // namespace

CommitLog::CommitLog(std::string dir, uint64_t new_segment_bytes, uint64_t max_bytes, uint64_t seed,
                     bool direct)
    : dir_(std::move(dir)),
      new_segment_bytes_(AlignToBlock(std::max<uint64_t>(new_segment_bytes, 2 * kFileBlockBytes))),
      max_bytes_(max_bytes),
      seeds_(seed),
      direct_(direct),
      synced_(direct) {}

CommitLog::~CommitLog() = default;

Result<std::unique_ptr<CommitLog>> CommitLog::Open(const std::string& dir, uint64_t new_segment_bytes,
                                                   uint64_t max_bytes, uint64_t seed, bool direct) {
  std::unique_ptr<CommitLog> log(new CommitLog(dir, new_segment_bytes, max_bytes, seed, direct));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  std::vector<uint64_t> numbers;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (const uint64_t n = ParseSegmentFileName(entry.path().filename().string(), kClogExt); n > 0) numbers.push_back(n);
  }
  if (ec) return Status::IOError("cannot list " + dir + ": " + ec.message());
  std::sort(numbers.begin(), numbers.end());
  AlignedBuffer block;
  if (block.Reserve(kFileBlockBytes, 0) == nullptr) return Status::IOError("out of memory");
  for (const uint64_t n : numbers) {
    auto seg = std::make_unique<Segment>();
    seg->number = n;
    seg->path = dir + "/" + SegmentFileName(n, kClogExt);
    seg->fd = OpenSegment(seg->path, 0, &log->direct_);
    if (seg->fd < 0) return ErrnoStatus("open " + seg->path);
    struct stat st {};
    if (::fstat(seg->fd, &st) != 0) return ErrnoStatus("stat " + seg->path);
    seg->bytes = static_cast<uint64_t>(st.st_size) & ~(kFileBlockBytes - 1);
    if (seg->bytes >= 2 * kFileBlockBytes) {
      const ssize_t r = ::pread(seg->fd, block.data, kFileBlockBytes, 0);
      if (r != static_cast<ssize_t>(kFileBlockBytes)) {
        return r < 0 ? ErrnoStatus("read " + seg->path) : Status::IOError("short read of " + seg->path);
      }
      if (auto h = ParseHeader(block.data)) {
        seg->seed = h->seed;
        seg->first = h->first;
        seg->last = h->first - 1;
      }
    }
    log->next_number_ = n + 1;
    log->segments_.push_back(std::move(seg));
  }
  return log;
}

Result<CommitLog::Recovered> CommitLog::Recover(uint64_t after,
                                                const std::function<Status(uint64_t, std::string_view)>& apply) {
  Recovered out;
  std::vector<Segment*> chain;  // segments with a valid header, by first lsn
  for (auto& s : segments_) {
    if (s->first > 0) chain.push_back(s.get());
  }
  std::sort(chain.begin(), chain.end(),
            [](const Segment* a, const Segment* b) { return a->first != b->first ? a->first < b->first : a->number < b->number; });
  // Two segments that begin with the same lsn (left by a build of 2026-11-24 that started an
  // empty segment at reopen): only one that holds its first record stays on the chain.
  std::string data;
  for (size_t k = 0; k + 1 < chain.size();) {
    if (chain[k]->first != chain[k + 1]->first) {
      ++k;
      continue;
    }
    uint64_t next = 0;
    if (Status s = ReadWhole(chain[k]->path, chain[k]->bytes, &data); !s.ok()) return s;
    const bool k_holds = RecordAt(data, kFileBlockBytes, chain[k]->first, chain[k]->seed, &next).has_value();
    chain.erase(chain.begin() + static_cast<std::ptrdiff_t>(k_holds ? k + 1 : k));
  }
  // Start at the last segment that begins at or before the first record wanted.
  size_t i = 0;
  while (i + 1 < chain.size() && chain[i + 1]->first <= after + 1) ++i;
  uint64_t expected = after + 1;  // the next record to apply
  std::vector<Segment*> walked;
  if (!chain.empty() && chain[i]->first > expected) {
    out.dropped = true;  // a gap before the first segment: nothing follows `after`
  } else {
    for (; i < chain.size(); ++i) {
      Segment* seg = chain[i];
      // The segment after one walked must start where that one ended.
      if (!walked.empty() && seg->first != expected) {
        out.dropped = true;
        break;
      }
      if (Status s = ReadWhole(seg->path, seg->bytes, &data); !s.ok()) return s;
      uint64_t at = kFileBlockBytes;
      uint64_t lsn = seg->first;
      while (const auto payload = RecordAt(data, at, lsn, seg->seed, &at)) {
        if (lsn == expected) {
          if (Status s = apply(lsn, *payload); !s.ok()) return s;
          ++out.applied;
          ++expected;
        }
        seg->last = lsn++;
      }
      walked.push_back(seg);
    }
  }
  // Only walked segments that begin before the end keep their headers. Every other header
  // goes (synced below, before any append), so that no record written before the crash can follow
  // the records appended from now on, which start at `expected`.
  for (auto& s : segments_) {
    const bool keep = s->first > 0 && s->first < expected &&
                      std::find(walked.begin(), walked.end(), s.get()) != walked.end();
    if (!keep && s->first > 0) {
      if (Status st = WipeHeader(*s); !st.ok()) return st;
    }
    s->free = !keep || s->last <= after;
  }
  // What was replayed becomes durable too (after a crash of the process alone, a tail may be
  // in the page cache only), before anything is appended after it.
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Segment* w : walked) unsynced_.insert(w->fd);
  }
  if (Status st = Sync(); !st.ok()) return st;
  next_lsn_ = expected;
  // No segment is started here: the first Append starts one of the size it needs, so no
  // empty segment is left with the same first lsn as the one that gets the records.
  current_ = nullptr;
  return out;
}

Status CommitLog::WipeHeader(Segment& seg) {
  char* b = buffer_.Reserve(kFileBlockBytes, 0);
  if (b == nullptr) return Status::IOError("out of memory");
  std::memset(b, 0, kFileBlockBytes);
  if (Status s = WriteBlocks(seg, b, kFileBlockBytes, 0); !s.ok()) return s;
  seg.first = seg.last = 0;
  return Status::Ok();
}

Status CommitLog::WriteBlocks(Segment& seg, const char* data, uint64_t len, uint64_t offset, bool to_sync) {
  uint64_t done = 0;
  while (done < len) {
    const ssize_t w = ::pwrite(seg.fd, data + done, len - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return ErrnoStatus("write " + seg.path);
    done += static_cast<uint64_t>(w);
  }
  if (to_sync) {
    std::lock_guard<std::mutex> lock(mu_);
    unsynced_.insert(seg.fd);
  }
  return Status::Ok();
}

Result<CommitLog::Segment*> CommitLog::CreateSegment(uint64_t bytes) {
  auto seg = std::make_unique<Segment>();
  seg->number = next_number_++;
  seg->path = dir_ + "/" + SegmentFileName(seg->number, kClogExt);
  seg->fd = OpenSegment(seg->path, O_CREAT | O_EXCL, &direct_);
  if (seg->fd < 0) return ErrnoStatus("create " + seg->path);
  seg->bytes = bytes;
  if (Status s = FillSegment(*seg); !s.ok()) return s;
  segments_.push_back(std::move(seg));
  return segments_.back().get();
}

Status CommitLog::FillSegment(Segment& seg) {
  // A log that is never synced (async durability) only has its space reserved: its records
  // go through the page cache, and so would the zeros, 32 MiB of new page-cache pages that
  // cost the writer tens of milliseconds here, on a kernel that does not preempt a system
  // call (docs/repair.md §8.2). Reads of the reserved space give zeros all the same.
  if (!synced_ && ::fallocate(seg.fd, 0, 0, static_cast<off_t>(seg.bytes)) == 0) {
    if (::fdatasync(seg.fd) != 0) return ErrnoStatus("fdatasync " + seg.path);
    return SyncDir(dir_);
  }
  // Otherwise zeros, written for real (not fallocate): overwriting written blocks later
  // changes no file system metadata, so an fdatasync need not commit the journal.
  constexpr uint64_t kChunk = 1u << 20;
  char* z = buffer_.Reserve(kChunk, 0);
  if (z == nullptr) return Status::IOError("out of memory");
  std::memset(z, 0, kChunk);
  for (uint64_t at = 0; at < seg.bytes; at += kChunk) {
    // Not left to Sync: this fdatasyncs the file itself, and a Sync must never meet the
    // descriptor of a segment whose creation failed (closed, maybe reused since).
    if (Status s = WriteBlocks(seg, z, std::min(kChunk, seg.bytes - at), at, false); !s.ok()) return s;
  }
  if (::fdatasync(seg.fd) != 0) return ErrnoStatus("fdatasync " + seg.path);
  return SyncDir(dir_);
}

Status CommitLog::StartSegment(uint64_t first_lsn, uint64_t min_bytes) {
  if (before_new_segment_) before_new_segment_();
  Segment* seg = nullptr;
  for (auto& s : segments_) {
    if (s->free && s.get() != current_ && s->bytes >= min_bytes && s->bytes >= 2 * kFileBlockBytes) {
      seg = s.get();
      break;
    }
  }
  if (seg == nullptr) {
    auto created = CreateSegment(std::max(new_segment_bytes_, AlignToBlock(min_bytes)));
    if (!created.ok()) return created.status();
    seg = *created;
  }
  char* b = buffer_.Reserve(kFileBlockBytes, 0);
  if (b == nullptr) return Status::IOError("out of memory");
  std::memset(b, 0, kFileBlockBytes);
  const uint64_t seed = seeds_.Next();
  std::memcpy(b + 8, kHeaderMagic, 4);
  PutLE(b + 12, kVersion, 4);
  PutLE(b + 16, seed, 8);
  PutLE(b + 24, first_lsn, 8);
  PutLE(b, Checksum64(b + 8, kHeaderFields - 8, kHeaderSeed), 8);
  if (Status s = WriteBlocks(*seg, b, kFileBlockBytes, 0); !s.ok()) return s;
  seg->seed = seed;
  seg->first = first_lsn;
  seg->last = first_lsn - 1;
  seg->free = false;
  current_ = seg;
  offset_ = kFileBlockBytes;
  return Status::Ok();
}

Result<uint64_t> CommitLog::Append(std::string_view payload) {
  if (!failed_.ok()) return failed_;
  const uint64_t need = RecordBytes(payload.size());
  if (payload.size() > UINT32_MAX) return Status::InvalidArgument("commit log record too large");
  if (current_ == nullptr || offset_ + need > current_->bytes) {
    if (Status s = StartSegment(next_lsn_, need + kFileBlockBytes); !s.ok()) {
      failed_ = s;
      return s;
    }
  }
  char* b = buffer_.Reserve(need, 0);
  if (b == nullptr) return Status::IOError("out of memory");
  const uint64_t lsn = next_lsn_;
  std::memcpy(b + 8, kRecordMagic, 4);
  PutLE(b + 12, payload.size(), 4);
  PutLE(b + 16, lsn, 8);
  std::memcpy(b + kRecordHeaderBytes, payload.data(), payload.size());
  std::memset(b + kRecordHeaderBytes + payload.size(), 0, need - kRecordHeaderBytes - payload.size());
  PutLE(b, Checksum64(b + 8, kRecordHeaderBytes - 8 + payload.size(), current_->seed), 8);
  if (Status s = WriteBlocks(*current_, b, need, offset_); !s.ok()) {
    failed_ = s;  // the record may be half there: nothing more may follow it
    return s;
  }
  offset_ += need;
  current_->last = lsn;
  ++next_lsn_;
  return lsn;
}

Status CommitLog::Sync() {
  // One at a time: a second caller must not return while the first still syncs what both
  // need. After a failure no later Sync succeeds: what the failed one covered is unknown.
  std::lock_guard<std::mutex> one(sync_mu_);
  if (!sync_failed_.ok()) return sync_failed_;
  std::set<int> fds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fds.swap(unsynced_);
  }
  for (const int fd : fds) {
    if (::fdatasync(fd) != 0) {
      sync_failed_ = ErrnoStatus("fdatasync of the commit log in " + dir_);
      return sync_failed_;
    }
  }
  return Status::Ok();
}

void CommitLog::Release(uint64_t lsn) {
  uint64_t total = 0;
  std::vector<Segment*> free;
  for (auto& s : segments_) {
    if (s.get() != current_ && !s->free && s->last <= lsn) s->free = true;
    if (s->free) free.push_back(s.get());
    total += s->bytes;
  }
  // Free segments go while all of them take more than max_bytes_ (a burst does not keep its
  // disk space for good), and files too small to use always: those first, then the largest,
  // then the newest (StartSegment takes the oldest first).
  auto usable = [](const Segment* s) { return s->bytes >= 2 * kFileBlockBytes; };
  std::sort(free.begin(), free.end(), [&](const Segment* a, const Segment* b) {
    if (usable(a) != usable(b)) return !usable(a);
    return a->bytes != b->bytes ? a->bytes > b->bytes : a->number > b->number;
  });
  std::vector<Segment*> doomed;
  for (Segment* s : free) {
    if (usable(s) && total <= max_bytes_) break;
    doomed.push_back(s);
    total -= s->bytes;
  }
  if (doomed.empty()) return;
  {
    // Not while a Sync may fdatasync their descriptors (Sync holds sync_mu_ throughout).
    std::lock_guard<std::mutex> one(sync_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    for (Segment* s : doomed) unsynced_.erase(s->fd);
  }
  for (Segment* s : doomed) ::unlink(s->path.c_str());  // a failure leaves a file Open finds free
  std::erase_if(segments_, [&](const auto& s) { return std::find(doomed.begin(), doomed.end(), s.get()) != doomed.end(); });
}

uint64_t CommitLog::live_bytes() const {
  uint64_t n = 0;
  for (const auto& s : segments_) {
    if (!s->free) n += s->bytes;
  }
  return n;
}

}  // namespace ringstore
