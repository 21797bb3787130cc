// FsCore's data path: open, read, write, flush, truncate, fallocate (see fs_core.h).
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <optional>

#include "fsgateway/fs_core.h"

namespace ringstore::fs {

bool FsCore::AllZero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

int FsCore::Open(uint64_t ino, bool truncate, bool* keep_cache, bool created, bool reading) {
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  const bool was_loaded = n->loaded;
  const Inode before = n->inode;
  // Close-to-open: the first open re-reads the inode, unless this mount has unwritten changes
  // or has just created it.
  const bool refetch = n->opens == 0 && !Unwritten(*n) && !(created && n->loaded);
  // A file of one chunk opened to be read: the chunk comes in the same round trip as the
  // inode. Both are as of the open, which is what close-to-open promises.
  const bool with_chunk = refetch && reading && !truncate && n->loaded && S_ISREG(n->inode.mode) &&
                          n->inode.size > 0 && n->inode.size <= fs_.chunk_size && n->chunks.count(0) == 0;
  IoResult chunk;
  if (with_chunk) {
    std::vector<IoOp> ops;
    ops.push_back(IoOp{IoOp::kGet, InodeId(fs_, ino), {}, {}});
    ops.push_back(IoOp{IoOp::kGet, ChunkId(fs_, ino, 0), {}, {}});
    auto results = io_.Run(std::move(ops), q_);
    if (int e = TakeInode(*n, std::move(results[0])); e != 0) return e;
    chunk = std::move(results[1]);
    std::lock_guard<std::mutex> st(stats_mu_);
    ++stats_.chunk_reads;
  } else if (int e = LoadInode(*n, refetch); e != 0) {
    return e;
  }
  const bool changed = !was_loaded || n->inode.size != before.size || !(n->inode.mtime == before.mtime) ||
                       !(n->inode.ctime == before.ctime);
  if (changed && n->dirty_bytes == 0) {
    n->chunks.clear();
    n->readahead.reset();
  }
  *keep_cache = !changed;
  if (with_chunk && n->inode.size <= fs_.chunk_size && n->chunks.count(0) == 0) {
    if (chunk.status.ok() && !chunk.is_map && chunk.value.size() <= fs_.chunk_size) {
      ClampToSize(*n, 0, chunk.value);
      n->chunks[0] = Chunk{std::move(chunk.value), false};
    } else if (chunk.status.IsNotFound()) {
      n->chunks[0] = Chunk{};  // a hole
    }  // a failed read is left to Read, which reports it
  }
  if (truncate) {
    if (options_.read_only) return EROFS;
    if (int e = TruncateLocked(*n, 0); e != 0) return e;
  }
  ++n->opens;
  return 0;
}

int FsCore::Release(uint64_t ino) {
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  const int e = FlushLocked(*n);
  if (n->opens > 0) --n->opens;
  if (n->opens == 0) {
    if (n->orphan) {
      n->orphan = false;
      return DeleteInode(*n);
    }
    // Keep nothing clean in memory for files nobody has open.
    for (auto it = n->chunks.begin(); it != n->chunks.end();) {
      it = it->second.dirty ? std::next(it) : n->chunks.erase(it);
    }
    n->readahead.reset();
  }
  return e;
}

void FsCore::TakeReadahead(Node& n) {
  if (!n.readahead) return;
  Node::Readahead ra = std::move(*n.readahead);
  n.readahead.reset();
  std::vector<IoResult> results = ra.io->Take();
  for (size_t k = 0; k < results.size() && k < ra.chunks.size(); ++k) {  // counted when started
    const uint64_t i = ra.chunks[k];
    IoResult& r = results[k];
    if (n.chunks.count(i) != 0 || i * fs_.chunk_size >= n.inode.size) continue;
    if (r.status.IsNotFound()) {
      n.chunks[i] = Chunk{};  // a hole
    } else if (r.status.ok() && !r.is_map && r.value.size() <= fs_.chunk_size) {
      ClampToSize(n, i, r.value);
      n.chunks[i] = Chunk{std::move(r.value), false};
    }
  }
}

int FsCore::LoadChunks(Node& n, const std::vector<uint64_t>& indexes) {
  if (n.readahead) {
    const auto& ra = n.readahead->chunks;
    const bool overlaps = std::any_of(indexes.begin(), indexes.end(), [&](uint64_t i) {
      return n.chunks.count(i) == 0 && std::find(ra.begin(), ra.end(), i) != ra.end();
    });
    if (overlaps) TakeReadahead(n);
  }
  std::vector<IoOp> ops;
  std::vector<uint64_t> wanted;
  for (uint64_t i : indexes) {
    if (n.chunks.count(i) != 0) continue;
    if (i * fs_.chunk_size >= n.inode.size) {
      n.chunks[i] = Chunk{};  // past the end: nothing stored there
      continue;
    }
    wanted.push_back(i);
    ops.push_back(IoOp{IoOp::kGet, ChunkId(fs_, n.inode.ino, i), {}, {}});
  }
  if (ops.empty()) return 0;
  auto results = io_.Run(std::move(ops), q_);
  int err = 0;
  for (size_t k = 0; k < results.size(); ++k) {
    IoResult& r = results[k];
    if (r.status.IsNotFound()) {
      n.chunks[wanted[k]] = Chunk{};  // a hole
    } else if (!r.status.ok()) {
      err = err != 0 ? err : ErrnoOf(r.status);
    } else if (r.value.size() > fs_.chunk_size || r.is_map) {
      err = EIO;  // not a chunk of this filesystem
    } else {
      ClampToSize(n, wanted[k], r.value);
      n.chunks[wanted[k]] = Chunk{std::move(r.value), false};
    }
  }
  {
    std::lock_guard<std::mutex> s(stats_mu_);
    stats_.chunk_reads += results.size();
  }
  return err;
}

void FsCore::TrimCleanChunks(Node& n) {
  size_t clean = 0;
  for (const auto& [i, c] : n.chunks) clean += c.dirty ? 0 : 1;
  for (auto it = n.chunks.begin(); clean > options_.clean_chunks_per_file && it != n.chunks.end();) {
    if (it->second.dirty) {
      ++it;
    } else {
      it = n.chunks.erase(it);
      --clean;
    }
  }
}

int FsCore::Read(uint64_t ino, uint64_t offset, size_t size, std::string* out) {
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadInode(*n); e != 0) return e;
  if (S_ISDIR(n->inode.mode)) return EISDIR;
  out->clear();
  if (offset >= n->inode.size || size == 0) return 0;
  const uint64_t end = std::min<uint64_t>(n->inode.size, offset + size);
  const uint64_t cs = fs_.chunk_size;
  std::vector<uint64_t> need;
  for (uint64_t i = offset / cs; i <= (end - 1) / cs; ++i) need.push_back(i);
  if (n->readahead && n->readahead->io->done()) TakeReadahead(*n);
  if (int e = LoadChunks(*n, need); e != 0) return e;
  // Read-ahead, for a reader near where the last read ended (the kernel's parallel reads
  // arrive a little out of order): once no more than half the window ahead is loaded or on
  // its way, the rest of the window is asked for in one batch in the background, so a
  // sequential reader goes on with the chunks it has while the next ones come.
  const bool sequential = offset <= n->next_sequential + cs && offset + cs >= n->next_sequential;
  if (sequential && options_.readahead_chunks > 0 && !n->readahead) {
    const uint64_t last = (n->inode.size - 1) / cs, current = (end - 1) / cs;
    const uint64_t window_end = std::min(last, current + options_.readahead_chunks);
    uint64_t missing = current + 1;
    while (missing <= window_end && n->chunks.count(missing) != 0) ++missing;
    if (missing <= window_end && missing - current <= std::max<uint64_t>(1, options_.readahead_chunks / 2)) {
      Node::Readahead ra;
      std::vector<IoOp> ops;
      for (uint64_t i = missing; i <= window_end; ++i) {
        if (n->chunks.count(i) != 0) continue;
        ra.chunks.push_back(i);
        ops.push_back(IoOp{IoOp::kGet, ChunkId(fs_, n->inode.ino, i), {}, {}});
      }
      {
        std::lock_guard<std::mutex> s(stats_mu_);
        stats_.chunk_reads += ops.size();
      }
      ra.io = io_.Start(std::move(ops), q_);
      n->readahead = std::move(ra);
    }
  }
  out->assign(end - offset, '\0');
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t i = pos / cs, in = pos % cs;
    const uint64_t take = std::min<uint64_t>(cs - in, end - pos);
    const std::string& data = n->chunks[i].data;
    if (in < data.size()) std::memcpy(out->data() + (pos - offset), data.data() + in, std::min<uint64_t>(take, data.size() - in));
    pos += take;
  }
  n->next_sequential = end;
  TrimCleanChunks(*n);
  return 0;
}

