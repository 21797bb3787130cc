// ValueLog on its own: appends read back across a reopen, segments roll over at their size,
// entry walks stop at a torn tail, a removed segment reads as NotFound, and a flush that
// fails leaves the segment on its last whole entry.
#include "storage/page_cache_probe.h"
#include "storage/value_log.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <map>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "tests/support/direct_io.h"
#include "tests/support/file_size_limit.h"
#include "tests/support/proc_io.h"
#include "tests/support/test_path.h"

namespace ringstore {
namespace {

namespace fs = std::filesystem;

class ValueLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TestPath("ringstore-vlog-test");
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<ValueLog> Open(uint64_t segment_bytes = ValueLog::kDefaultSegmentBytes) {
    auto log = ValueLog::Open(dir_.string(), segment_bytes);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(*log) : nullptr;
  }
  struct Entry {
    ObjectId id;
    ValuePointer p;
    uint64_t size;
  };
  static std::vector<Entry> Entries(const ValueLog& log, uint64_t segment, ValueLog::Walk* walk = nullptr) {
    std::vector<Entry> out;
    auto w = log.ForEachEntry(segment, [&](const ObjectId& id, ValuePointer p, uint64_t size) {
      out.push_back(Entry{id, p, size});
    });
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (walk && w.ok()) *walk = *w;
    return out;
  }
  // Writes entries "1" and "2" (of these sizes, filled with '1' and '2') to a log that is
  // then closed; returns their segment.
  uint64_t WriteTwo(size_t first, size_t second) {
    auto log = Open();
    const uint64_t segment = log->Append(ObjectId::Of("v", "1"), std::string(first, '1'))->segment;
    EXPECT_TRUE(log->Append(ObjectId::Of("v", "2"), std::string(second, '2')).ok());
    EXPECT_TRUE(log->Flush().ok());
    return segment;
  }
  // Whether dir_'s file system takes O_DIRECT.
  bool DirectAllowed() const { return testing::DirectIoAllowed(dir_); }
  fs::path OnlyNonEmptySegment() const {
    fs::path file;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (fs::file_size(e.path()) > 0) file = e.path();
    }
    return file;
  }
  fs::path dir_;
};

TEST_F(ValueLogTest, AppendsReadBackAcrossAReopen) {
  const std::vector<std::string> values = {"", "five!", std::string(4096 - 48, 'x'), std::string(10000, 'y')};
  std::vector<ValuePointer> at;
  {
    auto log = Open();
    for (size_t i = 0; i < values.size(); ++i) {
      auto p = log->Append(ObjectId::Of("v", std::to_string(i)), values[i]);
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      EXPECT_EQ(p->offset % ValueLog::kBlockBytes, ValueLog::kEntryHeaderBytes) << "entries start on blocks";
      at.push_back(*p);
    }
    ASSERT_TRUE(log->Sync().ok());
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(*log->Read(at[i], values[i].size()), values[i]);
  }
  auto log = Open();
  EXPECT_NE(log->active_segment(), at[0].segment) << "a reopened log appends to a new segment";
  ASSERT_EQ(log->SealedSegments().size(), 1u);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(*log->Read(at[i], values[i].size()), values[i]);
  const auto entries = Entries(*log, at[0].segment);
  ASSERT_EQ(entries.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(entries[i].id, ObjectId::Of("v", std::to_string(i)));
    EXPECT_EQ(entries[i].p, at[i]);
    EXPECT_EQ(entries[i].size, values[i].size());
  }
}

TEST_F(ValueLogTest, SegmentsRollOverAndRemovedOnesReadNotFound) {
  auto log = Open(/*segment_bytes=*/3 * 4096);
  std::vector<ValuePointer> at;
  for (int i = 0; i < 6; ++i) at.push_back(*log->Append(ObjectId::Of("v", std::to_string(i)), std::string(5000, 'a' + i)));
  // Two 8 KiB entries fill a 12 KiB segment.
  EXPECT_EQ(at[0].segment, at[1].segment);
  EXPECT_NE(at[1].segment, at[2].segment);
  const auto sealed = log->SealedSegments();
  ASSERT_EQ(sealed.size(), 2u);
  EXPECT_EQ(sealed[0].bytes, 2 * 8192u);
  ASSERT_TRUE(log->Remove(at[0].segment).ok());
  EXPECT_TRUE(log->Read(at[0], 5000).status().IsNotFound());
  EXPECT_EQ(*log->Read(at[2], 5000), std::string(5000, 'c'));
  EXPECT_FALSE(log->Remove(log->active_segment()).ok());
}

