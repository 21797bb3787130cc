// The age-based writeback: FsCore::FlushExpired writes what has waited long enough and
// nothing else, skips unlinked files and files busy for a short while (and waits for those
// busy for long), and after a failure ends its round and backs off, from the failure's end
// and doubling; the Flusher's thread brings unwritten data of a file kept open to the
// cluster by itself.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "fsgateway/flusher.h"
#include "fsgateway/fs_core.h"
#include "tests/fsgateway/fs_core_fixture.h"
#include "tests/fsgateway/fs_test_io.h"

namespace ringstore::fs {
namespace {

using fstest::FsCoreTest;
using fstest::io::HeldIo;
using fstest::io::Pattern;
using fstest::io::WaitUntil;
using namespace std::chrono_literals;

// FsCoreTest with the writeback's clock in the test's hands: time passes only by Advance.
class FlusherTest : public FsCoreTest {
 protected:
  FsOptions Timed() {
    FsOptions o;
    o.steady_now = [this] { return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(now_ns_.load())); };
    return o;
  }
  void Advance(std::chrono::nanoseconds d) { now_ns_ += d.count(); }

 private:
  std::atomic<int64_t> now_ns_{int64_t{1} << 40};
};

bool keep = false;  // Open's keep_cache answer, unused here

// Chunks out of order, so no background write starts: the gateway holds all of it.

void WriteHeld(FsCore& c, uint64_t ino, const std::string& x) {
  ASSERT_EQ(c.Write(ino, 4096, x), 0);
  ASSERT_EQ(c.Write(ino, 0, x), 0);
}

TEST_F(FlusherTest, FlushExpiredWritesOnlyWhatIsOldEnough) {
  const uint64_t f = Create(a(), kRootIno, "f");
  auto w = Mount(Timed());
  ASSERT_EQ(w->Open(f, false, &keep), 0);
  const std::string x = Pattern(4096, 'x');
  WriteHeld(*w, f, x);
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u) << "first seen now";
  Advance(999ms);
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u) << "not a second old yet";
  EXPECT_EQ(ReadAll(*Mount(), f), "");
  EXPECT_EQ(w->stats().dirty_bytes, 2u * 4096);
  Advance(1ms);
  const auto round = w->FlushExpired(1s);
  EXPECT_EQ(round.flushed, 1u);
  EXPECT_EQ(round.failed, 0u);
  EXPECT_EQ(ReadAll(*Mount(), f), x + x) << "the data and the size reached the cluster, the file still open";
  EXPECT_EQ(w->stats().dirty_bytes, 0u);
  EXPECT_EQ(w->FlushExpired(0s).flushed, 0u) << "nothing unwritten is left";
  // A flush at close starts the clock again: data written after it is new.
  WriteHeld(*w, f, Pattern(4096, 'y'));
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u);
  ASSERT_EQ(w->Flush(f), 0);
  Advance(2s);
  WriteHeld(*w, f, Pattern(4096, 'z'));
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u) << "the clock of the data before the flush does not count";
  ASSERT_EQ(w->Release(f), 0);
}

// Holds the batch that stores f's inode, as a slow cluster would (a flush's last batch).
HeldIo HoldInodeWrites(MemoryObjectIo& io, const FsMeta& meta, uint64_t ino) {
  const ObjectKey inode = InodeId(meta, ino);
  return HeldIo(io, [inode](const IoOp& op) { return op.kind == IoOp::kPut && op.id.id == inode.id; });
}

TEST_F(FsCoreTest, AFailedFlushEndsTheRound) {
  const uint64_t f = Create(a(), kRootIno, "f"), g = Create(a(), kRootIno, "g");
  auto w = Mount();
  for (uint64_t ino : {f, g}) ASSERT_EQ(w->Open(ino, false, &keep), 0);
  for (uint64_t ino : {f, g}) WriteHeld(*w, ino, Pattern(4096, 'x'));
  io_.FailAll(Status::Unavailable("down"));
  const auto round = w->FlushExpired(0s);
  EXPECT_EQ(round.flushed, 1u) << "the round ends at its first failure: the other file waits";
  EXPECT_EQ(round.failed, 1u);
  EXPECT_NE(round.first_error, 0);
  EXPECT_EQ(w->stats().dirty_bytes, 4u * 4096) << "a failed flush keeps the data";
  io_.FailAll(Status::Ok());
  EXPECT_EQ(w->FlushExpired(0s).flushed, 2u);
  EXPECT_EQ(w->stats().dirty_bytes, 0u);
  for (uint64_t ino : {f, g}) ASSERT_EQ(w->Release(ino), 0);
}