int FsCore::Write(uint64_t ino, uint64_t offset, std::string_view data) {
  if (options_.read_only) return EROFS;
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadInode(*n); e != 0) return e;
  if (data.empty()) return 0;
  const uint64_t end = offset + data.size();
  if (end > kMaxFileSize || end < offset) return EFBIG;
  n->readahead.reset();
  const uint64_t cs = fs_.chunk_size;
  // A write past the end leaves a gap that must read as zeros.
  if (offset > n->inode.size) {
    if (int e = ClearPastSizeLocked(*n, offset); e != 0) return e;
  }
  // Chunks that hold data this write does not wholly replace are read first.
  std::vector<uint64_t> need;
  for (uint64_t i = offset / cs; i <= (end - 1) / cs; ++i) {
    const uint64_t base = i * cs;
    const uint64_t live_end = std::min(base + cs, n->inode.size);
    const bool covers = offset <= base && end >= live_end;
    if (base < n->inode.size && !covers) need.push_back(i);
  }
  // At the mount's dirty limit the file's cache is flushed before the write is taken: a
  // write that cannot make room fails whole, rather than report an error for bytes it kept.
  if (OverDirtyShare(*n)) {
    if (int e = FlushLocked(*n); e != 0) return e;
  }
  if (int e = LoadChunks(*n, need); e != 0) return e;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t i = pos / cs, in = pos % cs;
    const uint64_t take = std::min<uint64_t>(cs - in, end - pos);
    Chunk& c = n->chunks[i];
    const char* src = data.data() + (pos - offset);
    if (in + take <= c.data.size()) {
      std::memcpy(c.data.data() + in, src, take);
    } else {
      // Growing the chunk: zeros only for a gap, not for bytes about to be copied over.
      if (in > c.data.size()) c.data.resize(in, '\0');
      c.data.replace(in, c.data.size() - in, src, take);
    }
    ++c.gen;
    if (!c.dirty) {
      c.dirty = true;
      SetDirty(*n, n->dirty_bytes + cs);
    }
    pos += take;
  }
  n->inode.size = std::max(n->inode.size, end);
  n->inode.mtime = n->inode.ctime = now_();
  n->inode_dirty = true;
  const bool sequential = offset == n->next_write;
  n->next_write = end;
  if (!sequential) n->writeback_from = std::min(n->writeback_from, offset / cs);
  // A sequential writer will not touch the chunks it has passed again: they go out now, so
  // the cluster works while the writer fills the next ones, and a flush waits only for the
  // tail. Random writes stay in the cache until the flush.
  if (sequential) StartWriteback(*n, end / cs);
  return 0;
}