// Appends wait in the buffer and go out together: a group of values is one write.
TEST_F(ValueLogTest, AppendsReachTheFileTogetherAtFlush) {
  auto log = Open();
  const auto a = log->Append(ObjectId::Of("v", "a"), std::string(5000, 'a'));
  const auto b = log->Append(ObjectId::Of("v", "b"), std::string(100, 'b'));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->offset, ValueLog::EntryBytes(5000) + ValueLog::kEntryHeaderBytes);
  const fs::path file = dir_ / "00000001.vlog";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::file_size(file), 0u) << "nothing is written before Flush";
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_EQ(fs::file_size(file), ValueLog::EntryBytes(5000) + ValueLog::EntryBytes(100));
  EXPECT_EQ(*log->Read(*a, 5000), std::string(5000, 'a'));
  EXPECT_EQ(*log->Read(*b, 100), std::string(100, 'b'));
  // Past kFlushBytes pending, an append writes at once.
  const std::string big(ValueLog::kFlushBytes, 'c');
  const auto c = log->Append(ObjectId::Of("v", "c"), big);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(fs::file_size(file), c->offset - ValueLog::kEntryHeaderBytes + ValueLog::EntryBytes(big.size()));
  EXPECT_EQ(*log->Read(*c, big.size()), big);
}

// A write that fails part way (here: past RLIMIT_FSIZE) is cut off the file and forgotten by
// the walk of this run's entries; the next flush writes where it would have been.
TEST_F(ValueLogTest, AFailedFlushLeavesTheSegmentOnItsLastWholeEntry) {
  auto log = Open();
  const auto a = log->Append(ObjectId::Of("v", "a"), std::string(5000, 'a'));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(log->Flush().ok());
  const fs::path file = dir_ / "00000001.vlog";
  const uint64_t whole = ValueLog::EntryBytes(5000);
  ASSERT_EQ(fs::file_size(file), whole);

  // Files may grow 4 KiB past that entry: the next flush writes part of its entry, then fails.
  Status failed;
  {
    testing::FileSizeLimit limit(whole + 4096);
    ASSERT_TRUE(limit.ok());
    const auto b = log->Append(ObjectId::Of("v", "b"), std::string(20000, 'b'));
    ASSERT_TRUE(b.ok());
    failed = log->Flush();
  }
  EXPECT_EQ(failed.code(), Code::kIOError) << failed.ToString();
  EXPECT_EQ(fs::file_size(file), whole) << "the partial entry is cut off";
  auto entries = Entries(*log, 1);
  ASSERT_EQ(entries.size(), 1u) << "the failed entry is forgotten";
  EXPECT_EQ(entries[0].id, ObjectId::Of("v", "a"));

  const auto c = log->Append(ObjectId::Of("v", "c"), std::string(300, 'c'));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->offset, whole + ValueLog::kEntryHeaderBytes) << "where the failed entry began";
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_EQ(*log->Read(*a, 5000), std::string(5000, 'a'));
  EXPECT_EQ(*log->Read(*c, 300), std::string(300, 'c'));
  entries = Entries(*log, 1);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].id, ObjectId::Of("v", "c"));
  // Walked from the file by a later run: the same two entries, nothing damaged, no tail.
  log.reset();
  log = Open();
  ValueLog::Walk walk;
  entries = Entries(*log, 1, &walk);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].p, *c);
  EXPECT_FALSE(walk.damaged);
  EXPECT_EQ(walk.tail_bytes, 0u);
}

// The same when the write fails after some of its slices (a flush through the page cache
// goes in kCachedWriteSliceBytes calls): all of it is cut off.
TEST_F(ValueLogTest, AFlushThatFailsAfterSomeSlicesIsCutOffWhole) {
  auto log = Open();
  const auto a = log->Append(ObjectId::Of("v", "a"), std::string(5000, 'a'));
  ASSERT_TRUE(a.ok() && log->Flush().ok());
  const fs::path file = dir_ / "00000001.vlog";
  const uint64_t whole = ValueLog::EntryBytes(5000);
  Status failed;
  {
    testing::FileSizeLimit limit(whole + ValueLog::kCachedWriteSliceBytes + 4096);
    ASSERT_TRUE(limit.ok());
    for (int k = 0; k < 4; ++k) ASSERT_TRUE(log->Append(ObjectId::Of("v", "b" + std::to_string(k)), std::string(20000, 'b')).ok());
    failed = log->Flush();
  }
  EXPECT_EQ(failed.code(), Code::kIOError) << failed.ToString();
  EXPECT_EQ(fs::file_size(file), whole) << "the slices written are cut off too";
  EXPECT_EQ(Entries(*log, 1).size(), 1u);
  const auto c = log->Append(ObjectId::Of("v", "c"), std::string(300, 'c'));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->offset, whole + ValueLog::kEntryHeaderBytes);
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_EQ(*log->Read(*a, 5000), std::string(5000, 'a'));
  EXPECT_EQ(*log->Read(*c, 300), std::string(300, 'c'));
}

