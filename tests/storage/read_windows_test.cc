// ReadWindows on a plain file: only the reads of a stream are taken, the bytes are right,
// sequential reads load whole windows once, a sparse stream's reads load their own blocks only, readers of one window wait for its load instead
// of loading it again, appended bytes are read once they exist, and Forget drops what the
// windows hold.
#include "storage/read_windows.h"

#include "storage/page_cache_probe.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_path.h"

namespace ringstore {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kW = ReadWindows::kWindowBytes;
constexpr uint64_t kBlock = ReadWindows::kBlockBytes;

class ReadWindowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TestPath("ringstore-windows-test");
    Append(16 * kW);
    fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd_ < 0) GTEST_SKIP() << "the temporary directory's file system refuses O_DIRECT";
    // The segment's buffered descriptor, with the file out of the page cache to start with
    // (a value log's large values are written around it), and no readahead (a test that
    // reads through it then caches what it read, and nothing more).
    cached_fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(cached_fd_, 0);
    ASSERT_EQ(::fdatasync(cached_fd_), 0);
    ASSERT_EQ(::posix_fadvise(cached_fd_, 0, 0, POSIX_FADV_DONTNEED), 0);
    ASSERT_EQ(::posix_fadvise(cached_fd_, 0, 0, POSIX_FADV_RANDOM), 0);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    if (cached_fd_ >= 0) ::close(cached_fd_);
    fs::remove(path_);
  }
  // Appends n bytes to the file; byte i of the file is a function of i.
  void Append(uint64_t n) {
    std::string bytes(n, '\0');
    for (uint64_t i = 0; i < n; ++i) bytes[i] = Byte(size_ + i);
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), n), static_cast<ssize_t>(n));
    ::close(fd);
    size_ += n;
  }
  static char Byte(uint64_t i) { return static_cast<char>((i * 131 + i / 4093) & 0xff); }
  // Reads [offset, offset + size) through w and checks every byte; false if w declined it
  // (then out is untouched: the caller would read through the page cache).
  bool ReadAndCheck(ReadWindows& w, uint64_t offset, uint64_t size) {
    std::string out;
    auto s = w.ReadSequential(/*segment=*/1, fd_, cached_fd_, offset, size, &out);
    if (!s) {
      EXPECT_TRUE(out.empty());
      return false;
    }
    EXPECT_TRUE(s->ok()) << s->ToString();
    if (out.size() != size) {
      ADD_FAILURE() << "read " << out.size() << " bytes of " << size;
      return true;
    }
    for (uint64_t i = 0; i < size; ++i) {
      if (out[i] != Byte(offset + i)) {
        ADD_FAILURE() << "byte " << offset + i;
        break;
      }
    }
    return true;
  }
  fs::path path_;
  int fd_ = -1;
  int cached_fd_ = -1;
  uint64_t size_ = 0;
};

// Whether this kernel answers cachestat for the test's file (not one that lacks it, or a
// sandbox that refuses it). Asked directly, so that a PageCacheHolds that always answers
// false fails the tests below instead of skipping them.
bool KernelAnswersCachestat(int fd) {
  struct {
    uint64_t off, len;
  } range{0, 4096};
  uint64_t stat[5] = {};
  return ::syscall(451, fd, &range, stat, 0) == 0;
}

// Values laid out as in a value log: a 48-byte header, then the value, padded to a block.
constexpr uint64_t kValue = 256 * 1024;
constexpr uint64_t kEntry = kValue + kBlock;  // 48 + 256 KiB, padded
uint64_t ValueAt(uint64_t k) { return k * kEntry + 48; }

TEST_F(ReadWindowsTest, OnlyTheThirdReadOfAStreamIsTaken) {
  ReadWindows w;
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(20), kValue)) << "nothing read yet";
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(21), kValue)) << "the second of a stream";
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(3), kValue)) << "follows no read";
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(20), kValue)) << "a read again follows no read";
  EXPECT_EQ(w.counters().loads, 0u);
  // The third, a value later: reads of a stream may come a little out of order. (Value 23
  // lies in two windows.)
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(23), kValue));
  EXPECT_EQ(w.counters().loads, 2u);
  // A read more than kSparseEntries values past the windows follows none; one the windows
  // hold is taken.
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(33), kValue));
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(22), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(19), kValue));
  // A taken read that runs past the windows loads the next one, which then holds value 28.
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(27), kValue));
  EXPECT_EQ(w.counters().loads, 3u);
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(28), kValue));
  EXPECT_EQ(w.counters().loads, 3u);
}

