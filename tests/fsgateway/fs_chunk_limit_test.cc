// Chunk limits (docs/fsgateway.md F13): what a crashed mount stored past a file's size reads
// as zeros however the file grows; a chunk at or past the stored limit is written only once
// the inode with a higher limit is stored; shrinking or deleting a sparse file deletes only
// the chunks below the limit; an inode written before limits keeps the old rules.
#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <map>

#include "tests/fsgateway/fs_core_fixture.h"
#include "tests/fsgateway/fs_test_io.h"

namespace ringstore::fs::fstest {
namespace {

constexpr uint64_t kCs = 4096;  // TestMeta's chunk size

// Passes everything on, and checks each chunk put against the inode stored at that moment:
// its index must be below the stored limit. Counts chunk deletes.
class LimitCheckingIo final : public io::ForwardingIo {
 public:
  LimitCheckingIo(MemoryObjectIo& inner, const FsMeta& fs) : ForwardingIo(inner), fs_(fs) {}
  std::shared_ptr<PendingIo> Start(std::vector<IoOp> ops, const Quorum& q, Done done) override {
    for (const IoOp& op : ops) {
      auto w = inodes_.find(op.id.id);
      if (w != inodes_.end() && op.kind == IoOp::kPut) CheckSize(w->second, op.value, ops);
      auto it = chunks_.find(op.id.id);
      if (it == chunks_.end()) continue;
      const auto [ino, i] = it->second;
      if (op.kind == IoOp::kDel) ++deletes;
      if (op.kind == IoOp::kPut) {
        const uint64_t limit = StoredLimit(ino);
        if (i >= limit) violations.push_back("chunk " + std::to_string(i) + " put under limit " + std::to_string(limit));
        highest = std::max(highest, i);
      }
    }
    return inner_.Start(std::move(ops), q, std::move(done));
  }
  // Chunks 0..4095 of ino are looked at.
  void Watch(uint64_t ino) {
    for (uint64_t i = 0; i < 4096; ++i) chunks_[ChunkId(fs_, ino, i).id] = {ino, i};
    inodes_[InodeId(fs_, ino).id] = ino;
  }
  // An inode stored with a size must have the whole chunks under it stored, or in the same
  // batch (decision F4); the test writes chunks 0..dense-1 and no zeros there.
  void CheckSize(uint64_t ino, const std::string& bytes, const std::vector<IoOp>& batch) {
    auto inode = DecodeInode(bytes);
    if (!inode.ok()) return;
    for (uint64_t i = 0; i < inode->size / fs_.chunk_size && i < dense; ++i) {
      const ObjectId id = ChunkId(fs_, ino, i).id;
      const bool in_batch = std::any_of(batch.begin(), batch.end(), [&](const IoOp& op) { return op.id.id == id; });
      if (in_batch) continue;
      if (!inner_.Run({IoOp{IoOp::kGet, id, {}, {}}}, Quorum{})[0].status.ok()) {
        violations.push_back("inode stored with size " + std::to_string(inode->size) + " before chunk " +
                             std::to_string(i));
        return;
      }
    }
  }
  uint64_t StoredLimit(uint64_t ino) {
    auto r = inner_.Run({IoOp{IoOp::kGet, InodeId(fs_, ino), {}, {}}}, Quorum{});
    if (!r[0].status.ok()) return 0;
    auto inode = DecodeInode(r[0].value);
    return inode.ok() ? inode->chunk_limit : 0;
  }
  std::vector<std::string> violations;
  uint64_t deletes = 0, highest = 0;
  uint64_t dense = 0;  // chunks written whole from the start (CheckSize)