IoOp FsCore::ChunkOp(const Node& n, uint64_t i, const Chunk& c) const {
  if (c.data.empty() || AllZero(c.data)) return IoOp{IoOp::kDel, ChunkId(fs_, n.inode.ino, i), {}, {}};
  return IoOp{IoOp::kPut, ChunkId(fs_, n.inode.ino, i), c.data, {}};
}

void FsCore::StartWriteback(Node& n, uint64_t below) {
  if (options_.writeback_batch_bytes == 0) return;
  ReapWritebacks(n, false);
  // What the writer passed and the cluster holds need not stay: a long write would otherwise
  // keep the whole file in memory until its close.
  TrimCleanChunks(n);
  const uint64_t cs = fs_.chunk_size;
  std::vector<uint64_t> ready;
  // Chunks below writeback_from went out already (or failed to, and wait for the flush).
  for (auto it = n.chunks.lower_bound(n.writeback_from); it != n.chunks.end() && it->first < below; ++it) {
    const Chunk& c = it->second;
    // Not while an older write of it is in flight: a retry of that one would be stamped later
    // and land over this one.
    if (c.dirty && c.wb_gen == kNoWriteback && c.data.size() == cs) ready.push_back(it->first);
  }
  if (ready.empty() || ready.size() * cs < options_.writeback_batch_bytes) return;
  std::vector<IoOp> ops;
  for (uint64_t i : ready) ops.push_back(ChunkOp(n, i, n.chunks[i]));
  if (RaiseLimitLocked(n, ops, ready) != 0) return;  // the flush writes them, or fails
  n.writeback_from = below;
  while (n.writebacks.size() >= std::max<size_t>(1, options_.writeback_batches)) {
    n.writebacks.front().io->Wait();
    ReapWritebacks(n, false);
  }
  Writeback wb;
  for (uint64_t i : ready) {
    Chunk& c = n.chunks[i];
    c.wb_gen = c.gen;
    wb.chunks.emplace_back(i, c.gen);
  }
  wb.io = io_.Start(std::move(ops), q_);
  n.writebacks.push_back(std::move(wb));
}