TEST_F(ReadWindowsTest, SequentialReadsLoadWholeWindowsOnce) {
  ReadWindows w;
  const uint64_t values = 8 * kW / kEntry;  // 31
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(0), kValue)) << "the first of a stream";
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(1), kValue)) << "the second";
  for (uint64_t k = 2; k < values; ++k) EXPECT_TRUE(ReadAndCheck(w, ValueAt(k), kValue)) << k;
  // Whole windows, each loaded once (the readahead of a waiting reader never ran: one
  // reader), and none past the last value read.
  const auto c = w.counters();
  const uint64_t read_end = ValueAt(values - 1) + kValue;
  EXPECT_EQ(c.loads, (read_end + kW - 1) / kW);
  EXPECT_EQ(c.bytes, c.loads * kW);
  // Read again, each is a copy from a window (the values read fill the 8 windows).
  for (uint64_t k = 2; k < values; ++k) EXPECT_TRUE(ReadAndCheck(w, ValueAt(k), kValue));
  EXPECT_EQ(w.counters().loads, c.loads);
}

TEST_F(ReadWindowsTest, ASparseStreamReadsOnlyItsOwnBlocks) {
  // One value in three or so, as a node serves one replica's share of a client's stream.
  ReadWindows w;
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(0), kValue)) << "the first of a sparse stream";
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(3), kValue)) << "the second";
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(6), kValue));
  // Its own blocks, once: the entry's, as values are laid out here.
  auto c = w.counters();
  EXPECT_EQ(c.loads, 1u);
  EXPECT_EQ(c.exact, 1u);
  EXPECT_EQ(c.bytes, kEntry);
  // Skips of up to kSparseEntries values stay in the stream, and nothing is read ahead.
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(9), kValue));
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(13), kValue));
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(13 + ReadWindows::kSparseEntries + 1), kValue));
  c = w.counters();
  EXPECT_EQ(c.loads, 4u);
  EXPECT_EQ(c.exact, 4u);
  EXPECT_EQ(c.readahead, 0u);
  EXPECT_EQ(c.bytes, 4 * kEntry);
  // A skip of one more follows no read.
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(13 + 2 * ReadWindows::kSparseEntries + 3), kValue));
  // Values read one after another are a stream of whole windows again.
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(50), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(51), kValue));
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(52), kValue));
  c = w.counters();
  EXPECT_EQ(c.exact, 4u);
  EXPECT_EQ(c.bytes, 4 * kEntry + kW);
}

TEST_F(ReadWindowsTest, ASparseReadLongerThanAWindowOrPastTheEndIsReadExactly) {
  ReadWindows w;
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(0), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(3), kValue));
  // 2 MiB and a bit, from 100 bytes into an entry: three loads of at most a window, the
  // blocks from the read's first to its last.
  EXPECT_TRUE(ReadAndCheck(w, 6 * kEntry + 100, 2 * kW + 5000));
  auto c = w.counters();
  EXPECT_EQ(c.exact, 3u);
  EXPECT_EQ(c.loads, 3u);
  EXPECT_EQ(c.bytes, 2 * kW + 2 * kBlock);
  // A sparse read that runs past the end of the file is an error, not short bytes.
  const uint64_t last = size_ / kEntry - 1;  // the last whole entry
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(last - 6), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(last - 3), kValue));
  std::string out;
  auto past = w.ReadSequential(1, fd_, cached_fd_, size_ - kBlock, kValue, &out);
  ASSERT_TRUE(past.has_value());
  EXPECT_TRUE(past->IsCorruption()) << past->ToString();
}

TEST_F(ReadWindowsTest, ASparseReadThatThePageCacheHoldsIsLeftToIt) {
  ReadWindows w;
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(0), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(3), kValue));
  // Value 6 read through the page cache, as a random read declined earlier would be.
  std::string bytes(kValue, '\0');
  ASSERT_EQ(::pread(cached_fd_, bytes.data(), kValue, static_cast<off_t>(ValueAt(6))), static_cast<ssize_t>(kValue));
  if (!KernelAnswersCachestat(cached_fd_)) GTEST_SKIP() << "this kernel does not answer cachestat (Linux 6.5 and later)";
  ASSERT_TRUE(PageCacheHolds(cached_fd_, ValueAt(6), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(6), kValue)) << "the page cache holds it";
  EXPECT_EQ(w.counters().loads, 0u);
  // It still counts for the stream: the next value is read exactly.
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(9), kValue));
  EXPECT_EQ(w.counters().exact, 1u);
}

