// FsCore: the filesystem of one mount, in POSIX terms and free of FUSE: every operation takes
// inode numbers and names and returns 0 or a positive errno. fuse_ops.cc translates FUSE
// requests into these calls; the unit tests call them over a MemoryObjectIo.
//
// What it keeps in memory (docs/fsgateway.md):
//  - inodes and directory listings, trusted for attr_ttl after they were read from the
//    cluster (what this mount changes itself it knows at once);
//  - for each open file, its chunks: clean ones as a read cache, dirty ones as a writeback
//    cache. Flush (close, fsync, the dirty limit, age, unmount) writes the dirty chunks and the
//    inode in parallel, and returns once W replicas hold them. A partial chunk write first
//    reads the chunk (read-modify-write), so chunks are always written whole.
//  - Open re-reads the inode (close-to-open consistency) and drops cached chunks when another
//    mount changed the file.
// Namespace operations (create, link, unlink, mkdir, setattr, xattrs, a rename of files within
// one directory) that change one directory, or one inode, run one at a time per directory (or
// inode): each holds ns_mu_ shared and the lock of its directory (DirScope: one of kDirLocks
// mutexes, by inode number). Those that may change two directories (other renames, rmdir)
// hold ns_mu_ alone (LockAlone), and so does FlushAll. Reads and writes of files run in
// parallel with all of them. Two writes run in the background (ObjectIo::Start): the inode and
// then the directory entry of a file made by FUSE create (its close waits for them, and so do
// the next namespace operation in that directory and every rename and rmdir), and the objects
// of an inode that lost its last name (FlushAll waits for them). Their completion callbacks
// run on an I/O thread; they start the entry write once the inode is stored, and announce the
// changes.
// Lock order: ns_gate_ (only to take ns_mu_), ns_mu_, a directory lock, a file's Node::mu, then
// its directory's. table_mu_ and async_mu_ are innermost (under table_mu_ a Node lock is only
// ever tried, never waited for).
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fsgateway/dir_listing.h"
#include "fsgateway/fs_layout.h"
#include "fsgateway/object_io.h"

namespace ringstore::fs {

struct FsOptions {
  bool read_only = false;
  // How long inodes and directory listings read from the cluster are trusted.
  std::chrono::milliseconds attr_ttl{1000};
  // Dirty bytes the mount may hold, all files together (memory pressure): a write that finds
  // the mount there flushes its own file first if that file holds more than its share, the
  // limit over the files holding dirty data (and fails, untaken, if that flush fails).
  uint64_t dirty_limit_bytes = 256u << 20;
  // Clean chunks kept per open file.
  size_t clean_chunks_per_file = 256;
  // Chunks read ahead when a file is read sequentially.
  size_t readahead_chunks = 16;
  // A sequential writer's whole chunks are written in the background once this many bytes of
  // them are dirty, with at most writeback_batches such writes in flight per file. 0: off.
  uint64_t writeback_batch_bytes = 2u << 20;
  size_t writeback_batches = 8;
  // The monotonic clock of the age-based writeback (FlushExpired); null: steady_clock. Tests
  // give a clock they move themselves.
  std::function<std::chrono::steady_clock::time_point()> steady_now;
};

struct SetAttr {
  std::optional<uint32_t> mode;  // permission bits
  std::optional<uint32_t> uid, gid;
  std::optional<uint64_t> size;
  std::optional<Timespec> atime, mtime;  // already resolved (UTIME_NOW by the caller)
};

struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

class FsCore {
 public:
  // now: wall-clock time for timestamps; random: inode numbers (never 0 or 1).
  FsCore(FsMeta fs, ObjectIo& io, FsOptions options, std::function<Timespec()> now,
         std::function<uint64_t()> random);
  ~FsCore();

  // Creates the root directory if the filesystem has none yet (a new filesystem).
  int Init();
  const FsMeta& meta() const { return fs_; }

