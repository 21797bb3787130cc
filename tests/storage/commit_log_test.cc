// CommitLog on its own: records come back in order after a reopen, from where the caller
// says the tables end; a torn record ends the log and nothing written before the crash
// follows what is appended after it; segments roll over and are reused once released; a
// record checks with its segment's seed only; a reopen leaves no empty segment behind.
#include "storage/commit_log.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dht/checksum.h"
#include "dht/endian.h"
#include "tests/support/fd_flags.h"
#include "tests/support/proc_io.h"
#include "tests/support/test_path.h"

namespace ringstore {
namespace {

namespace fs = std::filesystem;

using Replayed = std::vector<std::pair<uint64_t, std::string>>;

class CommitLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TestPath("ringstore-clog-test").string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Opens the log and replays what follows `after` into *out (if given).
  std::unique_ptr<CommitLog> Open(uint64_t after = 0, Replayed* out = nullptr, CommitLog::Recovered* rec = nullptr) {
    auto log = CommitLog::Open(dir_, segment_bytes_, max_bytes_, ++opens_, direct_);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    if (!log.ok()) return nullptr;
    Replayed local;
    auto r = (*log)->Recover(after, [&](uint64_t lsn, std::string_view p) {
      local.emplace_back(lsn, std::string(p));
      return Status::Ok();
    });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (out != nullptr) *out = local;
    if (rec != nullptr && r.ok()) *rec = *r;
    return std::move(*log);
  }
  static uint64_t Append(CommitLog& log, const std::string& payload) {
    auto lsn = log.Append(payload);
    EXPECT_TRUE(lsn.ok()) << lsn.status().ToString();
    EXPECT_TRUE(log.Sync().ok());
    return lsn.ok() ? *lsn : 0;
  }
  std::vector<std::string> Segments() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Flips one byte of a file, at offset.
  static void Flip(const std::string& path, uint64_t offset) {
    const int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c ^= 0x20;
    ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    ::close(fd);
  }

