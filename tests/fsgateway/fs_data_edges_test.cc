// FsCore's data path at its edges. When the cluster fails or another mount looks: a truncate
// that fails leaves the cache as the cluster is, a write at the dirty limit that cannot flush
// is not taken, and an inode write other than a flush (chmod, an xattr, link, unlink of one of two
// names) never tells another mount of a size whose bytes are not stored. At its limits: a
// flush sends its chunks in bounded slices, and a write across the largest file size is short.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "fsgateway/fs_core.h"
#include "tests/fsgateway/fs_core_fixture.h"
#include "tests/fsgateway/fs_test_io.h"

namespace ringstore::fs {
namespace {

using fstest::FsCoreTest;
using fstest::io::BatchSizeIo;
using fstest::io::Pattern;

// A file of 6,000 bytes, stored (with 4096-byte chunks: chunk 0 and 1,904 bytes of chunk 1),
// then a truncate to size while the cluster fails every PUT; the truncate's result.
class TruncateFailureTest : public FsCoreTest {
 protected:
  int TruncateWhilePutsFail(uint64_t size) {
    f_ = Create(a(), kRootIno, "f");
    EXPECT_EQ(a().Write(f_, 0, data_), 0);
    EXPECT_EQ(a().Flush(f_), 0);
    io_.FailAll(Status::IOError("disk gone"), IoOp::kPut);
    SetAttr cut;
    cut.size = size;
    Inode n;
    const int e = a().SetAttributes(f_, cut, &n);
    io_.FailAll(Status::Ok());
    return e;
  }
  uint64_t f_ = 0;
  std::string data_ = Pattern(6000, 'a');
};

TEST_F(TruncateFailureTest, ATruncateThatFailsLeavesTheCacheAsTheClusterIs) {
  // Cutting chunk 1 at 5,000 fails: the size stays, and so do the bytes past 5,000.
  EXPECT_EQ(TruncateWhilePutsFail(5000), EIO);
  const uint64_t f = f_;
  std::string data = data_;
  EXPECT_EQ(ReadAll(a(), f), data);
  // A write into that chunk, from the cache, keeps the rest of it.
  ASSERT_EQ(a().Write(f, 4100, "Z"), 0);
  data[4100] = 'Z';
  ASSERT_EQ(a().Flush(f), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), data);
}

TEST_F(TruncateFailureTest, ATruncatesInodeWriteThatFailsIsTheNextFlushs) {
  // To a chunk's edge: chunk 1 is deleted, then the inode write fails.
  EXPECT_EQ(TruncateWhilePutsFail(4096), EIO);
  ASSERT_EQ(a().Flush(f_), 0);
  EXPECT_EQ(ReadAll(*Mount(), f_), data_.substr(0, 4096));
}

TEST_F(FsCoreTest, AWriteAtTheDirtyLimitThatCannotFlushIsNotTaken) {
  const uint64_t f = Create(a(), kRootIno, "f");
  FsOptions o;
  o.dirty_limit_bytes = 2 * 4096;
  auto w = Mount(o);
  // Not in order, so no background write starts: the cache holds them.
  const std::string one = Pattern(4096, 'a'), zero = Pattern(4096, 'k'), two = Pattern(4096, 'u');
  ASSERT_EQ(w->Write(f, 4096, one), 0);
  io_.FailAll(Status::Unavailable("all nodes down"));
  EXPECT_EQ(w->Write(f, 0, zero), 0) << "under the limit: taken, nothing flushed";
  EXPECT_EQ(w->Write(f, 3 * 4096, two), EIO) << "at the limit, and the flush fails";
  io_.FailAll(Status::Ok());
  ASSERT_EQ(w->Flush(f), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), zero + one) << "the refused write left nothing behind";
}

