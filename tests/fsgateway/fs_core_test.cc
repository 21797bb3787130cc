// FsCore over an in-memory object store: the namespace and data operations with their error
// cases, two mounts of one filesystem (coherence after open, concurrent creates in one
// directory), and the layout's encodings.
#include "fsgateway/fs_core.h"

#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "fsgateway/fs_catalog.h"
#include "tests/fsgateway/fs_core_fixture.h"
#include "fsgateway/notifier.h"

#include <msgpack.hpp>

namespace ringstore::fs {
namespace {

using fstest::FsCoreTest;
using fstest::TestMeta;


TEST(FsLayoutTest, EncodingsRoundTrip) {
  Inode n;
  n.ino = 99;
  n.mode = S_IFLNK | 0777;
  n.uid = 5;
  n.gid = 6;
  n.nlink = 3;
  n.size = 1ull << 40;
  n.rdev = 7;
  n.atime = {1, 2};
  n.mtime = {3, 4};
  n.ctime = {5, 999999999};
  n.parent = 4;
  n.target = std::string("a\0b", 3);
  n.xattrs["user.x"] = std::string(300, 'v');
  auto back = DecodeInode(EncodeInode(n));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, n);
  auto meta = DecodeFsMeta(EncodeFsMeta(TestMeta()));
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->uuid, TestMeta().uuid);
  auto e = DecodeDirEntry(EncodeDirEntry(DirEntry{42, S_IFDIR}));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ino, 42u);
  EXPECT_FALSE(DecodeInode("garbage").ok());
  EXPECT_FALSE(DecodeFsMeta(EncodeInode(n)).ok());
  EXPECT_NE(InodeId(TestMeta(), 1).id, DirId(TestMeta(), 1).id);
  EXPECT_NE(ChunkId(TestMeta(), 1, 0).id, ChunkId(TestMeta(), 1, 1).id);
}

TEST(FsLayoutTest, DirectoryBucketsSpreadNamesAndOldSuperblocksHaveOne) {
  FsMeta m = TestMeta();
  m.dir_buckets = 7;
  auto meta = DecodeFsMeta(EncodeFsMeta(m));
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->dir_buckets, 7u);
  // A superblock of the 8-field format (before buckets) reads as one bucket per directory.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(8);
  pk.pack(1);
  pk.pack(std::string("old"));
  pk.pack_bin(16);
  pk.pack_bin_body(std::string(16, 'u').data(), 16);
  pk.pack(uint64_t{4096});
  pk.pack(3);
  pk.pack(2);
  pk.pack(2);
  pk.pack(uint64_t{0});
  auto old = DecodeFsMeta(std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->dir_buckets, 1u);
  EXPECT_EQ(DirBucketOf(*old, "anything"), 0u);
  m.dir_buckets = 0;
  EXPECT_FALSE(DecodeFsMeta(EncodeFsMeta(m)).ok());
  // Bucket 0 is the directory's id of old; the others differ; names reach every bucket.
  m = TestMeta();
  EXPECT_EQ(DirBucketId(m, 5, 0).id, DirId(m, 5).id);
  EXPECT_NE(DirBucketId(m, 5, 1).id, DirId(m, 5).id);
  EXPECT_NE(DirBucketId(m, 5, 1).id, DirBucketId(m, 6, 1).id);
  std::vector<int> used(m.dir_buckets);
  for (int i = 0; i < 1000; ++i) ++used.at(DirBucketOf(m, "f" + std::to_string(i)));
  for (uint32_t b = 0; b < m.dir_buckets; ++b) EXPECT_GT(used[b], 30) << "bucket " << b;
}