// Descriptors open on this log's files, by file name.
std::map<std::string, int> OpenDescriptors(const fs::path& dir) {
  std::map<std::string, int> out;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(e.path(), ec);
    if (!ec && target.parent_path() == fs::weakly_canonical(dir)) ++out[target.filename().string()];
  }
  return out;
}

// A sealed segment keeps its read descriptors (buffered, and O_DIRECT for large values where
// the file system allows it) and the active one its two write descriptors too (O_DIRECT and
// through the page cache), whether the segment was made in this run or found at the start;
// closing closes them all.
TEST_F(ValueLogTest, SegmentsKeepTheirReadDescriptorsAndCloseThem) {
  const int r = DirectAllowed() ? 2 : 1;
  {
    auto log = Open(/*segment_bytes=*/4096);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->Append(ObjectId::Of("v", std::to_string(i)), "x").ok());
    ASSERT_TRUE(log->Sync().ok());
    EXPECT_EQ(OpenDescriptors(dir_), (std::map<std::string, int>{{"00000001.vlog", r}, {"00000002.vlog", r}, {"00000003.vlog", r + 2}}));
  }
  EXPECT_TRUE(OpenDescriptors(dir_).empty());
  auto log = Open(4096);
  EXPECT_EQ(OpenDescriptors(dir_), (std::map<std::string, int>{{"00000001.vlog", r}, {"00000002.vlog", r}, {"00000003.vlog", r}, {"00000004.vlog", r + 2}}));
}

// This run's segments are walked from memory: every entry it wrote, without reading the file
// (damage in it is then not seen, nor needed: nothing it holds is unknown). After a reopen the
// file is read, and the damage shows.
TEST_F(ValueLogTest, ThisRunsSegmentsAreWalkedFromMemory) {
  uint64_t segment = 0;
  {
    auto log = Open(/*segment_bytes=*/3 * 4096);
    std::vector<ValuePointer> at;
    for (int i = 0; i < 3; ++i) at.push_back(*log->Append(ObjectId::Of("v", std::to_string(i)), std::string(100, 'a' + i)));
    ASSERT_TRUE(log->Append(ObjectId::Of("v", "next"), "y").ok());  // starts the next segment
    ASSERT_TRUE(log->Sync().ok());
    segment = at[0].segment;
    ASSERT_NE(log->active_segment(), segment) << "sealed";
    // The first entry's magic is overwritten on disk.
    ASSERT_TRUE(log->WriteForTest(ValuePointer{segment, 0}, "XXXX").ok());
    ValueLog::Walk walk;
    const auto entries = Entries(*log, segment, &walk);
    ASSERT_EQ(entries.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(entries[i].id, ObjectId::Of("v", std::to_string(i)));
      EXPECT_EQ(entries[i].p, at[i]);
      EXPECT_EQ(entries[i].size, 100u);
    }
    EXPECT_FALSE(walk.damaged);
  }
  auto log = Open(3 * 4096);
  ValueLog::Walk walk;
  const auto entries = Entries(*log, segment, &walk);
  EXPECT_EQ(entries.size(), 2u);
  EXPECT_TRUE(walk.damaged);
}

// Only the newest kIndexedSegments are remembered; older ones are walked from their files.
TEST_F(ValueLogTest, SegmentsPastTheIndexedOnesAreWalkedFromTheirFiles) {
  auto log = Open(/*segment_bytes=*/4096);  // one entry per segment
  const size_t n = ValueLog::kIndexedSegments + 2;
  std::vector<ValuePointer> at;
  for (size_t i = 0; i <= n; ++i) at.push_back(*log->Append(ObjectId::Of("v", std::to_string(i)), "x"));
  ASSERT_TRUE(log->Sync().ok());
  // Damage the first entry header of the oldest segment and of one still remembered.
  const uint64_t oldest = at[0].segment, remembered = at[n - 1].segment;
  ASSERT_TRUE(log->WriteForTest(ValuePointer{oldest, 0}, "XXXX").ok());
  ASSERT_TRUE(log->WriteForTest(ValuePointer{remembered, 0}, "XXXX").ok());
  ValueLog::Walk walk;
  EXPECT_TRUE(Entries(*log, oldest, &walk).empty()) << "read from the file: the damage shows";
  EXPECT_EQ(walk.tail_bytes, 4096u);
  EXPECT_EQ(Entries(*log, remembered, &walk).size(), 1u) << "listed from memory";
  EXPECT_EQ(walk.tail_bytes, 0u);
  // A removed segment is forgotten; its walk says NotFound.
  ASSERT_TRUE(log->Remove(remembered).ok());
  EXPECT_TRUE(log->ForEachEntry(remembered, [](const ObjectId&, ValuePointer, uint64_t) {}).status().IsNotFound());
}