 private:
  const FsMeta fs_;
  std::map<ObjectId, std::pair<uint64_t, uint64_t>> chunks_;  // id -> inode, index
  std::map<ObjectId, uint64_t> inodes_;                       // id -> inode
};

class ChunkLimitTest : public FsCoreTest {
 protected:
  // What a mount that crashed after its chunk writes and before its inode write left: chunk
  // i stored whole, keep bytes of real data then the rest stale.
  void PutStale(uint64_t ino, uint64_t i, const std::string& real = "") {
    std::string data = real + std::string(kCs - real.size(), 'S');
    ASSERT_EQ(FirstErrno(io_.Run({IoOp{IoOp::kPut, ChunkId(meta_, ino, i), data, {}}}, Quorum{})), 0);
  }
  uint64_t FileOf(const std::string& name, const std::string& data) { return FileOfOn(a(), name, data); }
  // A mount that trusts its copies for an hour (the fixture's re-read every time).
  std::unique_ptr<FsCore> SlowMount(ObjectIo& io) {
    FsOptions slow;
    slow.attr_ttl = std::chrono::seconds(3600);
    auto m = std::make_unique<FsCore>(meta_, io, slow, [this] { return Timespec{++clock_, 0}; },
                                      [this] { return rng_(); });
    EXPECT_EQ(m->Init(), 0);
    return m;
  }
  uint64_t FileOfOn(FsCore& m, const std::string& name, const std::string& data) {
    const uint64_t ino = Create(m, kRootIno, name);
    EXPECT_EQ(m.Write(ino, 0, data), 0);
    EXPECT_EQ(m.Flush(ino), 0);
    return ino;
  }
  static size_t NonZero(const std::string& s, size_t from) {
    size_t n = 0;
    for (size_t k = from; k < s.size(); ++k) n += s[k] != '\0';
    return n;
  }
};

TEST_F(ChunkLimitTest, WhatACrashLeftPastTheSizeReadsAsZerosHoweverTheFileGrows) {
  const std::string head(100, 'h');
  const std::vector<std::string> ways = {"truncate", "write past the end", "fallocate", "zero range"};
  for (const std::string& way : ways) {
    SCOPED_TRACE(way);
    const uint64_t ino = FileOf("f-" + std::to_string(&way - ways.data()), head);
    PutStale(ino, 0, head);
    PutStale(ino, 1);
    PutStale(ino, 5);
    auto b = Mount();  // another mount, which knows nothing of the crash either
    if (way == "truncate") {
      SetAttr req;
      req.size = 8 * kCs;
      Inode out;
      ASSERT_EQ(b->SetAttributes(ino, req, &out), 0);
    } else if (way == "write past the end") {
      ASSERT_EQ(b->Write(ino, 7 * kCs, "tail"), 0);
      ASSERT_EQ(b->Flush(ino), 0);
    } else if (way == "fallocate") {
      ASSERT_EQ(b->Fallocate(ino, 0, 0, 8 * kCs), 0);
    } else {
      ASSERT_EQ(b->Fallocate(ino, FALLOC_FL_ZERO_RANGE, 6 * kCs, 2 * kCs), 0);
    }
    const std::string got = ReadAll(*Mount(), ino);
    ASSERT_GE(got.size(), 7 * kCs);
    EXPECT_EQ(got.substr(0, 100), head);
    EXPECT_EQ(NonZero(got.substr(0, 7 * kCs), 100), 0u) << "stale bytes came back";
  }
}

TEST_F(ChunkLimitTest, AGapWithinTheChunkTheSizeEndsInReadsAsZeros) {
  // The write loads the chunk (read-modify-write): the stored bytes past the size must not
  // stay between the old end and the write.
  const uint64_t ino = FileOf("f", std::string(100, 'h'));
  PutStale(ino, 0, std::string(100, 'h'));
  auto b = Mount();
  ASSERT_EQ(b->Write(ino, 1000, "x"), 0);
  ASSERT_EQ(b->Flush(ino), 0);
  const std::string got = ReadAll(*Mount(), ino);
  ASSERT_EQ(got.size(), 1001u);
  EXPECT_EQ(NonZero(got.substr(0, 1000), 100), 0u);
}

TEST_F(ChunkLimitTest, TheMountThatMadeTheFileSeesWhatAnotherMountsCrashLeft) {
  // Mount a made the file (nothing stale, as far as it knew); another mount then stored
  // chunks past the size and crashed before its inode write. a reads the inode again (TTL
  // 0) before it grows the file, and clears them.
  const uint64_t ino = FileOf("f", std::string(100, 'h'));
  PutStale(ino, 0, std::string(100, 'h'));
  PutStale(ino, 2);
  SetAttr req;
  req.size = 4 * kCs;
  Inode out;
  ASSERT_EQ(a().SetAttributes(ino, req, &out), 0);
  EXPECT_EQ(NonZero(ReadAll(*Mount(), ino), 100), 0u);
}

TEST_F(ChunkLimitTest, AChunkPastTheLimitIsWrittenOnlyOnceAHigherLimitIsStored) {
  LimitCheckingIo io(io_, meta_);
  FsOptions o;
  o.writeback_batch_bytes = 8 * kCs;  // background writes too
  auto m = MountOver(io, o);
  Inode n;
  ASSERT_EQ(m->CreateOpen(kRootIno, "big", S_IFREG | 0644, Caller{}, &n), 0);
  ASSERT_EQ(m->Flush(n.ino), 0);
  io.Watch(n.ino);
  io.dense = 300;
  EXPECT_EQ(io.StoredLimit(n.ino), kInitialChunkLimit);
  const std::string block(kCs, 'd');
  for (uint64_t i = 0; i < 300; ++i) ASSERT_EQ(m->Write(n.ino, i * kCs, block), 0);
  ASSERT_EQ(m->Flush(n.ino), 0);
  // Random writes far out, through the flush alone; an xattr change first stores the inode
  // from a copy taken before that flush raised the limit.
  ASSERT_EQ(m->Write(n.ino, 2000 * kCs, block), 0);
  ASSERT_EQ(m->SetXattr(n.ino, "user.k", "v", 0), 0);
  ASSERT_EQ(m->Flush(n.ino), 0);
  EXPECT_EQ(m->Release(n.ino), 0);
  EXPECT_EQ(io.highest, 2000u);
  for (const auto& v : io.violations) ADD_FAILURE() << v;
  const uint64_t limit = io.StoredLimit(n.ino);
  EXPECT_GT(limit, 2000u);
  EXPECT_LE(limit, 4002u);  // doubled, not far past what was written
  // Whatever is stored lies below the limit in the end too.
  for (uint64_t i = limit; i < 4096; ++i) {
    auto r = io_.Run({IoOp{IoOp::kGet, ChunkId(meta_, n.ino, i), {}, {}}}, Quorum{});
    EXPECT_TRUE(r[0].status.IsNotFound()) << "chunk " << i << " stored at or past the limit " << limit;
  }
  // Punching a hole far out (past the limit, within the size) stores a delete only: the
  // limit stays.
  SetAttr req;
  req.size = 8000 * kCs;
  Inode out;
  ASSERT_EQ(m->SetAttributes(n.ino, req, &out), 0);
  ASSERT_EQ(m->Fallocate(n.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 6000 * kCs + 10, 100), 0);
  EXPECT_EQ(io.StoredLimit(n.ino), limit);
}

TEST_F(ChunkLimitTest, ShrinkingOrDeletingASparseFileDeletesOnlyBelowTheLimit) {
  LimitCheckingIo io(io_, meta_);
  auto m = MountOver(io);
  const uint64_t ino = Create(*m, kRootIno, "sparse");
  io.Watch(ino);
  SetAttr req;
  req.size = uint64_t{1} << 30;  // 262,144 chunks of 4 KiB, none written
  Inode out;
  ASSERT_EQ(m->SetAttributes(ino, req, &out), 0);
  ASSERT_EQ(m->Write(ino, 3 * kCs, "x"), 0);
  ASSERT_EQ(m->Flush(ino), 0);
  EXPECT_EQ(io.StoredLimit(ino), kInitialChunkLimit);
  req.size = 0;
  io.deletes = 0;
  ASSERT_EQ(m->SetAttributes(ino, req, &out), 0);
  EXPECT_EQ(io.deletes, kInitialChunkLimit);  // chunks 0..15, not 262,144
  EXPECT_EQ(io.StoredLimit(ino), 1u);
  io.deletes = 0;
  ASSERT_EQ(m->Unlink(kRootIno, "sparse"), 0);
  ASSERT_EQ(m->FlushAll(), 0);
  EXPECT_EQ(io.deletes, 1u);
  // A small file written by the mount that made it, within the TTL (so it knows nothing can
  // be stale): its flush brings the limit down to its one chunk, and removing it is one
  // delete.
  auto slow = SlowMount(io);
  const uint64_t small = FileOfOn(*slow, "small", std::string(100, 's'));
  io.Watch(small);
  EXPECT_EQ(io.StoredLimit(small), 1u);
  io.deletes = 0;
  ASSERT_EQ(slow->Unlink(kRootIno, "small"), 0);
  ASSERT_EQ(slow->FlushAll(), 0);
  EXPECT_EQ(io.deletes, 1u);
  // A directory has no chunks to delete.
  Inode dir;
  ASSERT_EQ(m->MakeNode(kRootIno, "d", S_IFDIR | 0755, 0, Caller{}, &dir), 0);
  EXPECT_EQ(dir.chunk_limit, 0u);
}

TEST_F(ChunkLimitTest, AFallocateFromAnOlderCopyDoesNotShrinkWhatAnotherMountGrew) {
  // Long TTLs: b trusts its copy of the inode (size 100) while a appends.
  auto b = SlowMount(io_);
  const uint64_t ino = FileOf("f", std::string(100, 'h'));
  Inode seen;
  ASSERT_EQ(b->GetAttr(ino, &seen), 0);
  ASSERT_EQ(seen.size, 100u);
  const std::string more(3 * kCs, 'm');
  ASSERT_EQ(a().Write(ino, 100, more), 0);
  ASSERT_EQ(a().Flush(ino), 0);
  ASSERT_EQ(b->Fallocate(ino, 0, 0, 2 * kCs), 0);  // within what a wrote
  const std::string got = ReadAll(*Mount(), ino);
  EXPECT_EQ(got.size(), 100 + more.size());
  EXPECT_EQ(got.substr(100), more);
}

TEST_F(ChunkLimitTest, AnInodeWrittenBeforeLimitsHasNone) {
  Inode n;
  n.ino = 9;
  n.mode = S_IFREG | 0644;
  n.chunk_limit = 40;
  std::string bytes = EncodeInode(n);
  auto back = DecodeInode(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->chunk_limit, 40u);
  // The 17-field form: the array header says 17, the limit (a positive fixint) is gone.
  ASSERT_EQ(static_cast<unsigned char>(bytes[0]), 0xdc);  // array 16
  ASSERT_EQ(static_cast<unsigned char>(bytes[2]), 18);
  bytes[2] = 17;
  bytes.pop_back();
  back = DecodeInode(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->chunk_limit, kUnknownChunkLimit);
}

}  // namespace
}  // namespace ringstore::fs::fstest