  std::string dir_;
  uint64_t segment_bytes_ = 1u << 20;
  uint64_t max_bytes_ = 1u << 30;
  uint64_t opens_ = 0;  // each Open seeds the segments' seeds anew
  bool direct_ = true;
};

constexpr uint64_t kBlock = kFileBlockBytes;

TEST_F(CommitLogTest, RecordsComeBackInOrderAfterAReopen) {
  {
    auto log = Open();
    ASSERT_TRUE(log);
    EXPECT_EQ(Append(*log, "one"), 1u);
    EXPECT_EQ(Append(*log, std::string(10000, 'x')), 2u);  // over two blocks
    EXPECT_EQ(Append(*log, ""), 3u);
    EXPECT_EQ(Append(*log, "four"), 4u);
  }
  Replayed got;
  auto log = Open(0, &got);
  ASSERT_TRUE(log);
  EXPECT_EQ(got, (Replayed{{1, "one"}, {2, std::string(10000, 'x')}, {3, ""}, {4, "four"}}));
  EXPECT_EQ(log->next_lsn(), 5u);
}

TEST_F(CommitLogTest, WritesAreDirectOnlyWhenAsked) {
  // A store with async durability never syncs its log: its records go through the page cache
  // (an append is a copy). With sync durability they go around it, where the file system
  // allows that.
  for (const bool direct : {false, true}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (direct && !testing::TakesODirect(dir_)) {
      GTEST_SKIP() << dir_ << " does not take O_DIRECT; the direct half is not checked here";
    }
    direct_ = direct;
    auto log = Open();
    ASSERT_TRUE(log);
    Append(*log, "one");
    const auto flags = testing::FlagsOfFilesIn(dir_);
    ASSERT_EQ(flags.size(), 1u);
    EXPECT_EQ((flags[0] & O_DIRECT) != 0, direct);
    log.reset();
    Replayed got;  // either way, the record comes back
    log = Open(0, &got);
    EXPECT_EQ(got, (Replayed{{1, "one"}}));
  }
}

TEST_F(CommitLogTest, OnlyALogThatIsSyncedWritesZerosIntoNewSegments) {
  // A synced log writes its new segments with zeros, so that its fdatasyncs need not commit
  // the journal; a log that is never synced only reserves the space (zeros through the page
  // cache cost CPU for nothing). Its records come back all the same.
  if (testing::ProcIo("wchar:") < 0) GTEST_SKIP() << "no /proc/self/io here to count bytes written";
  fs::create_directories(dir_);
  {
    const std::string probe = dir_ + "/fallocate-probe";
    const int fd = ::open(probe.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    const bool reserves = ::fallocate(fd, 0, 0, 4096) == 0;
    ::close(fd);
    fs::remove(probe);
    if (!reserves) GTEST_SKIP() << dir_ << " does not take fallocate: zeros are written either way";
  }
  segment_bytes_ = 8u << 20;
  for (const bool direct : {true, false}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    direct_ = direct;
    const int64_t before = testing::ProcIo("wchar:");
    auto log = Open();
    ASSERT_TRUE(log);
    Append(*log, "one");
    const int64_t wrote = testing::ProcIo("wchar:") - before;
    if (direct) EXPECT_GE(wrote, static_cast<int64_t>(segment_bytes_)) << "synced: zeros written";
    else EXPECT_LT(wrote, static_cast<int64_t>(segment_bytes_ / 8)) << "not synced: only reserved";
    EXPECT_EQ(fs::file_size(Segments().front()), segment_bytes_);
    log.reset();
    Replayed got;
    log = Open(0, &got);
    EXPECT_EQ(got, (Replayed{{1, "one"}}));
  }
}

TEST_F(CommitLogTest, ReplayStartsAfterWhatTheTablesHold) {
  {
    auto log = Open();
    for (const char* p : {"a", "b", "c", "d"}) Append(*log, p);
  }
  Replayed got;
  auto log = Open(2, &got);
  EXPECT_EQ(got, (Replayed{{3, "c"}, {4, "d"}}));
  EXPECT_EQ(log->next_lsn(), 5u);
  // The tables may hold more than the log (its segments were reused): appends follow them.
  log.reset();
  auto again = Open(9, &got);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(again->next_lsn(), 10u);
}

TEST_F(CommitLogTest, ATornRecordEndsTheLogAndWhatFollowedItNeverComesBack) {
  {
    auto log = Open();
    for (const char* p : {"a", "b", "c"}) Append(*log, p);
  }
  // Record 2 is the second block after the header block of the only segment.
  ASSERT_EQ(Segments().size(), 1u);
  Flip(Segments()[0], 2 * kBlock + CommitLog::kRecordHeaderBytes);
  Replayed got;
  {
    auto log = Open(0, &got);
    EXPECT_EQ(got, (Replayed{{1, "a"}}));
    EXPECT_EQ(Append(*log, "B"), 2u);
    EXPECT_EQ(Append(*log, "C"), 3u);
    EXPECT_EQ(Append(*log, "D"), 4u);
  }
  // The old record 3 (intact, same segment as the torn one) is not replayed after the new ones.
  auto log = Open(0, &got);
  EXPECT_EQ(got, (Replayed{{1, "a"}, {2, "B"}, {3, "C"}, {4, "D"}}));
}

TEST_F(CommitLogTest, SegmentsBeyondAGapLoseTheirHeaders) {
  segment_bytes_ = 3 * kBlock;  // a header and two one-block records
  {
    auto log = Open();
    for (const char* p : {"1", "2", "3", "4", "5"}) Append(*log, p);  // segments 1-2, 3-4, 5
  }
  std::vector<std::string> files = Segments();
  ASSERT_EQ(files.size(), 3u);
  Flip(files[1], kBlock + CommitLog::kRecordHeaderBytes);  // record 3
  Replayed got;
  CommitLog::Recovered rec;
  {
    auto log = Open(0, &got, &rec);
    EXPECT_EQ(got, (Replayed{{1, "1"}, {2, "2"}}));
    EXPECT_TRUE(rec.dropped);
    for (const char* p : {"3'", "4'"}) Append(*log, p);
  }
  // The old segment of record 5 is not reused yet: its record must not follow 4'.
  {
    auto log = Open(0, &got);
    EXPECT_EQ(got, (Replayed{{1, "1"}, {2, "2"}, {3, "3'"}, {4, "4'"}}));
    for (const char* p : {"5'", "6'"}) Append(*log, p);
  }
  auto log = Open(0, &got);
  EXPECT_EQ(got, (Replayed{{1, "1"}, {2, "2"}, {3, "3'"}, {4, "4'"}, {5, "5'"}, {6, "6'"}}));
}

TEST_F(CommitLogTest, ARecordOutOfSequenceEndsTheLog) {
  {
    auto log = Open();
    for (const char* p : {"a", "b", "c"}) Append(*log, p);
  }
  // Record 3's block (valid, with the segment's seed) copied over record 2's.
  const std::string path = Segments()[0];
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::string block(kBlock, '\0');
  ASSERT_EQ(::pread(fd, block.data(), kBlock, 3 * kBlock), static_cast<ssize_t>(kBlock));
  ASSERT_EQ(::pwrite(fd, block.data(), kBlock, 2 * kBlock), static_cast<ssize_t>(kBlock));
  ::close(fd);
  Replayed got;
  auto log = Open(0, &got);
  EXPECT_EQ(got, (Replayed{{1, "a"}}));
}

TEST_F(CommitLogTest, SegmentsAreReusedOnceReleased) {
  segment_bytes_ = 3 * kBlock;
  uint64_t persisted = 0;
  {
    auto log = Open();
    log->set_before_new_segment([&] { log->Release(persisted); });
    for (int i = 1; i <= 40; ++i) {
      Append(*log, "r" + std::to_string(i));
      persisted = i > 3 ? i - 3 : 0;  // the tables trail the log by three records
    }
    // Two or three segments in use, one more free at most.
    EXPECT_LE(Segments().size(), 4u);
    EXPECT_LE(log->live_bytes(), 3 * segment_bytes_);
  }
  // What the tables do not hold comes back, from reused segments.
  Replayed got;
  auto log = Open(persisted, &got);
  EXPECT_EQ(got, (Replayed{{38, "r38"}, {39, "r39"}, {40, "r40"}}));
}

TEST_F(CommitLogTest, WithoutReleaseNoSegmentIsReused) {
  segment_bytes_ = 3 * kBlock;
  {
    auto log = Open();
    for (int i = 1; i <= 10; ++i) Append(*log, std::to_string(i));
  }
  EXPECT_EQ(Segments().size(), 5u);
  Replayed got;
  auto log = Open(0, &got);
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(got.back(), (std::pair<uint64_t, std::string>{10, "10"}));
}

TEST_F(CommitLogTest, FreeSegmentsGoWhileTheLogIsOverItsSize) {
  segment_bytes_ = 3 * kBlock;
  max_bytes_ = 5 * segment_bytes_;
  uint64_t persisted = 0;
  auto log = Open();
  log->set_before_new_segment([&] { log->Release(persisted); });
  for (int i = 1; i <= 30; ++i) Append(*log, std::to_string(i));  // 15 segments, none released
  EXPECT_EQ(Segments().size(), 15u);
  persisted = 30;
  Append(*log, "31");  // the current segment is full: the next one is looked for
  EXPECT_EQ(Segments().size(), 5u);
  // Live: the segment of 31, and the one that was current at the release (29 and 30).
  EXPECT_EQ(log->live_bytes(), 2 * segment_bytes_);
  // Under the size, free segments stay for reuse.
  for (int i = 32; i <= 41; ++i) {
    persisted = i - 1;
    Append(*log, std::to_string(i));
  }
  EXPECT_EQ(Segments().size(), 5u);
  log.reset();
  Replayed got;
  auto again = Open(40, &got);
  EXPECT_EQ(got, (Replayed{{41, "41"}}));
}

TEST_F(CommitLogTest, OfTwoSegmentsBeginningWithOneLsnTheOneHoldingItsRecordIsWalked) {
  segment_bytes_ = 3 * kBlock;
  {
    auto log = Open();
    Append(*log, "1");
    Append(*log, "2");
  }
  // A later, empty segment with the same header (an earlier build could leave one).
  const std::string first = Segments()[0];
  std::string header(kBlock, '\0');
  {
    const int fd = ::open(first.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, header.data(), kBlock, 0), static_cast<ssize_t>(kBlock));
    ::close(fd);
    const int out = ::open((dir_ + "/00000009.clog").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(out, 0);
    header.resize(3 * kBlock, '\0');
    ASSERT_EQ(::pwrite(out, header.data(), header.size(), 0), static_cast<ssize_t>(header.size()));
    ::close(out);
  }
  Replayed got;
  auto log = Open(0, &got);
  EXPECT_EQ(got, (Replayed{{1, "1"}, {2, "2"}}));
}

TEST_F(CommitLogTest, ARecordLargerThanASegmentGetsOneOfItsOwn) {
  segment_bytes_ = 3 * kBlock;
  const std::string big(5 * kBlock, 'b');
  {
    auto log = Open();
    Append(*log, "small");
    Append(*log, big);
    Append(*log, "after");
  }
  Replayed got;
  auto log = Open(0, &got);
  EXPECT_EQ(got, (Replayed{{1, "small"}, {2, big}, {3, "after"}}));
}

TEST_F(CommitLogTest, ALargeFirstRecordAfterAReopenLeavesNoEmptySegmentBeginningWithIt) {
  segment_bytes_ = 3 * kBlock;
  const std::string big(5 * kBlock, 'b');
  {
    auto log = Open();
    Append(*log, "1");
  }
  {
    auto log = Open();  // the tables hold nothing: record 1 is replayed
    EXPECT_EQ(Append(*log, big), 2u);
  }
  // One segment holds record 1 and one begins at record 2: no other header is valid.
  size_t valid_headers = 0;
  for (const auto& path : Segments()) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char h[32];
    ASSERT_EQ(::pread(fd, h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
    ::close(fd);
    valid_headers += std::string_view(h + 8, 4) == "RSCL" && GetLE(h, 8) == Checksum64(h + 8, 24, 0x52534354);
  }
  EXPECT_EQ(valid_headers, 2u);
  Replayed got;
  auto log = Open(0, &got);
  EXPECT_EQ(got, (Replayed{{1, "1"}, {2, big}}));
}

TEST_F(CommitLogTest, ARecordChecksWithItsSegmentsSeedOnly) {
  {
    auto log = Open();
    Append(*log, "a");
  }
  // Give the header another seed, with a header checksum that matches it: the header is
  // valid, its record is not.
  const std::string path = Segments()[0];
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char h[32];
  ASSERT_EQ(::pread(fd, h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  PutLE(h + 16, GetLE(h + 16, 8) ^ 1, 8);
  PutLE(h, Checksum64(h + 8, 24, 0x52534354), 8);
  ASSERT_EQ(::pwrite(fd, h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  ::close(fd);
  Replayed got;
  CommitLog::Recovered rec;
  auto log = Open(0, &got, &rec);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(log->next_lsn(), 1u);
}

}  // namespace
}  // namespace ringstore