TEST_F(FsCoreTest, OneBucketDirectoriesAndRenamesAcrossBucketsKeepEveryName) {
  for (uint32_t buckets : {1u, 16u}) {
    MemoryObjectIo io;
    FsMeta m = TestMeta();
    m.dir_buckets = buckets;
    FsOptions o;
    o.attr_ttl = std::chrono::milliseconds(0);
    FsCore c(m, io, o, [this] { return Timespec{++clock_, 0}; }, [this] { return rng_(); });
    ASSERT_EQ(c.Init(), 0);
    Inode n;
    for (int i = 0; i < 40; ++i) ASSERT_EQ(c.MakeNode(kRootIno, "f" + std::to_string(i), S_IFREG | 0644, 0, {}, &n), 0);
    // Renames within the directory, most of them between two buckets.
    for (int i = 0; i < 40; i += 2) ASSERT_EQ(c.Rename(kRootIno, "f" + std::to_string(i), kRootIno, "g" + std::to_string(i), 0), 0);
    for (int i = 1; i < 40; i += 4) ASSERT_EQ(c.Unlink(kRootIno, "f" + std::to_string(i)), 0);
    std::vector<std::pair<std::string, DirEntry>> list;
    ASSERT_EQ(c.ReadDir(kRootIno, &list), 0);
    EXPECT_EQ(list.size(), 30u) << buckets << " bucket(s)";
    for (int i = 0; i < 40; i += 2) EXPECT_EQ(c.Lookup(kRootIno, "g" + std::to_string(i), &n), 0) << i;
    for (int i = 1; i < 40; i += 4) EXPECT_EQ(c.Lookup(kRootIno, "f" + std::to_string(i), &n), ENOENT) << i;
    // A new mount reads every bucket; the directory's objects are as many as its buckets use.
    FsCore other(m, io, o, [this] { return Timespec{++clock_, 0}; }, [this] { return rng_(); });
    ASSERT_EQ(other.Init(), 0);
    list.clear();
    ASSERT_EQ(other.ReadDir(kRootIno, &list), 0);
    EXPECT_EQ(list.size(), 30u);
  }
}

TEST_F(FsCoreTest, CreateLookupAndTheErrorsOfNames) {
  const uint64_t f = Create(a(), kRootIno, "f");
  Inode n;
  ASSERT_EQ(a().Lookup(kRootIno, "f", &n), 0);
  EXPECT_EQ(n.ino, f);
  EXPECT_EQ(n.uid, 1u);
  EXPECT_EQ(n.gid, 2u);
  EXPECT_EQ(a().Lookup(kRootIno, "nope", &n), ENOENT);
  EXPECT_EQ(a().MakeNode(kRootIno, "f", S_IFREG | 0644, 0, {}, &n), EEXIST);
  EXPECT_EQ(a().MakeNode(kRootIno, std::string(256, 'x'), S_IFREG | 0644, 0, {}, &n), ENAMETOOLONG);
  EXPECT_EQ(a().MakeNode(kRootIno, std::string(255, 'x'), S_IFREG | 0644, 0, {}, &n), 0);
  EXPECT_EQ(a().Lookup(f, "x", &n), ENOTDIR);
  const uint64_t d = Create(a(), kRootIno, "d", S_IFDIR | 0755);
  Inode root;
  ASSERT_EQ(a().GetAttr(kRootIno, &root), 0);
  EXPECT_EQ(root.nlink, 3u);
  EXPECT_EQ(a().Unlink(kRootIno, "d"), EISDIR);
  EXPECT_EQ(a().Rmdir(kRootIno, "f"), ENOTDIR);
  Create(a(), d, "inner");
  EXPECT_EQ(a().Rmdir(kRootIno, "d"), ENOTEMPTY);
  ASSERT_EQ(a().Unlink(d, "inner"), 0);
  ASSERT_EQ(a().Rmdir(kRootIno, "d"), 0);
  EXPECT_EQ(a().Lookup(kRootIno, "d", &n), ENOENT);
  ASSERT_EQ(a().GetAttr(kRootIno, &root), 0);
  EXPECT_EQ(root.nlink, 2u);
}

