// FsCore's read-ahead over an in-memory object store: half a window per round trip, the
// batch in flight while the reader goes on, and batches dropped when the data changes (by
// another mount, or by this one while the batch is in flight: a write, a truncate, a hole).
#include <gtest/gtest.h>
#include <linux/falloc.h>

#include <atomic>
#include <set>
#include <thread>

#include "fsgateway/fs_core.h"
#include "tests/fsgateway/fs_core_fixture.h"
#include "tests/fsgateway/fs_test_io.h"

namespace ringstore::fs {
namespace {

using fstest::FsCoreTest;
using namespace fstest::io;

TEST_F(FsCoreTest, ASequentialReaderFetchesHalfAReadAheadWindowPerRoundTrip) {
  // 64 chunks written by one mount, read in order by another in pieces of half a chunk.
  const uint64_t f = Create(a(), kRootIno, "f");
  std::string data(64 * 4096, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + (i * 7 / 4096) % 26);
  ASSERT_EQ(a().Write(f, 0, data), 0);
  ASSERT_EQ(a().Flush(f), 0);
  BatchSizeIo io(io_);
  FsOptions o;
  o.readahead_chunks = 16;
  o.attr_ttl = std::chrono::hours(1);  // the inode is read once, at open: the batches are chunks
  auto reader = std::make_unique<FsCore>(meta_, io, o, [this] { return Timespec{++clock_, 0}; }, [this] { return rng_(); });
  ASSERT_EQ(reader->Init(), 0);
  bool keep = false;
  ASSERT_EQ(reader->Open(f, false, &keep), 0);
  const size_t before = io.batches;
  std::string got;
  for (uint64_t off = 0; off < data.size(); off += 2048) {
    std::string part;
    ASSERT_EQ(reader->Read(f, off, 2048, &part), 0);
    got += part;
  }
  EXPECT_EQ(got, data);
  // One batch for the first chunk and the window, then one per 8 chunks: 7 in all. One
  // chunk per round trip was 49.
  EXPECT_LE(io.batches - before, 8u);
  EXPECT_GE(io.largest, 8u);
  EXPECT_EQ(reader->Release(f), 0);
}

class ReadaheadTest : public FsCoreTest {
 protected:
  // A file of 32 chunks of 4 KiB (data_), written and flushed by mount a.
  uint64_t WrittenFile() {
    const uint64_t f = Create(a(), kRootIno, "f");
    EXPECT_EQ(a().Write(f, 0, data_), 0);
    EXPECT_EQ(a().Flush(f), 0);
    return f;
  }
  // A mount over io, keeping 2 clean chunks per file, with f open and its first chunk read:
  // io holds the read-ahead of chunks 1-16, read as they were then.
  std::unique_ptr<FsCore> ReaderWithBatchHeld(LateIo& io, uint64_t f) {
    FsOptions o;
    o.readahead_chunks = 16;
    o.clean_chunks_per_file = 2;
    auto reader = MountOver(io, o);
    bool keep = false;
    EXPECT_EQ(reader->Open(f, false, &keep), 0);
    std::string part;
    EXPECT_EQ(reader->Read(f, 0, 4096, &part), 0);
    EXPECT_EQ(io.held(), 1u) << "the read-ahead of chunks 1-16";
    return reader;
  }
  const std::string data_ = Pattern(32 * 4096, 'a');
};

TEST_F(ReadaheadTest, AReadAheadBatchLoadsInTheBackgroundWhileTheReaderGoesOn) {
  const uint64_t f = WrittenFile();
  const std::string& data = data_;
  // Reads of chunks 1 to 31 are held until released; chunk 0 and the inode pass.
  std::set<ObjectId> held;
  for (uint64_t i = 1; i < 32; ++i) held.insert(ChunkId(meta_, f, i).id);
  HeldIo io(io_, [&](const IoOp& op) { return op.kind == IoOp::kGet && held.count(op.id.id) != 0; });
  FsOptions o;
  o.readahead_chunks = 16;
  auto reader = MountOver(io, o);
  bool keep = false;
  ASSERT_EQ(reader->Open(f, false, &keep), 0);
  // The first read returns while its read-ahead is still held.
  std::atomic<bool> first_done{false};
  std::thread first([&] {
    std::string p;
    EXPECT_EQ(reader->Read(f, 0, 4096, &p), 0);
    EXPECT_EQ(p, data.substr(0, 4096));
    first_done = true;
  });
  const bool returned_while_held = WaitUntil([&] { return first_done.load(); });
  EXPECT_TRUE(returned_while_held);
  EXPECT_EQ(io.Held(), 1u);
  if (!returned_while_held) io.Release();
  first.join();
  if (!returned_while_held) return;
  // The next read needs a chunk of that batch: it waits for it, and gets the right bytes.
  std::thread next([&] {
    std::string p;
    EXPECT_EQ(reader->Read(f, 4096, 8192, &p), 0);
    EXPECT_EQ(p, data.substr(4096, 8192));
  });
  EXPECT_TRUE(WaitUntil([&] { return io.FirstWaiters() == 1; }));
  io.Release();
  next.join();
  EXPECT_EQ(io.Held(), 1u);  // chunks 1 and 2 came with the batch, not on their own
  EXPECT_EQ(reader->Release(f), 0);
}

TEST_F(ReadaheadTest, AReadAheadBatchOlderThanAnotherMountsWriteIsDropped) {
  // The reader re-reads the inode on every read (no attribute cache). Its read-ahead brought
  // chunk 2 as it was; another mount then rewrites chunk 2, and the reader must see that.
  const uint64_t f = WrittenFile();
  const std::string& data = data_;
  FsOptions o;
  o.readahead_chunks = 16;
  o.attr_ttl = std::chrono::seconds(0);
  auto reader = Mount(o);
  bool keep = false;
  ASSERT_EQ(reader->Open(f, false, &keep), 0);
  std::string part;
  ASSERT_EQ(reader->Read(f, 0, 4096, &part), 0);  // the read-ahead of chunks 1-16 is done
  const std::string changed(4096, 'Z');
  ASSERT_EQ(a().Write(f, 2 * 4096, changed), 0);
  ASSERT_EQ(a().Flush(f), 0);
  ASSERT_EQ(reader->Read(f, 2 * 4096, 4096, &part), 0);
  EXPECT_EQ(part, changed);
  ASSERT_EQ(reader->Read(f, 3 * 4096, 4096, &part), 0);
  EXPECT_EQ(part, data.substr(3 * 4096, 4096));
  EXPECT_EQ(reader->Release(f), 0);
}

TEST_F(ReadaheadTest, AWriteDropsAReadAheadBatchInFlight) {
  // The batch read chunk 2 before this mount rewrote it; the rewritten chunk is then stored
  // and dropped from memory before the batch is answered. Taking the batch then would bring
  // back the old bytes.
  const uint64_t f = WrittenFile();
  LateIo io(io_);
  auto reader = ReaderWithBatchHeld(io, f);
  std::string part;
  const std::string changed(4096, 'Z');
  ASSERT_EQ(reader->Write(f, 2 * 4096, changed), 0);
  ASSERT_EQ(reader->Flush(f), 0);
  // Reads far apart (no new read-ahead) push chunk 2 out of memory.
  for (uint64_t i : {20u, 24u, 28u}) ASSERT_EQ(reader->Read(f, i * 4096, 4096, &part), 0);
  io.Release();
  ASSERT_EQ(reader->Read(f, 2 * 4096, 4096, &part), 0);
  EXPECT_TRUE(part == changed) << "read back '" << part.substr(0, 8) << "...'";
  EXPECT_EQ(reader->Release(f), 0);
}

TEST_F(ReadaheadTest, ATruncateOrAHolePunchDropsTheReadAheadBatchInFlight) {
  // The batch of chunks 1-16 is read before the file changes under it, and arrives after.
  for (const bool punch : {false, true}) {
    SCOPED_TRACE(punch ? "punch" : "truncate");
    const uint64_t f = WrittenFile();
    LateIo io(io_);
    auto reader = ReaderWithBatchHeld(io, f);
    std::string part;
    if (punch) {
      ASSERT_EQ(reader->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 15 * 4096), 0);
    } else {
      SetAttr to;
      Inode n;
      to.size = 0;
      ASSERT_EQ(reader->SetAttributes(f, to, &n), 0);
      to.size = data_.size();
      ASSERT_EQ(reader->SetAttributes(f, to, &n), 0);
    }
    // Reads far apart (no new read-ahead) push the zeroed chunks out of memory.
    for (uint64_t i : {20u, 24u, 28u}) ASSERT_EQ(reader->Read(f, i * 4096, 4096, &part), 0);
    io.Release();
    ASSERT_EQ(reader->Read(f, 5 * 4096, 4096, &part), 0);
    EXPECT_EQ(part, std::string(4096, '\0'));
    EXPECT_EQ(reader->Release(f), 0);
    ASSERT_EQ(a().Unlink(kRootIno, "f"), 0);
  }
}

}  // namespace
}  // namespace ringstore::fs
