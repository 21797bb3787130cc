// FsCore's background writes over an in-memory object store: a create's directory entry
// written after the create returns (its failure, its order against a listing read on another
// thread), an unlinked inode deleted in the background, and deletes in bounded batches.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "fsgateway/fs_core.h"
#include "tests/fsgateway/fs_core_fixture.h"
#include "tests/fsgateway/fs_test_io.h"

namespace ringstore::fs {
namespace {

using fstest::FsCoreTest;
using namespace fstest::io;

TEST_F(FsCoreTest, ACreatedFilesEntryThatFailsInTheBackgroundIsWrittenByItsFlush) {
  // The inode is stored, the entry write (in the background) fails: the file's flush reports
  // it, a namespace operation fails rather than overtake it, and once the directory's
  // replicas are back a flush stores entry and data together.
  io_.FailAll(Status::Unavailable("directory replicas down"), IoOp::kMerge);
  Inode f, seen;
  ASSERT_EQ(a().CreateOpen(kRootIno, "f", 0644, {}, &f), 0);
  ASSERT_EQ(a().Write(f.ino, 0, "hello"), 0);
  EXPECT_EQ(a().Flush(f.ino), EIO);
  EXPECT_EQ(a().MakeNode(kRootIno, "later", S_IFREG | 0644, 0, {}, &seen), EIO);
  auto b = Mount();
  EXPECT_EQ(b->Lookup(kRootIno, "f", &seen), ENOENT);
  io_.FailAll(Status::Ok());
  EXPECT_EQ(a().Flush(f.ino), 0);
  ASSERT_EQ(b->Lookup(kRootIno, "f", &seen), 0);
  EXPECT_EQ(seen.ino, f.ino);
  EXPECT_EQ(ReadAll(*b, f.ino), "hello");
  // An unlink right after a create keeps the order of the two entry changes.
  ASSERT_EQ(a().CreateOpen(kRootIno, "g", 0644, {}, &f), 0);
  ASSERT_EQ(a().Unlink(kRootIno, "g"), 0);
  EXPECT_EQ(a().Release(f.ino), 0);
  EXPECT_EQ(b->Lookup(kRootIno, "g", &seen), ENOENT);
  EXPECT_EQ(a().FlushAll(), 0);
}

TEST_F(FsCoreTest, ACreatedFilesInodeThatFailsInTheBackgroundIsStoredBeforeItsEntry) {
  // The create returns before its inode is stored. The inode write fails, so the entry is
  // not written either (no name may lead to a missing inode); the flush reports it, and once
  // the replicas are back it stores the inode, the data and then the entry.
  io_.FailAll(Status::Unavailable("inode replicas down"), IoOp::kPut);
  Inode f, seen;
  ASSERT_EQ(a().CreateOpen(kRootIno, "f", 0644, {}, &f), 0);
  ASSERT_EQ(a().Write(f.ino, 0, "hello"), 0);
  auto b = Mount();
  EXPECT_EQ(b->Lookup(kRootIno, "f", &seen), ENOENT);
  EXPECT_EQ(a().Flush(f.ino), EIO);
  EXPECT_EQ(b->Lookup(kRootIno, "f", &seen), ENOENT);
  io_.FailAll(Status::Ok());
  // The next namespace operation in the directory writes the entry again, the inode first.
  EXPECT_EQ(a().MakeNode(kRootIno, "g", S_IFREG | 0644, 0, {}, &seen), 0);
  ASSERT_EQ(b->Lookup(kRootIno, "f", &seen), 0);
  EXPECT_EQ(a().Flush(f.ino), 0);
  ASSERT_EQ(b->Lookup(kRootIno, "f", &seen), 0);
  EXPECT_EQ(seen.size, 5u);
  EXPECT_EQ(ReadAll(*b, f.ino), "hello");
  EXPECT_EQ(a().Release(f.ino), 0);
}

TEST_F(FsCoreTest, AnUnlinkedFileIsGoneAtOnceWhileItsObjectsAreDeletedInTheBackground) {
  HeldIo slow(io_, IoOp::kDel);
  auto mount = MountOver(slow);
  FsCore& c = *mount;
  const uint64_t f = Create(c, kRootIno, "f");
  ASSERT_EQ(c.Write(f, 0, "data"), 0);
  ASSERT_EQ(c.Flush(f), 0);
  ASSERT_EQ(c.Unlink(kRootIno, "f"), 0);  // the deletes are held
  bool keep = false;
  Inode n;
  EXPECT_EQ(c.Open(f, false, &keep), ENOENT);  // not the inode that is still stored
  EXPECT_EQ(c.GetAttr(f, &n), ENOENT);
  slow.Release();
  EXPECT_EQ(c.FlushAll(), 0);  // waits for the deletes
  auto other = Mount();
  EXPECT_EQ(other->GetAttr(f, &n), ENOENT);
}

// Picks the merges into a directory's listing.
std::function<bool(const IoOp&)> MergesInto(const FsMeta& meta, uint64_t dir) {
  std::vector<ObjectId> buckets;
  for (const ObjectKey& k : DirBucketIds(meta, dir)) buckets.push_back(k.id);
  return [buckets](const IoOp& op) {
    return op.kind == IoOp::kMerge && std::find(buckets.begin(), buckets.end(), op.id.id) != buckets.end();
  };
}

TEST_F(FsCoreTest, NamespaceOperationsInTwoDirectoriesRunTogetherAndInOneDirectoryInTurn) {
  const uint64_t d1 = Create(a(), kRootIno, "d1", S_IFDIR | 0755);
  const uint64_t d2 = Create(a(), kRootIno, "d2", S_IFDIR | 0755);
  HeldIo slow(io_, MergesInto(meta_, d1));  // changes to d1's listing hang, as on a slow replica
  auto mount = MountOver(slow);
  FsCore& c = *mount;
  std::atomic<bool> x_done{false}, y_done{false}, z_done{false};
  std::thread x([&] {
    Create(c, d1, "x");
    x_done = true;
  });
  ASSERT_TRUE(WaitUntil([&] { return slow.Held() == 1; }));
  // Another directory: not held up by the create in d1 (one lock for the mount would).
  std::thread y([&] {
    Create(c, d2, "y");
    y_done = true;
  });
  EXPECT_TRUE(WaitUntil([&] { return y_done.load(); }));
  // The same directory: waits for x before it even looks (a second held batch would show it).
  std::thread z([&] {
    Create(c, d1, "z");
    z_done = true;
  });
  EXPECT_TRUE(WaitUntil([&] { return c.NamespaceWaiters() == 1; }));  // z, at d1's lock
  EXPECT_EQ(slow.Held(), 1u);
  EXPECT_FALSE(z_done.load());
  slow.Release();
  x.join();
  y.join();
  z.join();
  EXPECT_TRUE(x_done && z_done);
  EXPECT_EQ(Names(c, d1), (std::vector<std::string>{"x", "z"}));
  EXPECT_EQ(Names(c, d2), (std::vector<std::string>{"y"}));
}

TEST_F(FsCoreTest, ACreateReturnsBeforeItsInodeIsStoredAndItsEntryWaitsForTheInode) {
  HeldIo slow(io_, IoOp::kPut);
  auto mount = MountOver(slow);
  FsCore& c = *mount;
  Inode f, seen;
  ASSERT_EQ(c.CreateOpen(kRootIno, "f", 0644, {}, &f), 0);  // the inode write is held
  ASSERT_EQ(slow.Held(), 1u);
  ASSERT_EQ(c.Write(f.ino, 0, "data"), 0);
  EXPECT_EQ(c.GetAttr(f.ino, &seen), 0);  // this mount knows it, though the cluster does not
  // No entry yet: it is written once the inode is stored.
  auto b = Mount();
  EXPECT_EQ(b->Lookup(kRootIno, "f", &seen), ENOENT);
  EXPECT_TRUE(Names(*b, kRootIno).empty());
  std::atomic<bool> flushed{false};
  std::thread flush([&] {
    EXPECT_EQ(c.Flush(f.ino), 0);
    flushed = true;
  });
  // The flush waits for the create's inode write before it sends its own.
  EXPECT_TRUE(WaitUntil([&] { return slow.FirstWaiters() >= 1; }));
  EXPECT_FALSE(flushed.load());
  EXPECT_EQ(slow.Held(), 1u);
  slow.Release();
  flush.join();
  ASSERT_EQ(b->Lookup(kRootIno, "f", &seen), 0);
  EXPECT_EQ(seen.size, 4u);
  EXPECT_EQ(ReadAll(*b, f.ino), "data");
  EXPECT_EQ(c.Release(f.ino), 0);
}

TEST_F(FsCoreTest, ARenameOfFilesWithinADirectoryRunsBesideOthersAndOneOfADirectoryAlone) {
  const uint64_t d1 = Create(a(), kRootIno, "d1", S_IFDIR | 0755);
  const uint64_t d2 = Create(a(), kRootIno, "d2", S_IFDIR | 0755);
  Create(a(), d2, "a");
  Create(a(), d2, "s", S_IFDIR | 0755);
  HeldIo slow(io_, MergesInto(meta_, d1));
  auto mount = MountOver(slow);
  FsCore& c = *mount;
  std::thread x([&] { Create(c, d1, "x"); });
  ASSERT_TRUE(WaitUntil([&] { return slow.Held() == 1; }));
  std::atomic<bool> file_renamed{false}, dir_renamed{false};
  std::thread f([&] {
    EXPECT_EQ(c.Rename(d2, "a", d2, "b", 0), 0);
    file_renamed = true;
  });
  EXPECT_TRUE(WaitUntil([&] { return file_renamed.load(); }));
  std::thread d([&] {
    EXPECT_EQ(c.Rename(d2, "s", d2, "t", 0), 0);
    dir_renamed = true;
  });
  // A directory's rename waits (for the mount's lock alone) until the create in d1 is done.
  EXPECT_TRUE(WaitUntil([&] { return c.NamespaceWaiters() == 1; }));
  EXPECT_FALSE(dir_renamed.load());
  slow.Release();
  x.join();
  f.join();
  d.join();
  EXPECT_EQ(Names(c, d2), (std::vector<std::string>{"b", "t"}));
  EXPECT_EQ(Names(c, d1), (std::vector<std::string>{"x"}));
}

TEST_F(FsCoreTest, AFilesSecondNameWaitsForItsFirstAndOtherListingsDoNot) {
  const uint64_t d1 = Create(a(), kRootIno, "d1", S_IFDIR | 0755);
  const uint64_t d2 = Create(a(), kRootIno, "d2", S_IFDIR | 0755);
  Create(a(), d2, "other");
  HeldIo slow(io_, MergesInto(meta_, d1));
  auto mount = MountOver(slow);
  FsCore& c = *mount;
  Inode f, linked;
  ASSERT_EQ(c.CreateOpen(d1, "f", 0644, {}, &f), 0);
  ASSERT_TRUE(WaitUntil([&] { return slow.Held() == 1; }));  // f's entry in d1
  // A listing of another directory does not wait for it.
  std::atomic<bool> listed{false};
  std::thread reader([&] {
    EXPECT_EQ(Names(c, d2), (std::vector<std::string>{"other"}));
    listed = true;
  });
  EXPECT_TRUE(WaitUntil([&] { return listed.load(); }));
  // A second name in d2 waits for the first, so that no crash leaves it alone.
  std::atomic<bool> done{false};
  std::thread link([&] {
    EXPECT_EQ(c.Link(f.ino, d2, "g", &linked), 0);
    done = true;
  });
  EXPECT_TRUE(WaitUntil([&] { return c.EntryWriteWaiters() >= 1; }));  // on f's first name
  EXPECT_EQ(slow.Held(), 1u);
  EXPECT_FALSE(done.load());
  auto b = Mount();
  Inode seen;
  EXPECT_EQ(b->Lookup(d2, "g", &seen), ENOENT);
  slow.Release();
  reader.join();
  link.join();
  EXPECT_EQ(linked.nlink, 2u);
  EXPECT_EQ(b->Lookup(d1, "f", &seen), 0);
  EXPECT_EQ(b->Lookup(d2, "g", &seen), 0);
  EXPECT_EQ(c.Release(f.ino), 0);
}

TEST_F(FsCoreTest, TruncatingOrDeletingALargeSparseFileDeletesInBoundedBatches) {
  BatchSizeIo io(io_);
  auto mount = MountOver(io);
  FsCore& c = *mount;
  // 1,000 chunks of 4 KiB, two of them stored: the truncate and the unlink name every chunk.
  const uint64_t f = Create(c, kRootIno, "f");
  ASSERT_EQ(c.Write(f, 0, "head"), 0);
  ASSERT_EQ(c.Write(f, 999 * 4096, "tail"), 0);
  ASSERT_EQ(c.Flush(f), 0);
  const size_t with_file = io_.objects();
  SetAttr cut;
  cut.size = 2;
  Inode n;
  ASSERT_EQ(c.SetAttributes(f, cut, &n), 0);
  EXPECT_EQ(io_.objects(), with_file - 1);  // the far chunk went
  EXPECT_EQ(ReadAll(c, f), "he");
  ASSERT_EQ(c.Write(f, 999 * 4096, "tail"), 0);
  ASSERT_EQ(c.Flush(f), 0);
  ASSERT_EQ(c.Unlink(kRootIno, "f"), 0);
  ASSERT_EQ(c.FlushAll(), 0);
  EXPECT_EQ(io_.objects(), with_file - 3);  // inode and both chunks
  EXPECT_LE(io.largest, ObjectIo::kMaxOpsInFlight);
  EXPECT_GT(io.largest, 1u);
}

// Background writes of 4 chunks at a time, at most 2 in flight.
FsOptions SmallWriteback() {
  FsOptions o;
  o.writeback_batch_bytes = 4 * 4096;
  o.writeback_batches = 2;
  return o;
}

TEST_F(FsCoreTest, ASequentialWriterWritesWholeChunksInTheBackgroundAndAFlushOnlyTheTail) {
  const uint64_t f = Create(a(), kRootIno, "f");
  BatchSizeIo io(io_);
  auto writer = MountOver(io, SmallWriteback());
  const std::string data = Pattern(64 * 4096 + 100, 'a');
  for (size_t off = 0; off < data.size(); off += 3000) {
    ASSERT_EQ(writer->Write(f, off, std::string_view(data).substr(off, 3000)), 0);
  }
  const size_t before_flush = io.batches;
  EXPECT_GE(writer->stats().chunk_writes, 56u);  // all but the last few chunks are out already
  EXPECT_GE(before_flush, 64u / 4 - 2);  // one batch per 4 chunks, besides the inode reads
  EXPECT_LE(io.largest, 5u);
  // What the background wrote is no longer counted against the mount's dirty limit.
  EXPECT_LE(writer->stats().dirty_bytes, 12u * 4096);
  ASSERT_EQ(writer->Flush(f), 0);
  EXPECT_EQ(writer->stats().dirty_bytes, 0u);
  // The tail and the inode, in one; first, since the tail (chunk 64) is at the chunk limit
  // the background writes raised (F13), the inode with a higher limit.
  EXPECT_EQ(io.batches, before_flush + 2);
  EXPECT_EQ(ReadAll(*Mount(), f), data);
  // Random writes stay in the cache until the flush.
  const size_t before_random = io.batches;
  for (uint64_t i : {40u, 3u, 17u, 60u, 9u, 33u, 21u, 50u}) ASSERT_EQ(writer->Write(f, i * 4096 + 1, "xy"), 0);
  EXPECT_LE(io.batches, before_random + 8);  // inode reads only (attr TTL 0), no chunk writes
  ASSERT_EQ(writer->Flush(f), 0);
  EXPECT_EQ(ReadAll(*Mount(), f).substr(40 * 4096 + 1, 2), "xy");
}

TEST_F(FsCoreTest, FailedBackgroundWritesAreWrittenAgainByTheFlush) {
  const uint64_t f = Create(a(), kRootIno, "f");
  auto writer = MountOver(io_, SmallWriteback());
  const std::string data = Pattern(32 * 4096, 'A');
  io_.FailAll(Status::IOError("disk gone"), IoOp::kPut);
  for (size_t off = 0; off < data.size(); off += 4096) {
    ASSERT_EQ(writer->Write(f, off, std::string_view(data).substr(off, 4096)), 0);
  }
  EXPECT_EQ(writer->Flush(f), EIO);  // nothing reached the cluster, and the flush says so
  io_.FailAll(Status::Ok());
  ASSERT_EQ(writer->Flush(f), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), data);
}

TEST_F(FsCoreTest, AChunkChangedWhileItsBackgroundWriteIsInFlightIsWrittenAgain) {
  const uint64_t f = Create(a(), kRootIno, "f");
  HeldIo slow(io_, IoOp::kPut);
  auto writer = MountOver(slow, SmallWriteback());
  std::string data = Pattern(8 * 4096, 'a');
  for (size_t off = 0; off < data.size(); off += 4096) {
    ASSERT_EQ(writer->Write(f, off, std::string_view(data).substr(off, 4096)), 0);
  }
  // Chunks 0-3 (and perhaps 4-7) are in a held background write; chunk 0 changes under it.
  ASSERT_EQ(writer->Write(f, 10, "CHANGED"), 0);
  data.replace(10, 7, "CHANGED");
  slow.Release();
  ASSERT_EQ(writer->Flush(f), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), data);
}