TEST_F(FsCoreTest, RenameMovesOneEntryAndHonoursItsFlags) {
  const uint64_t d1 = Create(a(), kRootIno, "d1", S_IFDIR | 0755);
  const uint64_t d2 = Create(a(), kRootIno, "d2", S_IFDIR | 0755);
  const uint64_t f = Create(a(), d1, "f");
  const uint64_t g = Create(a(), d2, "g");
  ASSERT_EQ(a().Write(f, 0, "F"), 0);
  ASSERT_EQ(a().Flush(f), 0);
  EXPECT_EQ(a().Rename(d1, "f", d2, "g", RENAME_NOREPLACE), EEXIST);
  ASSERT_EQ(a().Rename(d1, "f", d2, "g", RENAME_EXCHANGE), 0);
  Inode n;
  ASSERT_EQ(a().Lookup(d2, "g", &n), 0);
  EXPECT_EQ(n.ino, f);
  ASSERT_EQ(a().Lookup(d1, "f", &n), 0);
  EXPECT_EQ(n.ino, g);
  // Over an existing file: the old one is gone.
  ASSERT_EQ(a().Rename(d1, "f", d2, "g", 0), 0);
  ASSERT_EQ(a().Lookup(d2, "g", &n), 0);
  EXPECT_EQ(n.ino, g);
  EXPECT_EQ(a().GetAttr(f, &n), ENOENT);
  EXPECT_EQ(Names(a(), d1).size(), 0u);
  // A directory moves with its contents, and its ".." follows.
  Create(a(), d1, "sub", S_IFDIR | 0755);
  ASSERT_EQ(a().Rename(kRootIno, "d1", d2, "moved", 0), 0);
  ASSERT_EQ(a().Lookup(d2, "moved", &n), 0);
  EXPECT_EQ(n.parent, d2);
  EXPECT_EQ(Names(a(), n.ino), std::vector<std::string>{"sub"});
  Create(a(), kRootIno, "empty", S_IFDIR | 0755);
  EXPECT_EQ(a().Rename(kRootIno, "empty", d2, "moved", 0), ENOTEMPTY);
  EXPECT_EQ(a().Rename(kRootIno, "empty", d2, "g", 0), ENOTDIR);
  EXPECT_EQ(a().Rename(d2, "g", kRootIno, "empty", 0), EISDIR);
  EXPECT_EQ(a().Rename(d2, "g", d2, "g", 0), 0);
  EXPECT_EQ(a().Rename(d2, "none", d2, "x", 0), ENOENT);
}

TEST_F(FsCoreTest, HardLinksCountAndTheLastOneDeletes) {
  const uint64_t f = Create(a(), kRootIno, "f");
  ASSERT_EQ(a().Write(f, 0, "data"), 0);
  ASSERT_EQ(a().Flush(f), 0);
  Inode n;
  ASSERT_EQ(a().Link(f, kRootIno, "g", &n), 0);
  EXPECT_EQ(n.nlink, 2u);
  EXPECT_EQ(a().Link(f, kRootIno, "g", &n), EEXIST);
  EXPECT_EQ(a().Link(kRootIno, kRootIno, "r", &n), EPERM);
  ASSERT_EQ(a().Unlink(kRootIno, "f"), 0);
  EXPECT_EQ(ReadAll(a(), f), "data");
  const size_t before = io_.objects();
  ASSERT_EQ(a().Unlink(kRootIno, "g"), 0);
  EXPECT_EQ(a().GetAttr(f, &n), ENOENT);
  EXPECT_EQ(io_.objects(), before - 2);  // the inode and its one chunk
}

TEST_F(FsCoreTest, AnUnlinkedOpenFileLivesUntilItsLastRelease) {
  const uint64_t f = Create(a(), kRootIno, "f");
  bool keep = false;
  ASSERT_EQ(a().Open(f, false, &keep), 0);
  ASSERT_EQ(a().Write(f, 0, "still here"), 0);
  ASSERT_EQ(a().Unlink(kRootIno, "f"), 0);
  std::string out;
  ASSERT_EQ(a().Read(f, 0, 100, &out), 0);
  EXPECT_EQ(out, "still here");
  ASSERT_EQ(a().Release(f), 0);
  Inode n;
  EXPECT_EQ(a().GetAttr(f, &n), ENOENT);
}