  int Lookup(uint64_t parent, const std::string& name, Inode* out);
  int GetAttr(uint64_t ino, Inode* out);
  int SetAttributes(uint64_t ino, const SetAttr& req, Inode* out);
  // Regular files, FIFOs, sockets, devices and directories (by the type bits in mode).
  int MakeNode(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev, Caller who, Inode* out);
  // FUSE create: a regular file that the caller opens at once. Its inode, then its directory
  // entry, are written in the background; the file's flush (close, fsync) returns only once
  // both are stored.
  int CreateOpen(uint64_t parent, const std::string& name, uint32_t mode, Caller who, Inode* out);
  int Symlink(uint64_t parent, const std::string& name, const std::string& target, Caller who, Inode* out);
  int ReadLink(uint64_t ino, std::string* out);
  int Link(uint64_t ino, uint64_t new_parent, const std::string& new_name, Inode* out);
  int Unlink(uint64_t parent, const std::string& name);
  int Rmdir(uint64_t parent, const std::string& name);
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE (linux/fs.h values).
  int Rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
             unsigned flags);
  // The live entries, sorted by name.
  // generation (optional): the listing's generation, which changes whenever the listing this
  // mount knows changes.
  int ReadDir(uint64_t ino, std::vector<std::pair<std::string, DirEntry>>* out, uint64_t* generation = nullptr);
  // opendir: the directory's parent (for ".."), and whether the kernel may keep the listing it
  // cached from an earlier readdir: true only when the listing is fresh (re-read after
  // attr_ttl, like any listing) and has not changed since the kernel was given it
  // (KernelCachedListing). Local changes reset the kernel's copy by themselves, and other
  // mounts' changes also through the notifier's invalidation.
  int OpenDir(uint64_t ino, uint64_t* parent, bool* keep_cache);
  // The kernel was handed, from its start, the listing of this generation (readdir at offset 0).
  void KernelCachedListing(uint64_t ino, uint64_t generation);

  int SetXattr(uint64_t ino, const std::string& name, const std::string& value, int flags);
  int GetXattr(uint64_t ino, const std::string& name, std::string* out);
  int ListXattr(uint64_t ino, std::vector<std::string>* out);
  int RemoveXattr(uint64_t ino, const std::string& name);

  // Open and Release pair up per open file. *keep_cache says whether the kernel's cached pages
  // of the file are still good (no other mount changed it since). created: this mount made
  // the file in the same request (FUSE create), so its inode is not read again. reading: the
  // file is opened for reading (a small file's chunk is then read with its inode).
  int Open(uint64_t ino, bool truncate, bool* keep_cache, bool created = false, bool reading = false);
  // A read-only mount (-o ro, or a read-only certificate) refuses every change with EROFS,
  // opens for writing included, whether or not the kernel's mount flag caught it first.
  bool read_only() const { return options_.read_only; }
  int Release(uint64_t ino);
  int Read(uint64_t ino, uint64_t offset, size_t size, std::string* out);
  int Write(uint64_t ino, uint64_t offset, std::string_view data);
  // Makes the file's data and inode durable at W replicas.
  int Flush(uint64_t ino);
  // mode: 0 (allocate: extends the size), FALLOC_FL_KEEP_SIZE (allocate within the size: a
  // no-op), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE [|
  // FALLOC_FL_KEEP_SIZE]; anything else is EOPNOTSUPP.
  int Fallocate(uint64_t ino, int mode, uint64_t offset, uint64_t length);
  // What the filesystem can hold: the cluster's disks divided by the number of replicas. An
  // answer is reused for attr_ttl.
  int StatFs(uint64_t* total_bytes, uint64_t* free_bytes);
  // Flushes every file (unmount).
  int FlushAll();
  // The age-based writeback (fsgateway/flusher.h): flushes each file whose unwritten data
  // (dirty chunks, a size and times, or a create's directory entry) is at least `age` old,
  // counted from when this call first saw it unwritten (so up to one call's interval more).
  // A file busy with another operation is left for the next call, unless it has been
  // unwritten for twice the age: then it is waited for, so that writers that hold it nearly
  // all the time do not keep it unwritten. An unlinked file is left (its data goes with its
  // last close). After a failed flush the file waits age, 2 age, 4 age ... (at most
  // kMaxFlushBackoff) from the failure, and the round ends there: the cluster is likely
  // unreachable, and each further flush would hold its file for the whole --io-timeout.
  // The round also ends once *stop is set. One caller at a time.
  struct Expired {
    size_t flushed = 0;  // flushes tried
    size_t failed = 0;
    int first_error = 0;
  };
  static constexpr std::chrono::minutes kMaxFlushBackoff{5};
  Expired FlushExpired(std::chrono::steady_clock::duration age, const std::atomic<bool>* stop = nullptr);
  // The kernel forgot the inode: drop it from memory when nothing holds it (if something
  // does, it is tried again after each of FlushExpired's rounds).
  void Forget(uint64_t ino);