TEST_F(FlusherTest, FlushExpiredBacksOffFromTheEndOfAFailedFlush) {
  const uint64_t f = Create(a(), kRootIno, "f");
  HeldIo held = HoldInodeWrites(io_, meta_, f);
  auto w = MountOver(held, Timed());
  ASSERT_EQ(w->Open(f, false, &keep), 0);
  const std::string x = Pattern(4096, 'x');
  WriteHeld(*w, f, x);
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u);  // first seen now
  Advance(1s);
  // The cluster is down, and the flush takes 30 s to fail (--io-timeout).
  io_.FailAll(Status::Unavailable("down"));
  FsCore::Expired failed;
  std::thread round([&] { failed = w->FlushExpired(1s); });
  ASSERT_TRUE(WaitUntil([&] { return held.Held() > 0; }));
  Advance(30s);
  held.Release();
  round.join();
  EXPECT_EQ(failed.failed, 1u);
  io_.FailAll(Status::Ok());
  // The data is 31 s old, but its flush failed just now: tried again 1 s after that.
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u) << "the back-off counts from the end of the failed flush";
  Advance(1s);
  // A second failure in a row doubles the wait: 2 s.
  io_.FailAll(Status::Unavailable("down"));
  EXPECT_EQ(w->FlushExpired(1s).failed, 1u);
  io_.FailAll(Status::Ok());
  Advance(1999ms);
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u) << "the second back-off is twice the first";
  Advance(1ms);
  const auto last = w->FlushExpired(1s);
  EXPECT_EQ(last.flushed, 1u);
  EXPECT_EQ(last.failed, 0u);
  EXPECT_EQ(ReadAll(*Mount(), f), x + x);
  // Failures in a row wait at most kMaxFlushBackoff.
  WriteHeld(*w, f, x);
  io_.FailAll(Status::Unavailable("down"));
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u);  // first seen now
  Advance(1s);
  for (int k = 0; k < 12; ++k) {
    EXPECT_EQ(w->FlushExpired(1s).failed, 1u) << "failure " << k;
    Advance(std::min<std::chrono::nanoseconds>(std::chrono::seconds(1 << k), FsCore::kMaxFlushBackoff));
  }
  // A flush that succeeds (an fsync) ends the back-off: new data waits one age again.
  EXPECT_EQ(w->FlushExpired(1s).failed, 1u);  // the thirteenth: the next in 5 minutes
  io_.FailAll(Status::Ok());
  ASSERT_EQ(w->Flush(f), 0);
  WriteHeld(*w, f, x);
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u);  // first seen now
  Advance(1s);
  EXPECT_EQ(w->FlushExpired(1s).flushed, 1u) << "a successful flush ends the back-off";
  ASSERT_EQ(w->Release(f), 0);
}