TEST_F(FsCoreTest, DataCrossesChunksHolesReadAsZerosAndTruncateForgets) {
  const uint64_t f = Create(a(), kRootIno, "f");
  std::string big(3 * 4096 + 100, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(a().Write(f, 10, big), 0);
  ASSERT_EQ(a().Flush(f), 0);
  auto b = Mount();  // another mount reads what the first flushed
  std::string expect = std::string(10, '\0') + big;
  EXPECT_EQ(ReadAll(*b, f), expect);
  // A write far past the end leaves a hole.
  ASSERT_EQ(a().Write(f, 100000, "end"), 0);
  ASSERT_EQ(a().Flush(f), 0);
  std::string all = ReadAll(*b, f);
  ASSERT_EQ(all.size(), 100003u);
  EXPECT_EQ(all.substr(expect.size(), 100000 - expect.size()), std::string(100000 - expect.size(), '\0'));
  // Truncate down then up: the cut bytes read as zeros, not the old data.
  Inode n;
  SetAttr s;
  s.size = 5;
  ASSERT_EQ(a().SetAttributes(f, s, &n), 0);
  s.size = 9000;
  ASSERT_EQ(a().SetAttributes(f, s, &n), 0);
  all = ReadAll(*b, f);
  ASSERT_EQ(all.size(), 9000u);
  EXPECT_EQ(all.substr(0, 5), expect.substr(0, 5));
  EXPECT_EQ(all.substr(5), std::string(8995, '\0'));
}

TEST_F(FsCoreTest, PartialChunkWritesKeepTheRestOfTheChunk) {
  const uint64_t f = Create(a(), kRootIno, "f");
  ASSERT_EQ(a().Write(f, 0, std::string(8192, 'x')), 0);
  ASSERT_EQ(a().Flush(f), 0);
  auto b = Mount();
  bool keep;
  ASSERT_EQ(b->Open(f, false, &keep), 0);
  ASSERT_EQ(b->Write(f, 4000, "yyyy"), 0);  // a chunk b never read: read-modify-write
  ASSERT_EQ(b->Release(f), 0);
  std::string expect(8192, 'x');
  expect.replace(4000, 4, "yyyy");
  EXPECT_EQ(ReadAll(a(), f), expect);
}

TEST_F(FsCoreTest, FallocateZeroesOrRefusesNeverPretends) {
  const uint64_t f = Create(a(), kRootIno, "f");
  ASSERT_EQ(a().Write(f, 0, std::string(10000, 'x')), 0);
  ASSERT_EQ(a().Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000), 0);
  std::string all = ReadAll(a(), f);
  ASSERT_EQ(all.size(), 10000u);
  EXPECT_EQ(all.substr(100, 5000), std::string(5000, '\0'));
  EXPECT_EQ(all.substr(5100), std::string(4900, 'x'));
  ASSERT_EQ(a().Fallocate(f, 0, 0, 20000), 0);
  Inode n;
  ASSERT_EQ(a().GetAttr(f, &n), 0);
  EXPECT_EQ(n.size, 20000u);
  ASSERT_EQ(a().Fallocate(f, FALLOC_FL_ZERO_RANGE, 19000, 2000), 0);
  ASSERT_EQ(a().GetAttr(f, &n), 0);
  EXPECT_EQ(n.size, 21000u);
  EXPECT_EQ(a().Fallocate(f, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), EOPNOTSUPP);
  EXPECT_EQ(a().Fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 10), EOPNOTSUPP);  // needs KEEP_SIZE
}

TEST_F(FsCoreTest, XattrsWithTheirFlagsAndErrors) {
  const uint64_t f = Create(a(), kRootIno, "f");
  ASSERT_EQ(a().SetXattr(f, "user.a", "1", 0), 0);
  EXPECT_EQ(a().SetXattr(f, "user.a", "2", XATTR_CREATE), EEXIST);
  EXPECT_EQ(a().SetXattr(f, "user.b", "2", XATTR_REPLACE), ENODATA);
  ASSERT_EQ(a().SetXattr(f, "user.a", "3", XATTR_REPLACE), 0);
  std::string v;
  ASSERT_EQ(a().GetXattr(f, "user.a", &v), 0);
  EXPECT_EQ(v, "3");
  EXPECT_EQ(a().GetXattr(f, "user.b", &v), ENODATA);
  std::vector<std::string> names;
  ASSERT_EQ(a().ListXattr(f, &names), 0);
  EXPECT_EQ(names, std::vector<std::string>{"user.a"});
  ASSERT_EQ(a().RemoveXattr(f, "user.a"), 0);
  EXPECT_EQ(a().RemoveXattr(f, "user.a"), ENODATA);
  EXPECT_EQ(a().SetXattr(f, "user.big", std::string(kMaxXattrValueBytes + 1, 'v'), 0), E2BIG);
}