TEST_F(FsCoreTest, TheDirtyLimitIsTheMountsAllFilesTogether) {
  const uint64_t f = Create(a(), kRootIno, "f"), g = Create(a(), kRootIno, "g"), h = Create(a(), kRootIno, "h");
  FsOptions o;
  o.dirty_limit_bytes = 4 * 4096;
  auto w = Mount(o);
  // Chunks out of order, so no background write starts: the cache holds them.
  const std::string x = Pattern(4096, 'x'), y = Pattern(4096, 'y'), z = Pattern(4096, 'z');
  const std::string zeros(4096, '\0');
  ASSERT_EQ(w->Write(f, 2 * 4096, x), 0);
  ASSERT_EQ(w->Write(f, 0, x), 0);
  ASSERT_EQ(w->Write(f, 4096, x), 0);
  ASSERT_EQ(w->Write(g, 4096, y), 0);  // four chunks now: the limit
  EXPECT_EQ(w->stats().dirty_bytes, 4u * 4096);
  EXPECT_EQ(ReadAll(*Mount(), g), "") << "under the limit when taken: not flushed";
  // Two files hold dirty data: a share is two chunks. g holds one, h none: both write on.
  ASSERT_EQ(w->Write(g, 3 * 4096, y), 0);
  ASSERT_EQ(w->Write(h, 4096, z), 0);
  EXPECT_EQ(w->stats().dirty_bytes, 6u * 4096);
  EXPECT_EQ(ReadAll(*Mount(), g), "") << "g was within its share";
  // Three files: a share is 4/3 chunks. f holds three, so f's write flushes f first.
  ASSERT_EQ(w->Write(f, 3 * 4096, x), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), x + x + x) << "f is flushed before its write is taken";
  EXPECT_EQ(ReadAll(*Mount(), g), "") << "g, holding two chunks, is not (nothing wrote to it)";
  EXPECT_EQ(w->stats().dirty_bytes, 4u * 4096) << "f's new one, g's two, h's";
  // Then g, at two chunks, is over its share too.
  ASSERT_EQ(w->Write(g, 0, y), 0);
  EXPECT_EQ(ReadAll(*Mount(), g), zeros + y + zeros + y);
  EXPECT_EQ(w->stats().dirty_bytes, 3u * 4096);
  for (uint64_t ino : {f, g, h}) ASSERT_EQ(w->Flush(ino), 0);
  EXPECT_EQ(w->stats().dirty_bytes, 0u);
  EXPECT_EQ(ReadAll(*Mount(), f), x + x + x + x);
  EXPECT_EQ(ReadAll(*Mount(), g), y + y + zeros + y);
  EXPECT_EQ(ReadAll(*Mount(), h), zeros + z);
  // An unlinked file's unwritten data goes with it, and out of the count.
  ASSERT_EQ(w->Write(h, 0, z), 0);
  EXPECT_EQ(w->stats().dirty_bytes, 4096u);
  ASSERT_EQ(w->Unlink(kRootIno, "h"), 0);
  EXPECT_EQ(w->stats().dirty_bytes, 0u);
}

TEST_F(FsCoreTest, InodeWritesOtherThanAFlushStoreTheBytesUnderTheirSize) {
  const uint64_t f = Create(a(), kRootIno, "f");
  ASSERT_EQ(a().Flush(f), 0);
  auto b = Mount();
  std::string data = Pattern(3 * 4096 + 10, 'a');
  // chmod while the bytes are in a's cache only: b reads them, not zeros.
  ASSERT_EQ(a().Write(f, 0, data), 0);
  SetAttr chmod;
  chmod.mode = 0600;
  Inode n;
  ASSERT_EQ(a().SetAttributes(f, chmod, &n), 0);
  EXPECT_EQ(ReadAll(*b, f), data);
  // So with an xattr.
  const std::string tail = Pattern(100, 'x');
  ASSERT_EQ(a().Write(f, data.size(), tail), 0);
  ASSERT_EQ(a().SetXattr(f, "user.k", "v", 0), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), data + tail);
  data += tail;
  // A second name, then the first one's unlink, with more bytes in the cache each time.
  const std::string more = Pattern(4096, 'A');
  ASSERT_EQ(a().Write(f, data.size(), more), 0);
  ASSERT_EQ(a().Link(f, kRootIno, "g", &n), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), data + more);
  ASSERT_EQ(a().Write(f, 0, "X"), 0);
  ASSERT_EQ(a().Write(f, data.size() + more.size(), "end"), 0);
  ASSERT_EQ(a().Unlink(kRootIno, "f"), 0);
  EXPECT_EQ(ReadAll(*Mount(), f), "X" + data.substr(1) + more + "end");
}

TEST_F(FsCoreTest, AFlushSendsAtMostABoundedSliceOfChunksAtOnce) {
  const uint64_t f = Create(a(), kRootIno, "f");
  BatchSizeIo io(io_);
  auto w = MountOver(io);
  // 600 chunks, written last to first, so that no background write takes any.
  const size_t chunks = 600;
  const std::string data = Pattern(chunks * 4096, 'a');
  for (size_t i = chunks; i-- > 0;) ASSERT_EQ(w->Write(f, i * 4096, std::string_view(data).substr(i * 4096, 4096)), 0);
  io.largest = 0;
  const size_t before = io.batches;
  ASSERT_EQ(w->Flush(f), 0);
  EXPECT_LE(io.largest, ObjectIo::kMaxOpsInFlight + 1) << "a slice of chunks and the inode";
  EXPECT_GE(io.batches - before, 3u) << "600 chunks in slices of 256";
  EXPECT_EQ(ReadAll(*Mount(), f), data);
}

TEST(FsLayoutTest, AWriteAcrossTheLargestFileSizeIsShort) {
  EXPECT_EQ(BytesThatFit(0, 4096), 4096u);
  EXPECT_EQ(BytesThatFit(kMaxFileSize - 4096, 4096), 4096u);
  EXPECT_EQ(BytesThatFit(kMaxFileSize - 2, 4096), 2u);
  EXPECT_EQ(BytesThatFit(kMaxFileSize, 4096), 0u);
  EXPECT_EQ(BytesThatFit(kMaxFileSize + 5, 1), 0u);
}

}  // namespace
}  // namespace ringstore::fs