  // What this mount changed in the cluster, for the other mounts (fsgateway/notifier.h): an
  // inode (attributes or data), or with a name, an entry of directory ino.
  struct Change {
    uint64_t ino = 0;
    std::string name;               // empty: the inode itself
    std::optional<DirEntry> entry;  // with a name: what it now names (nullopt: removed)
  };
  // Called after each change is durable, from the thread that made it, possibly under this
  // core's locks: it must only queue the change.
  void SetChangeListener(std::function<void(const Change&)> listener) { listener_ = std::move(listener); }
  // Another mount changed ino: what this mount cached of its attributes and data is read
  // again on next use (unless this mount holds unwritten changes to it).
  void Invalidate(uint64_t ino);
  // Another mount changed entry name of directory dir: a cached listing takes the change.
  void ApplyEntry(uint64_t dir, const std::string& name, const std::optional<DirEntry>& entry);

  // For tests that must know an operation is held up: threads waiting now for a namespace
  // lock (the mount's or a directory's), and threads waiting for a create's background
  // inode-then-entry write.
  size_t NamespaceWaiters() const { return ns_waiters_.load(); }
  size_t EntryWriteWaiters();

  struct Stats {
    uint64_t chunk_reads = 0, chunk_writes = 0, flushes = 0;
    uint64_t dirty_bytes = 0;  // unwritten data of all files now (whole chunks)
    uint64_t nodes = 0;        // inodes held in memory now
  };
  Stats stats();