// Small values are written through the page cache, so a read right after finds them there;
// large ones bypass it (where the file system allows O_DIRECT).
TEST_F(ValueLogTest, SmallValuesAreWrittenThroughThePageCache) {
  auto log = Open();
  const std::string small(20000, 's'), large(ValueLog::kCachedWriteBytes, 'L');
  const auto s = log->Append(ObjectId::Of("v", "small"), small);
  ASSERT_TRUE(s.ok() && log->Sync().ok());
  const auto cached = log->ReadCached(*s, small.size());
  ASSERT_TRUE(cached.has_value()) << "a small value just written is in the page cache";
  EXPECT_EQ(*cached, small);
  const auto l = log->Append(ObjectId::Of("v", "large"), large);
  ASSERT_TRUE(l.ok() && log->Sync().ok());
  if (!DirectAllowed()) GTEST_SKIP() << "this file system refuses O_DIRECT, so large values are cached too";
  EXPECT_FALSE(log->ReadCached(*l, large.size()).has_value()) << "a large value bypasses the page cache";
  EXPECT_EQ(*log->Read(*l, large.size()), large);
}

// A flush with a bulk entry (repair traffic) bypasses the page cache whatever the sizes of
// its values, in one call; the same values appended otherwise are cached.
TEST_F(ValueLogTest, AFlushWithABulkEntryBypassesThePageCache) {
  if (!DirectAllowed()) GTEST_SKIP() << "this file system refuses O_DIRECT, so every flush is cached";
  auto log = Open();
  const std::string value(16384, 'b');
  auto append = [&](const std::string& tag, bool bulk_last, std::vector<ValuePointer>* at) {
    for (int k = 0; k < 20; ++k) {
      auto p = log->Append(ObjectId::Of(tag, std::to_string(k)), value, bulk_last && k == 19);
      ASSERT_TRUE(p.ok());
      at->push_back(*p);
    }
  };
  std::vector<ValuePointer> plain, bulk;
  append("plain", false, &plain);
  ASSERT_TRUE(log->Flush().ok());
  append("bulk", true, &bulk);
  const int64_t before = testing::ProcIo("syscw:");
  ASSERT_TRUE(log->Flush().ok());
  if (before >= 0) {
    // One O_DIRECT write, where slices would take 12. (Under ASan, reading /proc/self/io
    // adds a few writes of its own.)
    EXPECT_LT(testing::ProcIo("syscw:") - before, 20 * ValueLog::EntryBytes(16384) / ValueLog::kCachedWriteSliceBytes);
  }
  // Asked of the page cache without reading: a read that misses starts the kernel's readahead
  // of what follows (ReadCached's RWF_NOWAIT too).
  const int fd = ::open(OnlyNonEmptySegment().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  if (!PageCacheHolds(fd, plain[0].offset, value.size())) {
    ::close(fd);
    GTEST_SKIP() << "the kernel does not say what its page cache holds (cachestat(2), Linux 6.5)";
  }
  for (int k = 0; k < 20; ++k) EXPECT_TRUE(PageCacheHolds(fd, plain[k].offset, value.size())) << "plain value " << k;
  for (int k = 0; k < 20; ++k) EXPECT_FALSE(PageCacheHolds(fd, bulk[k].offset, value.size())) << "bulk flush, value " << k;
  ::close(fd);
  for (int k = 0; k < 20; ++k) EXPECT_EQ(*log->Read(bulk[k], value.size()), value);
}

// A flush through the page cache goes out in slices (on a kernel without preemption a 4 MiB
// copy into the page cache holds the CPU for milliseconds); the bytes are as appended.
TEST_F(ValueLogTest, ACachedFlushIsWrittenInSlices) {
  if (testing::ProcIo("syscw:") < 0) GTEST_SKIP() << "no /proc/self/io here to count write calls";
  auto log = Open();
  std::vector<ValuePointer> at;
  for (int k = 0; k < 32; ++k) {
    auto p = log->Append(ObjectId::Of("v", std::to_string(k)), std::string(20000, static_cast<char>('a' + k % 26)));
    ASSERT_TRUE(p.ok());
    at.push_back(*p);
  }
  const uint64_t bytes = 32 * ValueLog::EntryBytes(20000);
  ASSERT_LT(bytes, ValueLog::kFlushBytes) << "all still pending";
  const int64_t before = testing::ProcIo("syscw:");
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_GE(testing::ProcIo("syscw:") - before, static_cast<int64_t>(bytes / ValueLog::kCachedWriteSliceBytes));
  for (int k = 0; k < 32; ++k) EXPECT_EQ(*log->Read(at[k], 20000), std::string(20000, static_cast<char>('a' + k % 26)));
}

// Large values read one after the other go through the read windows (O_DIRECT); a test's
// overwrite is still seen by the next read, as a cut tail is.
TEST_F(ValueLogTest, SequentialLargeReadsSeeATestsOverwrite) {
  if (!DirectAllowed()) GTEST_SKIP() << "this file system refuses O_DIRECT: no read windows";
  auto log = Open();
  std::vector<ValuePointer> p;
  for (char c : std::string("abcde")) {
    p.push_back(*log->Append(ObjectId::Of("v", std::string(1, c)), std::string(ValueLog::kCachedWriteBytes, c)));
  }
  ASSERT_TRUE(log->Sync().ok());
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(*log->Read(p[i], ValueLog::kCachedWriteBytes), std::string(ValueLog::kCachedWriteBytes, "abcde"[i]));
  }
  EXPECT_GT(log->read_window_counters().loads, 0u) << "the reads after the second were a stream";
  ASSERT_TRUE(log->WriteForTest(p[3], "XYZ").ok());
  EXPECT_EQ(log->Read(p[3], ValueLog::kCachedWriteBytes)->substr(0, 4), "XYZd");
}