void FsCore::ReapWritebacks(Node& n, bool all) {
  const uint64_t cs = fs_.chunk_size;
  size_t written = 0;
  while (!n.writebacks.empty() && (all || n.writebacks.front().io->done())) {
    Writeback wb = std::move(n.writebacks.front());
    n.writebacks.pop_front();
    const std::vector<IoResult>& results = wb.io->Wait();
    for (size_t k = 0; k < wb.chunks.size(); ++k) {
      const auto [i, gen] = wb.chunks[k];
      auto it = n.chunks.find(i);
      if (it == n.chunks.end()) continue;
      Chunk& c = it->second;
      if (c.wb_gen == gen) c.wb_gen = kNoWriteback;
      if (k < results.size() && results[k].status.ok() && c.dirty && c.gen == gen) {
        c.dirty = false;
        SetDirty(n, n.dirty_bytes - std::min(n.dirty_bytes, cs));
        ++written;
      }
    }
  }
  if (written > 0) {
    std::lock_guard<std::mutex> s(stats_mu_);
    stats_.chunk_writes += written;
  }
}

int FsCore::FlushLocked(Node& n) {
  // Background writes first: what they stored is clean, what failed is written again here.
  ReapWritebacks(n, true);
  if (n.dirty_bytes == 0 && !n.inode_dirty) return WriteEntryLocked(n);
  if (n.inode_dirty) AwaitCreateWrite(n);  // its inode write must not land after ours
  const uint64_t cs = fs_.chunk_size;
  std::vector<IoOp> ops;
  std::vector<uint64_t> written;
  for (auto& [i, c] : n.chunks) {
    if (!c.dirty) continue;
    const uint64_t base = i * cs;
    // Only the bytes below the size are the file's; a chunk of zeros is a hole.
    const uint64_t keep = base >= n.inode.size ? 0 : std::min<uint64_t>(c.data.size(), n.inode.size - base);
    if (c.data.size() > keep) {
      c.data.resize(keep);
      ++c.gen;
    }
    ops.push_back(ChunkOp(n, i, c));
    written.push_back(i);
  }
  if (int e = RaiseLimitLocked(n, ops, written); e != 0) return e;  // still dirty
  const size_t chunk_ops = ops.size();
  // At most ObjectIo::kMaxOpsInFlight chunks at once (a 256 MiB dirty limit is 65,536 chunks
  // of 4 KiB): the first slices go before the last, which goes with the inode.
  if (ops.size() > ObjectIo::kMaxOpsInFlight) {
    const auto last = ops.end() - static_cast<std::ptrdiff_t>((ops.size() - 1) % ObjectIo::kMaxOpsInFlight + 1);
    std::vector<IoOp> first(std::make_move_iterator(ops.begin()), std::make_move_iterator(last));
    ops.erase(ops.begin(), last);
    if (int e = io_.RunAll(std::move(first), q_); e != 0) return e;  // still dirty: a later flush tries again
  }
  // The inode goes in the same round trip as its (last) chunks (decision F4): the flush
  // returns when all of them are durable, and the change is announced only then.
  const bool store_inode = n.inode_dirty;
  if (store_inode) {
    // Every chunk this mount stored lies under the size, and so does every chunk of this
    // batch: unless a crash may have left some past the size (the stale range), the limit
    // comes down to the chunks under the size (F13), so that removing the file later deletes
    // no more than those.
    const uint64_t under = std::max<uint64_t>(1, (n.inode.size + cs - 1) / cs);
    if (n.inode.chunk_limit != kUnknownChunkLimit && n.stale_to <= under) {
      n.inode.chunk_limit = std::min(n.inode.chunk_limit, under);
    }
    ops.push_back(IoOp{IoOp::kPut, InodeId(fs_, n.inode.ino), EncodeInode(n.inode), {}});
  }
  auto data = io_.Start(std::move(ops), q_);
  // A new file's directory entry, started by its create, is waited for meanwhile: the flush
  // returns when both are stored.
  const int entry_err = WriteEntryLocked(n);
  if (int err = FirstErrno(data->Wait()); err != 0) {
    if (store_inode) n.stored_size = kUnknownSize;  // its inode write may have landed
    return err;  // still dirty: a later flush tries again
  }
  for (uint64_t i : written) n.chunks[i].dirty = false;
  SetDirty(n, 0);
  if (store_inode) {
    n.inode_dirty = false;
    n.stored_size = n.inode.size;
  }
  n.unwritten_since = 0;
  n.flush_failures = 0;
  n.retry_at = {};
  if (!written.empty() || store_inode) Changed(n.inode.ino);
  std::lock_guard<std::mutex> s(stats_mu_);
  stats_.chunk_writes += chunk_ops;
  ++stats_.flushes;
  return entry_err;
}