TEST_F(FsCoreTest, TwoMountsCreatingInOneDirectoryLoseNothing) {
  auto b = Mount();
  const uint64_t d = Create(a(), kRootIno, "shared", S_IFDIR | 0755);
  std::thread ta([&] {
    for (int i = 0; i < 200; ++i) Create(a(), d, "a" + std::to_string(i));
  });
  std::thread tb([&] {
    for (int i = 0; i < 200; ++i) Create(*b, d, "b" + std::to_string(i));
  });
  ta.join();
  tb.join();
  EXPECT_EQ(Names(a(), d).size(), 400u);
  EXPECT_EQ(Names(*b, d).size(), 400u);
}

TEST_F(FsCoreTest, NotificationsInvalidateTheOtherMountsCaches) {
  // Long TTLs: only a notification can make b see a's changes soon.
  FsOptions slow;
  slow.attr_ttl = std::chrono::seconds(3600);
  auto mount = [&] {
    return std::make_unique<FsCore>(meta_, io_, slow, [this] { return Timespec{++clock_, 0}; },
                                    [this] { return rng_(); });
  };
  auto a_core = mount();
  auto b_core = mount();
  ASSERT_EQ(a_core->Init(), 0);
  ASSERT_EQ(b_core->Init(), 0);
  // b's kernel-invalidation callbacks count and wake the test, which waits on a condition
  // (with a bound) instead of sleeping.
  std::mutex mu;
  std::condition_variable cv;
  int kernel_inode_invals = 0, kernel_entry_invals = 0;
  Notifier na(io_, meta_, *a_core, 1, {}, std::chrono::milliseconds(5));
  Notifier nb(io_, meta_, *b_core, 2,
              NotifierCallbacks{[&](uint64_t) {
                                  std::lock_guard<std::mutex> lock(mu);
                                  ++kernel_inode_invals;
                                  cv.notify_all();
                                },
                                [&](uint64_t, const std::string&) {
                                  std::lock_guard<std::mutex> lock(mu);
                                  ++kernel_entry_invals;
                                  cv.notify_all();
                                }},
              std::chrono::milliseconds(5));
  a_core->SetChangeListener([&](const FsCore::Change& c) { na.Note(c); });
  b_core->SetChangeListener([&](const FsCore::Change& c) { nb.Note(c); });
  na.Start();
  nb.Start();
  // b caches the empty root listing and a file's contents.
  Inode f;
  ASSERT_EQ(a_core->MakeNode(kRootIno, "f", S_IFREG | 0644, 0, {}, &f), 0);
  ASSERT_EQ(a_core->Write(f.ino, 0, "one"), 0);
  ASSERT_EQ(a_core->Flush(f.ino), 0);
  auto wait_for = [&](const std::function<bool()>& cond) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), cond);
  };
  ASSERT_EQ(ReadAll(*b_core, f.ino), "one");
  // a changes the file and creates another: b sees both without any TTL running out.
  ASSERT_EQ(a_core->Write(f.ino, 0, "two"), 0);
  ASSERT_EQ(a_core->Flush(f.ino), 0);
  Inode g;
  ASSERT_EQ(a_core->MakeNode(kRootIno, "g", S_IFREG | 0644, 0, {}, &g), 0);
  EXPECT_TRUE(wait_for([&] { return ReadAll(*b_core, f.ino) == "two"; }));
  EXPECT_TRUE(wait_for([&] { return Names(*b_core, kRootIno).size() == 2; }));
  // The reads above may see the change before the notification lands (nothing is cached
  // yet under a slow sanitizer build): wait for the kernel invalidations themselves.
  EXPECT_TRUE(wait_for([&] { return kernel_inode_invals > 0 && kernel_entry_invals > 0; }))
      << "inode invalidations " << kernel_inode_invals << ", entry invalidations " << kernel_entry_invals;
  EXPECT_GT(nb.events_received(), 0u);
  na.Stop();
  nb.Stop();
}