 private:
  static constexpr uint64_t kNoWriteback = UINT64_MAX;
  static constexpr uint64_t kUnknownSize = UINT64_MAX;
  static constexpr uint64_t kNoListing = UINT64_MAX;
  struct Chunk {
    std::string data;  // the chunk's bytes from its start; shorter than the chunk: zeros follow
    bool dirty = false;
    uint64_t gen = 0;                 // counts changes to data
    uint64_t wb_gen = kNoWriteback;   // the gen a background write in flight carries
  };
  // A background write of a sequential writer's whole chunks (fs_data.cc, StartWriteback):
  // the chunks stay dirty until it is reaped with success and they have not changed since.
  struct Writeback {
    std::shared_ptr<PendingIo> io;
    std::vector<std::pair<uint64_t, uint64_t>> chunks;  // index, gen written
  };
  // One inode as this mount knows it.
  struct Node {
    std::mutex mu;  // guards everything below (the data path)
    Inode inode;
    bool loaded = false;
    std::chrono::steady_clock::time_point fetched{};
    bool inode_dirty = false;  // size or times changed by writes, not yet stored
    int opens = 0;
    bool orphan = false;  // unlinked while open: deleted on the last release
    std::map<uint64_t, Chunk> chunks;
    uint64_t dirty_bytes = 0;
    uint64_t next_sequential = 0;  // where a sequential reader reads next
    // A sequential reader's read-ahead batch in flight (fs_data.cc, Read). Its chunks join
    // `chunks` when a read takes them (TakeReadahead). Whatever changes the file's data or
    // drops its cached chunks drops the batch too, so that it never brings back bytes older
    // than what this mount has seen.
    struct Readahead {
      std::shared_ptr<PendingIo> io;
      std::vector<uint64_t> chunks;  // in the order of the batch's ops
    };
    std::optional<Readahead> readahead;
    // Chunks [stale_from, stale_to) may hold bytes past the size that a crashed mount stored
    // (F13): set from the inode as loaded (the chunk the size ends in, up to the limit), and
    // narrowed as ClearPastSizeLocked clears them. Empty for a file this mount made.
    uint64_t stale_from = 0, stale_to = 0;
    // The size of the inode as last stored or loaded; kUnknownSize after an inode write that
    // failed (it may have landed all the same).
    uint64_t stored_size = 0;
    uint64_t next_write = 0;       // where a sequential writer writes next
    // FlushExpired's view. When it first saw this node unwritten since its last successful
    // flush (steady_clock ticks; 0: not seen): written under mu, read without it. Failed
    // flushes in a row, and when the next may be tried.
    std::atomic<int64_t> unwritten_since{0};
    uint32_t flush_failures = 0;
    std::chrono::steady_clock::time_point retry_at{};
    uint64_t writeback_from = 0;   // the first chunk StartWriteback looks at
    // Oldest first. A list, not a deque: an empty std::deque holds about 600 bytes, and a mount
    // keeps a Node for every inode the kernel knows, nearly all with no writeback.
    std::list<Writeback> writebacks;
    // Directories: the live entries, when read, and the times from the listing (F8).
    std::optional<DirListing> entries;
    std::chrono::steady_clock::time_point entries_fetched{};
    // Moved by every change to entries (and by dropping them); kernel_listing is the
    // generation the kernel was last handed whole (kNoListing: none, or not known).
    uint64_t listing_gen = 0;
    uint64_t kernel_listing = kNoListing;
    std::optional<DirTimes> dir_times;
    std::string last_miss;  // the last lookup in this directory whose inode was not cached
    bool speculative = false;  // made by stat-ahead; no lookup has handed it to the kernel yet
    bool deleted = false;      // its objects are deleted (perhaps still in the background)
    // The inode write of CreateOpen, while it may be in flight: every later write of the inode
    // waits for it (AwaitCreateWrite), or a retry of it could land after them and win. Cleared
    // once the inode is known stored; until then the node counts as Unwritten.
    std::shared_ptr<PendingIo> create_io;
    // A file made by CreateOpen whose directory entry may not be stored yet.
    struct PendingEntry {
      uint64_t dir = 0;
      LwwMap entries;
      Timespec now;
      std::shared_ptr<PendingIo> io;  // null: the write failed and must be made again
      // Set once the create's inode write succeeded; if it failed, the entry's write again
      // stores the inode first.
      std::shared_ptr<std::atomic<bool>> inode_stored;
    };
    std::optional<PendingEntry> pending_entry;
  };