int FsCore::Flush(uint64_t ino) {
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  return FlushLocked(*n);
}

int FsCore::FlushAll() {
  int err;
  {
    auto ns = LockAlone();
    err = WaitForEntries();
  }
  std::vector<std::shared_ptr<Node>> all;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    for (auto& [ino, n] : nodes_) all.push_back(n);
  }
  for (auto& n : all) {
    std::lock_guard<std::mutex> lock(n->mu);
    if (int e = FlushLocked(*n); e != 0 && err == 0) err = e;
  }
  WaitForDeletes();
  return err;
}

FsCore::Expired FsCore::FlushExpired(std::chrono::steady_clock::duration age, const std::atomic<bool>* stop) {
  using Clock = std::chrono::steady_clock;
  const auto clock = [this] { return options_.steady_now ? options_.steady_now() : Clock::now(); };
  const auto ticks = [](Clock::time_point t) { return static_cast<int64_t>(t.time_since_epoch().count()); };
  const auto point = [](int64_t t) { return Clock::time_point(Clock::duration(t)); };
  std::vector<std::shared_ptr<Node>> all;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    for (auto& [ino, n] : nodes_) all.push_back(n);
  }
  Expired out;
  for (auto& n : all) {
    if (stop != nullptr && stop->load()) break;
    const auto now = clock();
    std::unique_lock<std::mutex> lock(n->mu, std::try_to_lock);
    if (!lock.owns_lock()) {
      // Busy: left for the next call, unless it has been unwritten for two ages.
      const int64_t seen = n->unwritten_since.load();
      if (seen == 0 || now - point(seen) < 2 * age) continue;
      lock.lock();
    }
    if (n->orphan) continue;  // its data goes with its last close
    if (n->dirty_bytes == 0 && !n->inode_dirty && !n->pending_entry) {
      n->unwritten_since = 0;
      n->flush_failures = 0;
      n->retry_at = {};
      continue;
    }
    if (n->unwritten_since.load() == 0) n->unwritten_since = ticks(now);
    if (now - point(n->unwritten_since.load()) < age || now < n->retry_at) continue;
    ++out.flushed;
    if (int e = FlushLocked(*n); e != 0) {
      // Counted from the failure, which may have taken the whole --io-timeout.
      const auto backoff = std::min<Clock::duration>(age * (1u << std::min<uint32_t>(n->flush_failures, 16)),
                                                     kMaxFlushBackoff);
      ++n->flush_failures;
      n->retry_at = clock() + backoff;
      ++out.failed;
      out.first_error = e;
      break;
    }
  }
  std::vector<uint64_t> forgets;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    forgets.swap(forget_later_);
  }
  std::sort(forgets.begin(), forgets.end());
  forgets.erase(std::unique(forgets.begin(), forgets.end()), forgets.end());
  for (uint64_t ino : forgets) Forget(ino);  // those still held come back to forget_later_
  return out;
}