TEST_F(FsCoreTest, AChangeFromAStaleCacheDoesNotUndoAnotherMountsChange) {
  // Long TTLs and no notifications: b's cached inode is stale when it changes the file.
  FsOptions slow;
  slow.attr_ttl = std::chrono::seconds(3600);
  auto mount = [&] {
    auto c = std::make_unique<FsCore>(meta_, io_, slow, [this] { return Timespec{++clock_, 0}; }, [this] { return rng_(); });
    EXPECT_EQ(c->Init(), 0);
    return c;
  };
  auto a = mount(), b = mount();
  Inode f, seen;
  ASSERT_EQ(a->MakeNode(kRootIno, "f", S_IFREG | 0644, 0, {}, &f), 0);
  ASSERT_EQ(a->Write(f.ino, 0, std::string(100, 'x')), 0);
  ASSERT_EQ(a->Flush(f.ino), 0);
  ASSERT_EQ(b->GetAttr(f.ino, &seen), 0);
  ASSERT_EQ(a->Write(f.ino, 100, std::string(50, 'y')), 0);  // a appends
  ASSERT_EQ(a->Flush(f.ino), 0);
  SetAttr chmod;
  chmod.mode = 0600;
  ASSERT_EQ(b->SetAttributes(f.ino, chmod, &seen), 0);  // b chmods from its old copy
  EXPECT_EQ(seen.size, 150u);
  ASSERT_EQ(b->SetXattr(f.ino, "user.k", "v", 0), 0);
  auto c = mount();
  ASSERT_EQ(c->GetAttr(f.ino, &seen), 0);
  EXPECT_EQ(seen.size, 150u);
  EXPECT_EQ(seen.mode & 07777, 0600u);
  EXPECT_EQ(seen.xattrs.count("user.k"), 1u);
  // Directory link counts come from the merged listing: mkdirs from both mounts all count.
  Inode d;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a->MakeNode(kRootIno, "a" + std::to_string(i), S_IFDIR | 0755, 0, {}, &d), 0);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(b->MakeNode(kRootIno, "b" + std::to_string(i), S_IFDIR | 0755, 0, {}, &d), 0);
  ASSERT_EQ(c->GetAttr(kRootIno, &seen), 0);
  EXPECT_EQ(seen.nlink, 2u + 7u);
}

TEST_F(FsCoreTest, ADirectorysTimesLiveInItsListingAndTheLatestChangeWins) {
  auto b = Mount();
  Inode d, f, seen;
  ASSERT_EQ(a().MakeNode(kRootIno, "d", S_IFDIR | 0755, 0, {}, &d), 0);
  SetAttr chmod;
  chmod.mode = 0700;
  ASSERT_EQ(b->SetAttributes(d.ino, chmod, &seen), 0);
  // A create in d stamps d's times through its listing; b's chmod stays.
  ASSERT_EQ(a().MakeNode(d.ino, "f", S_IFREG | 0644, 0, {}, &f), 0);
  auto c = Mount();
  ASSERT_EQ(c->GetAttr(d.ino, &seen), 0);
  EXPECT_EQ(seen.mode & 07777, 0700u);
  EXPECT_EQ(seen.mtime, f.ctime);
  EXPECT_EQ(seen.ctime, f.ctime);
  // An explicit mtime set later wins over the create's; an unlink after it wins again.
  SetAttr touch;
  touch.mtime = Timespec{5, 0};
  ASSERT_EQ(b->SetAttributes(d.ino, touch, &seen), 0);
  ASSERT_EQ(c->GetAttr(d.ino, &seen), 0);
  EXPECT_EQ(seen.mtime, (Timespec{5, 0}));
  ASSERT_EQ(a().Unlink(d.ino, "f"), 0);
  ASSERT_EQ(c->GetAttr(d.ino, &seen), 0);
  EXPECT_GT(seen.mtime.sec, 5);
  EXPECT_EQ(seen.mtime, seen.ctime);
  std::vector<std::pair<std::string, DirEntry>> list;
  ASSERT_EQ(c->ReadDir(d.ino, &list), 0);
  EXPECT_TRUE(list.empty());  // the times are not an entry
  EXPECT_EQ(c->Rmdir(kRootIno, "d"), 0);
}