  std::shared_ptr<Node> NodeFor(uint64_t ino);
  int Create(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev, Caller who,
             const std::string& target, bool opened, Inode* out);
  bool Fresh(std::chrono::steady_clock::time_point t) const;
  // Loads the inode (n.inode.ino) if not known or stale, unless this mount holds unwritten
  // changes to it. Caller holds n.mu.
  int LoadInode(Node& n, bool force = false);
  // The inode read r brought (LoadInode's second half).
  int TakeInode(Node& n, IoResult r);
  // LoadInode before changing the inode: always from the cluster, unless this mount holds
  // unwritten changes to it.
  int LoadForUpdate(Node& n);
  int LoadEntries(Node& dir, bool force = false);
  // LoadInode, ENOTDIR for anything but a directory, then LoadEntries. Caller holds dir.mu.
  int LoadListing(Node& dir);
  // Stores the inode; a directory's also writes its times into its listing (F8).
  int StoreInode(const Inode& inode);
  // StoreInode for n's inode (caller holds n.mu), after its create's write (AwaitCreateWrite);
  // notes the size stored (Node::stored_size).
  int StoreInodeOf(Node& n, const Inode& inode);
  // Waits for the inode write CreateOpen started, if it may still be in flight; its outcome
  // does not matter to the caller, who writes the inode itself. Caller holds n.mu.
  static void AwaitCreateWrite(Node& n);
  // Stores next as n's inode and, once stored, makes it n.inode (a directory's times then are
  // the listing's too). Caller holds n.mu.
  int StoreNode(Node& n, Inode next);
  // This mount holds changes to n not yet stored; Current: n.inode may be used as it is (fresh,
  // or ours). Caller holds n.mu.
  static bool Unwritten(const Node& n) { return n.inode_dirty || n.dirty_bytes > 0 || n.create_io; }
  bool Current(const Node& n) const { return n.loaded && (Fresh(n.fetched) || Unwritten(n)); }
  // Background writes (ObjectIo::Start). Entry writes of CreateOpen are waited for by the
  // next namespace operation in their directory (and by those that run alone), so entry
  // changes reach the replicas in the order they were made;
  // inode deletes are waited for by FlushAll only, and at most kMaxDeletesInFlight batches
  // (of ObjectIo::kMaxOpsInFlight deletes) run.
  static constexpr size_t kMaxDeletesInFlight = 4;
  // Under ns_mu_, with no Node lock held: waits for the entry writes into dir (every one when
  // dir is not given; the caller then holds ns_mu_ alone) and writes again the ones that
  // failed; an error means one is still not stored.
  int WaitForEntries(std::optional<uint64_t> dir = std::nullopt);
  // Rename's work once the locks are held. files_only (the caller holds parent's DirLock
  // only, parent == new_parent): kNeedsAlone, having changed nothing, if a directory is
  // involved, for the caller to try again holding ns_mu_ alone.
  static constexpr int kNeedsAlone = -1;
  int RenameLocked(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                   unsigned flags, bool files_only);
  // A namespace operation confined to one directory (or one inode): ns_mu_ shared, then the
  // directory's lock. Every taker of ns_mu_ passes ns_gate_ first, and one that needs ns_mu_
  // alone (LockAlone) holds the gate until it has it: ns_mu_ (glibc's rwlock) prefers readers,
  // and a steady stream of shared holders would otherwise keep a rename waiting.
  static constexpr size_t kDirLocks = 64;
  class DirScope {
   public:
    DirScope(FsCore& core, uint64_t dir)
        : ns_(Pass(core)), dir_(Take<std::unique_lock<std::mutex>>(core, core.dir_locks_[dir % kDirLocks])) {}