int FsCore::TruncateLocked(Node& n, uint64_t size) {
  n.readahead.reset();
  if (int e = FlushLocked(n); e != 0) return e;
  // The size and chunk limit as stored (within the TTL): another mount may have grown the
  // file, and its chunks must be deleted or cleared too.
  if (int e = LoadInode(n); e != 0) return e;
  const uint64_t cs = fs_.chunk_size;
  if (size > n.inode.size) {
    if (int e = ClearPastSizeLocked(n, size); e != 0) return e;
  }
  const uint64_t old = n.inode.size;
  if (size < old) {
    // Chunks wholly past the new end go; the one the end falls in is cut, so that growing the
    // file again reads zeros there, not the old bytes.
    std::vector<IoOp> ops;
    const uint64_t first_gone = (size + cs - 1) / cs;
    for (uint64_t i = first_gone; i < ChunksStored(n); ++i) {
      ops.push_back(IoOp{IoOp::kDel, ChunkId(fs_, n.inode.ino, i), {}, {}});
    }
    // The cached chunk is cut only once the cluster's is: after a failure the cache still
    // holds what the cluster does, and a later write to the chunk keeps the rest of it.
    std::optional<std::string> cut;
    if (size % cs != 0) {
      const uint64_t i = size / cs;
      if (int e = LoadChunks(n, {i}); e != 0) return e;
      cut = n.chunks[i].data;
      if (cut->size() > size % cs) cut->resize(size % cs);
      if (AllZero(*cut)) {
        ops.push_back(IoOp{IoOp::kDel, ChunkId(fs_, n.inode.ino, i), {}, {}});
      } else {
        ops.push_back(IoOp{IoOp::kPut, ChunkId(fs_, n.inode.ino, i), *cut, {}});
      }
    }
    if (int e = io_.RunAll(std::move(ops), q_); e != 0) return e;
    if (cut) n.chunks[size / cs].data = std::move(*cut);
    n.chunks.erase(n.chunks.lower_bound(first_gone), n.chunks.end());
    // Nothing is stored from first_gone on: the limit comes down with the size (not below
    // one chunk, so that writing a small file again needs no raise).
    if (n.inode.chunk_limit != kUnknownChunkLimit) {
      n.inode.chunk_limit = std::min(n.inode.chunk_limit, std::max<uint64_t>(first_gone, 1));
    }
    n.stale_to = 0;  // the chunk the end falls in is cut, and none is stored past it
  }
  n.inode.size = size;
  n.inode.mtime = n.inode.ctime = now_();
  // The chunks are cut already: an inode write that fails is the next flush's to do.
  n.inode_dirty = true;
  if (int e = StoreInodeOf(n, n.inode); e != 0) return e;
  n.inode_dirty = false;
  return 0;
}

int FsCore::ZeroRangeLocked(Node& n, uint64_t offset, uint64_t length) {
  n.readahead.reset();
  const uint64_t end = std::min(offset + length, n.inode.size);
  if (offset >= end) return 0;
  const uint64_t cs = fs_.chunk_size;
  std::vector<uint64_t> partial;
  for (uint64_t i = offset / cs; i <= (end - 1) / cs; ++i) {
    if (!(offset <= i * cs && end >= std::min(i * cs + cs, n.inode.size))) partial.push_back(i);
  }
  if (int e = LoadChunks(n, partial); e != 0) return e;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t i = pos / cs, in = pos % cs;
    const uint64_t take = std::min<uint64_t>(cs - in, end - pos);
    Chunk& c = n.chunks[i];
    if (in < c.data.size()) std::memset(c.data.data() + in, 0, std::min<uint64_t>(take, c.data.size() - in));
    ++c.gen;
    if (!c.dirty) {
      c.dirty = true;
      SetDirty(n, n.dirty_bytes + cs);
    }
    pos += take;
  }
  n.inode.mtime = n.inode.ctime = now_();
  n.inode_dirty = true;
  return FlushLocked(n);
}

int FsCore::Fallocate(uint64_t ino, int mode, uint64_t offset, uint64_t length) {
  if (options_.read_only) return EROFS;
  if (length == 0) return EINVAL;
  if (offset + length > kMaxFileSize || offset + length < offset) return EFBIG;
  auto n = NodeFor(ino);
  std::lock_guard<std::mutex> lock(n->mu);
  if (int e = LoadInode(*n); e != 0) return e;
  if (!S_ISREG(n->inode.mode)) return S_ISDIR(n->inode.mode) ? EISDIR : ENODEV;
  const uint64_t end = offset + length;
  switch (mode) {
    case 0:  // allocation: the size grows; the new range reads as zeros
    case FALLOC_FL_KEEP_SIZE:
      if (mode == 0 && end > n->inode.size) {
        if (int e = ClearPastSizeLocked(*n, end); e != 0) return e;
        n->inode.size = std::max(n->inode.size, end);  // read again: another mount may have grown it
        n->inode.ctime = now_();
        n->inode_dirty = true;
      }
      return FlushLocked(*n);
    case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: return ZeroRangeLocked(*n, offset, length);
    case FALLOC_FL_ZERO_RANGE:
    case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
      if (int e = ZeroRangeLocked(*n, offset, length); e != 0) return e;
      if (!(mode & FALLOC_FL_KEEP_SIZE) && end > n->inode.size) {
        if (int e = ClearPastSizeLocked(*n, end); e != 0) return e;
        n->inode.size = std::max(n->inode.size, end);  // read again: another mount may have grown it
        n->inode.ctime = now_();
        n->inode_dirty = true;
        return FlushLocked(*n);
      }
      return 0;
    default: return EOPNOTSUPP;
  }
}

}  // namespace ringstore::fs