TEST_F(ReadWindowsTest, AValueLongerThanAWindowReadsThroughSeveral) {
  ReadWindows w;
  EXPECT_FALSE(ReadAndCheck(w, 0, 48));
  EXPECT_FALSE(ReadAndCheck(w, 48, 48));
  EXPECT_TRUE(ReadAndCheck(w, 96, 3 * kW + 5000));
  EXPECT_EQ(w.counters().loads, 4u);
  EXPECT_EQ(w.counters().bytes, 4 * kW);
}

TEST_F(ReadWindowsTest, BytesAppendedAfterALoadAreReadOnceThere) {
  ReadWindows w;
  // Reads up to the end of the file, then past it: the window after the last byte is
  // loaded empty...
  EXPECT_FALSE(ReadAndCheck(w, size_ - 3 * kBlock, kBlock));
  EXPECT_FALSE(ReadAndCheck(w, size_ - 2 * kBlock, kBlock));
  EXPECT_TRUE(ReadAndCheck(w, size_ - kBlock, kBlock));
  std::string out;
  auto past = w.ReadSequential(1, fd_, cached_fd_, size_ + 48, 100, &out);
  ASSERT_TRUE(past.has_value());
  EXPECT_TRUE(past->IsCorruption()) << past->ToString();
  // ...and what is appended after is read from the file, not taken for missing.
  const uint64_t old_size = size_;
  Append(2 * kBlock);
  EXPECT_TRUE(ReadAndCheck(w, old_size + 48, kBlock));
}

TEST_F(ReadWindowsTest, ForgetDropsWhatTheWindowsHold) {
  ReadWindows w;
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(0), kValue));
  EXPECT_FALSE(ReadAndCheck(w, ValueAt(1), kValue));
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(2), kValue));
  // The file changes under the window (as a test overwrite or a cut tail does)...
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "XYZ", 3, static_cast<off_t>(ValueAt(2))), 3);
  ::fdatasync(fd);
  ::close(fd);
  EXPECT_TRUE(ReadAndCheck(w, ValueAt(2), kValue)) << "still held: append-only files never change";
  w.Forget(1);
  std::string out;
  EXPECT_FALSE(w.ReadSequential(1, fd_, cached_fd_, ValueAt(0), kValue, &out).has_value());
  EXPECT_FALSE(w.ReadSequential(1, fd_, cached_fd_, ValueAt(1), kValue, &out).has_value())
      << "its recent reads are forgotten too";
  auto s = w.ReadSequential(1, fd_, cached_fd_, ValueAt(2), kValue, &out);
  ASSERT_TRUE(s.has_value() && s->ok());
  EXPECT_EQ(out.substr(0, 3), "XYZ");
  // Another segment's reads and windows are not this one's.
  EXPECT_FALSE(w.ReadSequential(2, fd_, cached_fd_, ValueAt(3), 3, &out).has_value());
}

TEST_F(ReadWindowsTest, ConcurrentReadersOfOneStreamShareItsLoads) {
  ReadWindows w;
  const uint64_t values = 4 * kW / kEntry;  // 15, in the first 4 windows
  // Four readers take the values in order, each the next one not yet taken, as a server's
  // reader threads do for a client with many reads in flight.
  std::atomic<uint64_t> next{0};
  std::atomic<int> bad{0}, served{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      std::string out;
      for (uint64_t k; (k = next.fetch_add(1)) < values;) {
        out.clear();
        auto s = w.ReadSequential(1, fd_, cached_fd_, ValueAt(k), kValue, &out);
        if (!s) continue;  // the first, or one that came before it
        if (!s->ok() || out.size() != kValue) {
          ++bad;
          continue;
        }
        for (uint64_t i = 0; i < kValue; i += 997) {
          if (out[i] != Byte(ValueAt(k) + i)) ++bad;
        }
        ++served;
      }
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GE(served.load(), static_cast<int>(values) - 8);
  // Each window once: a reader wanting one being loaded waits for it (after reading ahead,
  // at most kReadAhead windows past the four) rather than load it again.
  // (A read can come after values not yet asked for, as a sparse stream's does, and be read
  // exactly: that costs its own blocks once more, not a window.)
  const auto c = w.counters();
  EXPECT_LE(c.loads - c.readahead - c.exact, 4u) << c.readahead << " of " << c.loads << " were read ahead";
  EXPECT_LE(c.loads - c.exact, 4 + ReadWindows::kReadAhead);
}

}  // namespace
}  // namespace ringstore