   private:
    static std::shared_lock<std::shared_mutex> Pass(FsCore& core) {
      auto gate = Take<std::unique_lock<std::mutex>>(core, core.ns_gate_);
      return Take<std::shared_lock<std::shared_mutex>>(core, core.ns_mu_);
    }
    std::shared_lock<std::shared_mutex> ns_;
    std::unique_lock<std::mutex> dir_;
  };
  std::unique_lock<std::shared_mutex> LockAlone() {
    auto gate = Take<std::unique_lock<std::mutex>>(*this, ns_gate_);
    return Take<std::unique_lock<std::shared_mutex>>(*this, ns_mu_);
  }
  // Locks m (Lock is the lock type), counted in ns_waiters_ while it has to wait.
  template <typename Lock, typename Mutex>
  static Lock Take(FsCore& core, Mutex& m) {
    Lock lock(m, std::try_to_lock);
    if (!lock.owns_lock()) {
      ++core.ns_waiters_;
      lock.lock();
      --core.ns_waiters_;
    }
    return lock;
  }
  // Waits for the entry writes in flight into dir (every one when not given), without writing
  // any again (LoadEntries, ~FsCore).
  void AwaitEntryWrites(std::optional<uint64_t> dir = std::nullopt);
  void WaitForDeletes();
  // Waits for n's pending entry write; if it failed, writes it again. Caller holds n.mu.
  int WriteEntryLocked(Node& n);
  // A directory's times and link count come from its listing (F8), when it is known. Caller
  // holds n.mu.
  static void ApplyListing(Node& n);
  int LookupLocked(uint64_t parent, const std::string& name, DirEntry* out);
  // Stat-ahead: when lookups in parent miss on ascending names, the inodes of the entries after
  // name (up to kStatAheadInodes), to read together with the missed one.
  static constexpr size_t kStatAheadInodes = 64;
  static constexpr size_t kMaxSpeculative = 4096;
  std::vector<uint64_t> StatAhead(uint64_t parent, const std::string& name);
  // Reads the inodes not cached (or stale) in one parallel batch; failures are left for later.
  void PrefetchInodes(const std::vector<uint64_t>& inos);
  void NoteEntry(uint64_t dir, const std::string& name, std::optional<DirEntry> entry);
  int DropLink(uint64_t ino, Timespec now);
  // n.inode freshly loaded; caller holds n.mu.
  int DropLinkLocked(Node& n, Timespec now);
  int DeleteInode(Node& n);
  // The directory entry changes of one namespace operation in one directory, together with the
  // directory's new times, in one merge per bucket (DirChangeOps); once stored, DirChanged announces
  // it and the cached listing, times and link count take it (it takes the directory's lock).
  int ChangeDir(uint64_t dir, const LwwMap& entries, Timespec now);
  std::vector<IoOp> DirChangeOps(uint64_t dir, const LwwMap& entries, Timespec now) const;
  void DirChanged(uint64_t dir, const LwwMap& entries, Timespec now);
  void AnnounceDirChange(uint64_t dir, const LwwMap& entries);
  void ApplyDirChange(uint64_t dir, const LwwMap& entries, Timespec now);
  // Data path (caller holds n.mu).
  int FlushLocked(Node& n);
  // The op that stores chunk i as it is (a put, or a delete for a hole).
  IoOp ChunkOp(const Node& n, uint64_t i, const Chunk& c) const;
  // Starts a background write of the dirty whole chunks below index `below` not yet in
  // flight, once they make a batch; waits for the oldest when too many are in flight.
  void StartWriteback(Node& n, uint64_t below);
  // Takes the finished background writes (all of them, waiting, when all is set): chunks
  // written at their current gen become clean; failed ones stay dirty for the next flush.
  void ReapWritebacks(Node& n, bool all);
  // Loads the chunks not cached, waiting; takes the read-ahead batch first if it holds any.
  int LoadChunks(Node& n, const std::vector<uint64_t>& indexes);
  // Puts the read-ahead batch's chunks (waiting for it) into n.chunks where none is cached;
  // a chunk whose read failed is left for a later LoadChunks to report.
  void TakeReadahead(Node& n);
  int TruncateLocked(Node& n, uint64_t size);
  // Chunk limits (F13; caller holds n.mu). RaiseLimitLocked: before ops (chunk ops, of the
  // chunks at indexes, in ascending order) go out, stores the inode with a limit past the
  // highest chunk they put if its limit is not (the limit doubles), and with the size last
  // stored (the bytes under a larger one may not be).
  // ClearPastSizeLocked: before the size grows to `to` other than by written bytes, deletes
  // the stale chunks (Node::stale_from) in [size, to) and cuts the one the size ends in,
  // durably, so that what a crashed mount stored past the size reads as zeros. The chunk
  // loaders also keep no byte past the size (ClampToSize).
  int RaiseLimitLocked(Node& n, const std::vector<IoOp>& ops, const std::vector<uint64_t>& indexes);
  int ClearPastSizeLocked(Node& n, uint64_t to);
  void ClampToSize(const Node& n, uint64_t index, std::string& data) const;
  static bool AllZero(std::string_view s);
  // The chunks that may be stored: below the limit, or for an inode without one, below the
  // size (and any this mount caches).
  uint64_t ChunksStored(const Node& n) const;
  int ZeroRangeLocked(Node& n, uint64_t offset, uint64_t length);
  void TrimCleanChunks(Node& n);