TEST_F(FsCoreTest, AChmodOfADirectoryFromAStaleCacheKeepsItsNewerMtime) {
  FsOptions slow;
  slow.attr_ttl = std::chrono::seconds(3600);  // a's copy of d stays cached
  auto a = std::make_unique<FsCore>(meta_, io_, slow, [this] { return Timespec{++clock_, 0}; }, [this] { return rng_(); });
  ASSERT_EQ(a->Init(), 0);
  auto b = Mount();
  Inode d, f, seen;
  ASSERT_EQ(a->MakeNode(kRootIno, "d", S_IFDIR | 0755, 0, {}, &d), 0);
  std::vector<std::pair<std::string, DirEntry>> list;
  ASSERT_EQ(a->ReadDir(d.ino, &list), 0);
  ASSERT_EQ(b->MakeNode(d.ino, "f", S_IFREG | 0644, 0, {}, &f), 0);  // d's mtime moves on
  SetAttr chmod;
  chmod.mode = 0700;
  ASSERT_EQ(a->SetAttributes(d.ino, chmod, &seen), 0);
  EXPECT_EQ(seen.mtime, f.ctime);
  EXPECT_EQ(seen.nlink, 2u);
  ASSERT_EQ(Mount()->GetAttr(d.ino, &seen), 0);
  EXPECT_EQ(seen.mtime, f.ctime);  // not a's older copy, written back under a newer stamp
  EXPECT_EQ(seen.mode & 07777, 0700u);
}

TEST_F(FsCoreTest, TheKernelKeepsAListingOnlyWhileItIsUnchanged) {
  // The fixture's mounts re-read listings at every use (TTL 0), so each opendir sees the
  // cluster's listing.
  auto b = Mount();
  const uint64_t d = Create(a(), kRootIno, "d", S_IFDIR | 0755);
  Create(a(), d, "x");
  uint64_t parent = 0, gen = 0;
  bool keep = true;
  std::vector<std::pair<std::string, DirEntry>> list;
  ASSERT_EQ(a().OpenDir(d, &parent, &keep), 0);
  EXPECT_EQ(parent, kRootIno);
  EXPECT_FALSE(keep);  // the kernel was never handed this listing
  ASSERT_EQ(a().ReadDir(d, &list, &gen), 0);
  a().KernelCachedListing(d, gen);
  ASSERT_EQ(a().OpenDir(d, &parent, &keep), 0);
  EXPECT_TRUE(keep);  // re-read, and the same
  Create(a(), d, "y");  // this mount's change
  ASSERT_EQ(a().OpenDir(d, &parent, &keep), 0);
  EXPECT_FALSE(keep);
  ASSERT_EQ(a().ReadDir(d, &list, &gen), 0);
  a().KernelCachedListing(d, gen);
  ASSERT_EQ(b->Unlink(d, "x"), 0);  // another mount's change, found by the re-read
  ASSERT_EQ(a().OpenDir(d, &parent, &keep), 0);
  EXPECT_FALSE(keep);
  ASSERT_EQ(a().ReadDir(d, &list, &gen), 0);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].first, "y");
  a().KernelCachedListing(d, gen);
  ASSERT_EQ(a().OpenDir(d, &parent, &keep), 0);
  EXPECT_TRUE(keep);
  uint64_t file = 0;
  EXPECT_EQ(a().OpenDir(list[0].second.ino, &file, &keep), ENOTDIR);
}

TEST_F(FsCoreTest, PosixAclsAreRefusedNotStoredAsPlainXattrs) {
  const uint64_t f = Create(a(), kRootIno, "f");
  EXPECT_EQ(a().SetXattr(f, "system.posix_acl_access", "\x02", 0), EOPNOTSUPP);
  std::string v;
  EXPECT_EQ(a().GetXattr(f, "system.posix_acl_access", &v), ENODATA);
}

TEST_F(FsCoreTest, ReadOnlyMountsRefuseChanges) {
  FsOptions o;
  o.read_only = true;
  auto ro = Mount(o);
  Inode n;
  EXPECT_EQ(ro->MakeNode(kRootIno, "x", S_IFREG | 0644, 0, {}, &n), EROFS);
  EXPECT_EQ(ro->Write(kRootIno, 0, "x"), EROFS);
  EXPECT_EQ(ro->SetXattr(kRootIno, "user.x", "1", 0), EROFS);
}

TEST_F(FsCoreTest, AClusterThatIsGoneIsEIONotSilence) {
  const uint64_t f = Create(a(), kRootIno, "f");
  ASSERT_EQ(a().Write(f, 0, "x"), 0);
  io_.FailAll(Status::Unavailable("all nodes down"));
  EXPECT_EQ(a().Flush(f), EIO);
  Inode n;
  EXPECT_EQ(a().MakeNode(kRootIno, "g", S_IFREG | 0644, 0, {}, &n), EIO);
  io_.FailAll(Status::Ok());
  EXPECT_EQ(a().Flush(f), 0);  // the dirty data was kept and goes out now
  EXPECT_EQ(ReadAll(*Mount(), f), "x");
}