TEST_F(FsCoreTest, FlushExpiredSkipsBusyAndUnlinkedFiles) {
  const uint64_t f = Create(a(), kRootIno, "f"), g = Create(a(), kRootIno, "g");
  HeldIo held = HoldInodeWrites(io_, meta_, f);
  auto w = MountOver(held);
  for (uint64_t ino : {f, g}) ASSERT_EQ(w->Open(ino, false, &keep), 0);
  WriteHeld(*w, f, Pattern(4096, 'x'));
  WriteHeld(*w, g, Pattern(4096, 'y'));
  // g is unlinked while open: its data goes with its last close, and is never written.
  ASSERT_EQ(w->Unlink(kRootIno, "g"), 0);
  WriteHeld(*w, g, Pattern(4096, 'z'));
  // f's flush waits on the cluster, holding the file.
  std::thread closer([&] { EXPECT_EQ(w->Flush(f), 0); });
  ASSERT_TRUE(WaitUntil([&] { return held.Held() > 0; }));
  const auto t0 = std::chrono::steady_clock::now();
  const auto round = w->FlushExpired(0s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "a busy file is not waited for";
  EXPECT_EQ(round.flushed, 0u) << "f is busy and g unlinked";
  held.Release();
  closer.join();
  EXPECT_EQ(ReadAll(*Mount(), f), Pattern(4096, 'x') + Pattern(4096, 'x'));
  ASSERT_EQ(w->Release(g), 0);
  ASSERT_EQ(w->Release(f), 0);
}

TEST_F(FlusherTest, FlushExpiredWaitsForAFileBusyForTwoAges) {
  const uint64_t f = Create(a(), kRootIno, "f");
  HeldIo held = HoldInodeWrites(io_, meta_, f);
  auto w = MountOver(held, Timed());
  ASSERT_EQ(w->Open(f, false, &keep), 0);
  WriteHeld(*w, f, Pattern(4096, 'x'));
  EXPECT_EQ(w->FlushExpired(1s).flushed, 0u);  // first seen now
  Advance(2s);
  // f's close holds it, waiting on the cluster, and will fail: f stays unwritten.
  io_.FailAll(Status::Unavailable("down"));
  std::thread closer([&] { EXPECT_EQ(w->Flush(f), EIO); });
  ASSERT_TRUE(WaitUntil([&] { return held.Held() > 0; }));
  FsCore::Expired round;
  std::thread flusher([&] { round = w->FlushExpired(1s); });
  held.Release();
  closer.join();
  flusher.join();
  // The flusher waited for f (or found it free), then flushed it itself, into the outage.
  EXPECT_EQ(round.flushed, 1u) << "unwritten for two ages: the busy file is waited for, not skipped";
  EXPECT_EQ(round.failed, 1u);
  io_.FailAll(Status::Ok());
  ASSERT_EQ(w->Release(f), 0);
}

TEST_F(FsCoreTest, FlushExpiredWritesAgainACreatedFilesFailedEntry) {
  // A created file, empty and closed, whose directory entry failed in the background: nothing
  // is dirty, yet no other mount can find the file until the entry is written.
  io_.FailAll(Status::Unavailable("directory replicas down"), IoOp::kMerge);
  Inode f, seen;
  ASSERT_EQ(a().CreateOpen(kRootIno, "f", 0644, {}, &f), 0);
  EXPECT_EQ(a().Release(f.ino), EIO) << "the close reports the failed entry";
  io_.FailAll(Status::Ok());
  auto b = Mount();
  EXPECT_EQ(b->Lookup(kRootIno, "f", &seen), ENOENT);
  EXPECT_EQ(a().FlushExpired(0s).failed, 0u);
  EXPECT_EQ(b->Lookup(kRootIno, "f", &seen), 0) << "the age-based writeback wrote the entry";
}

TEST_F(FsCoreTest, AForgetRefusedWhileUnwrittenIsDoneAfterTheWriteback) {
  const uint64_t f = Create(a(), kRootIno, "f");
  auto w = Mount();
  ASSERT_EQ(w->Open(f, false, &keep), 0);
  const std::string x = Pattern(4096, 'x');
  WriteHeld(*w, f, x);
  io_.FailAll(Status::Unavailable("down"));
  EXPECT_EQ(w->Release(f), EIO) << "closed with its data unwritten";
  io_.FailAll(Status::Ok());
  const uint64_t held = w->stats().nodes;
  w->Forget(f);  // the kernel sends this once
  EXPECT_EQ(w->stats().nodes, held) << "unwritten: kept";
  EXPECT_EQ(w->FlushExpired(0s).failed, 0u);
  EXPECT_EQ(w->stats().nodes, held - 1) << "written back, then forgotten as the kernel asked";
  EXPECT_EQ(ReadAll(*Mount(), f), x + x);
}

TEST_F(FsCoreTest, TheFlusherWritesBackAFileKeptOpen) {
  const uint64_t f = Create(a(), kRootIno, "f");
  auto w = Mount();
  ASSERT_EQ(w->Open(f, false, &keep), 0);
  size_t rounds = 0;
  Flusher flusher(*w, 40ms, [&](const FsCore::Expired& r) { rounds += r.flushed; });
  EXPECT_EQ(flusher.interval(), 10ms);
  flusher.Start();
  const std::string x = Pattern(4096, 'x');
  WriteHeld(*w, f, x);
  EXPECT_TRUE(WaitUntil([&] { return w->stats().dirty_bytes == 0; })) << "never written back";
  flusher.Stop();
  EXPECT_GE(rounds, 1u);
  EXPECT_EQ(ReadAll(*Mount(), f), x + x);
  ASSERT_EQ(w->Release(f), 0);
}

}  // namespace
}  // namespace ringstore::fs