  const FsMeta fs_;
  ObjectIo& io_;
  const FsOptions options_;
  std::function<Timespec()> now_;
  std::function<uint64_t()> random_;
  Quorum q_;
  std::mutex table_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Node>> nodes_;
  // Forgets refused because the node was busy, open or unwritten (under table_mu_): tried
  // again after each FlushExpired round, so that the kernel's one FORGET is not lost. At most
  // kMaxForgetLater; beyond that (or with --dirty-expire 0) a refused node stays in memory.
  static constexpr size_t kMaxForgetLater = 1 << 16;
  std::vector<uint64_t> forget_later_;
  std::deque<uint64_t> speculative_;  // stat-ahead's nodes, oldest first (under table_mu_)
  std::mutex ns_gate_;
  std::shared_mutex ns_mu_;
  std::atomic<size_t> ns_waiters_{0};
  std::array<std::mutex, kDirLocks> dir_locks_;
  std::mutex async_mu_;  // guards the two lists below
  struct EntryWrite {
    uint64_t dir = 0;
    std::shared_ptr<PendingIo> io;
    std::shared_ptr<Node> node;  // the file; its pending_entry says what to write again
  };
  std::vector<EntryWrite> entry_writes_;
  std::deque<std::shared_ptr<PendingIo>> deletes_;
  std::mutex stats_mu_;
  std::mutex statfs_mu_;  // guards the last StatFs answer
  std::optional<std::chrono::steady_clock::time_point> statfs_at_;
  uint64_t statfs_total_ = 0, statfs_free_ = 0;
  Stats stats_;
  // The sum of every node's dirty_bytes, and how many nodes have some; each change to one
  // goes through SetDirty.
  std::atomic<uint64_t> dirty_total_{0};
  std::atomic<uint64_t> dirty_files_{0};
  void SetDirty(Node& n, uint64_t bytes) {
    if ((n.dirty_bytes == 0) != (bytes == 0)) {
      if (bytes > 0) dirty_files_.fetch_add(1); else dirty_files_.fetch_sub(1);
    }
    dirty_total_.fetch_add(bytes - n.dirty_bytes);  // modulo 2^64: a decrease subtracts
    n.dirty_bytes = bytes;
  }
  // A write to n must flush n first: the mount is at its dirty limit and n holds more than
  // its share of it (the limit over the files holding dirty data). Files within their share
  // write on, so that many files with a partial chunk each do not flush at every write.
  // A file that grew past its share while it had a larger one and then went idle keeps its
  // data until the age-based writeback (FlushExpired) or its close, so k dirty files hold at
  // most the limit times (1 + 1/2 + ... + 1/k), plus a write each, for about that long.
  bool OverDirtyShare(const Node& n) const {
    const uint64_t files = std::max<uint64_t>(1, dirty_files_.load());
    return dirty_total_.load() >= options_.dirty_limit_bytes && n.dirty_bytes > options_.dirty_limit_bytes / files;
  }
  std::function<void(const Change&)> listener_;
  void Changed(uint64_t ino) {
    if (listener_) listener_(Change{ino, {}, std::nullopt});
  }
  void EntryChanged(uint64_t dir, const std::string& name, const MapEntry& e) {
    if (!listener_) return;
    std::optional<DirEntry> entry;
    if (!e.deleted) {
      auto d = DecodeDirEntry(e.payload);
      if (d.ok()) entry = *d;
    }
    listener_(Change{dir, name, entry});
  }
};

}  // namespace ringstore::fs