TEST_F(FsCoreTest, AListingReadWhileACreatesEntryIsInFlightKeepsTheFile) {
  HeldIo slow(io_, IoOp::kMerge);
  auto mount = MountOver(slow);  // every listing use reads the cluster
  FsCore& c = *mount;
  Inode f, g;
  ASSERT_EQ(c.CreateOpen(kRootIno, "f", 0644, {}, &f), 0);  // its entry write is held
  // A namespace operation waits for f's entry; then a listing read on another thread must
  // wait for it too, not read the directory without f.
  ASSERT_TRUE(WaitUntil([&] { return slow.Held() == 1; }));
  std::thread ns([&] { EXPECT_EQ(c.MakeNode(kRootIno, "g", S_IFREG | 0644, 0, {}, &g), 0); });
  EXPECT_TRUE(WaitUntil([&] { return c.EntryWriteWaiters() >= 1; }));
  std::vector<std::pair<std::string, DirEntry>> list;
  std::atomic<bool> read{false};
  std::thread reader([&] {
    EXPECT_EQ(c.ReadDir(kRootIno, &list), 0);
    read = true;
  });
  // The reader waits on f's entry (right), or has read a listing without it.
  EXPECT_TRUE(WaitUntil([&] { return read || c.EntryWriteWaiters() >= 2; }));
  slow.Release();
  reader.join();
  ns.join();
  EXPECT_TRUE(!list.empty() && list[0].first == "f") << list.size() << " entries";
  EXPECT_EQ(c.Release(f.ino), 0);
  EXPECT_EQ(c.FlushAll(), 0);
}

}  // namespace
}  // namespace ringstore::fs