// A cut tail is gone for reads through the read windows too.
TEST_F(ValueLogTest, ACutTailIsGoneForSequentialReads) {
  if (!DirectAllowed()) GTEST_SKIP() << "this file system refuses O_DIRECT: no read windows";
  const uint64_t size = ValueLog::kCachedWriteBytes;
  const uint64_t entry = ValueLog::EntryBytes(size);
  auto log = Open(/*segment_bytes=*/4 * entry);
  std::vector<ValuePointer> p;
  for (char c : std::string("abcde")) p.push_back(*log->Append(ObjectId::Of("v", std::string(1, c)), std::string(size, c)));
  ASSERT_TRUE(log->Sync().ok());
  ASSERT_NE(p[3].segment, log->active_segment()) << "the first four fill a sealed segment";
  for (size_t i = 0; i < 4; ++i) ASSERT_TRUE(log->Read(p[i], size).ok());
  ASSERT_GT(log->read_window_counters().loads, 0u);
  ASSERT_TRUE(log->CutTail(p[3].segment, 3 * entry).ok());
  auto cut = log->Read(p[3], size);
  EXPECT_TRUE(cut.status().IsCorruption()) << cut.status().ToString();
  EXPECT_EQ(*log->Read(p[2], size), std::string(size, 'c'));
}

TEST_F(ValueLogTest, AWalkStopsAtATornEntry) {
  const uint64_t segment = WriteTwo(100, 9000);
  // The second entry loses its last block, as if a crash cut the append short.
  const fs::path file = OnlyNonEmptySegment();
  fs::resize_file(file, fs::file_size(file) - 4096);
  auto log = Open();
  ValueLog::Walk walk;
  const auto entries = Entries(*log, segment, &walk);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].id, ObjectId::Of("v", "1"));
  EXPECT_FALSE(walk.damaged);
  EXPECT_EQ(walk.tail_bytes, ValueLog::EntryBytes(9000) - 4096);
}

TEST_F(ValueLogTest, AWalkGoesOnPastADamagedEntryAndSaysSo) {
  const uint64_t segment = WriteTwo(5000, 100);
  {
    std::FILE* f = std::fopen(OnlyNonEmptySegment().c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fputc('X', f);  // the first entry's magic
    std::fclose(f);
  }
  auto log = Open();
  ValueLog::Walk walk;
  const auto entries = Entries(*log, segment, &walk);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].id, ObjectId::Of("v", "2"));
  EXPECT_TRUE(walk.damaged);
  EXPECT_EQ(walk.tail_bytes, 0u);
}

}  // namespace
}  // namespace ringstore