// Creates the filesystem name in catalog, with TestMeta's settings, and returns it.
FsMeta CreateFs(FsCatalog& catalog, const std::string& name) {
  FsMeta m = TestMeta();
  m.name = name;
  EXPECT_TRUE(catalog.Create(m, 0, 0, 1).ok());
  return m;
}

// Makes /d/f, with 10,000 bytes in f, in the filesystem meta over io.
void MakeDirWithFile(MemoryObjectIo& io, const FsMeta& meta, Inode* d, Inode* f) {
  FsCore core(meta, io, {}, [] { return Timespec{1, 0}; }, [] {
    static uint64_t n = 10;
    return n++;
  });
  ASSERT_EQ(core.Init(), 0);
  ASSERT_EQ(core.MakeNode(kRootIno, "d", S_IFDIR | 0755, 0, {}, d), 0);
  ASSERT_EQ(core.MakeNode(d->ino, "f", S_IFREG | 0644, 0, {}, f), 0);
  ASSERT_EQ(core.Write(f->ino, 0, std::string(10000, 'z')), 0);
  ASSERT_EQ(core.FlushAll(), 0);
}

TEST(FsCatalogTest, CreateListOpenRemove) {
  MemoryObjectIo io;
  FsCatalog catalog(io);
  const FsMeta m = CreateFs(catalog, "one");
  EXPECT_FALSE(catalog.Create(m, 0, 0, 1).ok());
  FsMeta m2 = TestMeta();
  m2.name = "two";
  m2.uuid = std::string(16, 'v');
  ASSERT_TRUE(catalog.Create(m2, 0, 0, 1).ok());
  EXPECT_EQ(catalog.List().value(), (std::vector<std::string>{"one", "two"}));
  Inode d, f;
  ASSERT_NO_FATAL_FAILURE(MakeDirWithFile(io, *catalog.Open("one"), &d, &f));
  const size_t with_one = io.objects();
  ASSERT_TRUE(catalog.Remove("one", nullptr).ok());
  EXPECT_TRUE(catalog.Open("one").status().IsNotFound());
  EXPECT_EQ(catalog.List().value(), std::vector<std::string>{"two"});
  // Left: two's superblock and root inode, the catalog, and the record of the last admin
  // command (the remove's admin check).
  EXPECT_EQ(io.objects(), 4u);
  EXPECT_EQ(io.Get(ObjectKey::Of(reserved::kFsCatalog, reserved::kLastAdminOpKey), Quorum{}).value, "fs rm one");
  EXPECT_GT(with_one, 3u);
  EXPECT_FALSE(ValidateFsName("-bad").ok());
  EXPECT_FALSE(ValidateChunkSize(3000).ok());
}

TEST(FsCatalogTest, RemoveFindsEveryBucketsEntriesWhateverTheOtherBucketsMarks) {
  // An rmdir's clear mark holds for its own bucket: merging a directory's buckets into one
  // map let another bucket's newer mark hide a live entry, whose inode and chunks then stayed.
  MemoryObjectIo io;
  FsCatalog catalog(io);
  CreateFs(catalog, "marked");
  const FsMeta meta = *catalog.Open("marked");
  Inode d, f;
  ASSERT_NO_FATAL_FAILURE(MakeDirWithFile(io, meta, &d, &f));
  const std::vector<ObjectKey> buckets = DirBucketIds(meta, d.ino);
  const uint32_t other = (DirBucketOf(meta, "f") + 1) % buckets.size();
  LwwMap mark{{std::string(kMapClearName), MapEntry{Timestamp{1} << 62, true, {}}}};
  ASSERT_TRUE(io.Merge(buckets[other], mark, Quorum{}).ok());
  ASSERT_TRUE(catalog.Remove("marked", nullptr).ok());
  EXPECT_TRUE(io.Get(InodeId(meta, f.ino), Quorum{}).status.IsNotFound()) << "f's inode was left behind";
  EXPECT_TRUE(io.Get(ChunkId(meta, f.ino, 0), Quorum{}).status.IsNotFound()) << "f's data was left behind";
}

}  // namespace
}  // namespace ringstore::fs
