#include "fsgateway/fs_layout.h"

#include <msgpack.hpp>

#include <algorithm>

#include "dht/admin_name.h"
#include "dht/endian.h"

namespace ringstore::fs {

namespace {

// Format 2 added the buckets per directory (F9). A gateway that knows only format 1 would read
// bucket 0 alone and miss entries, so it must refuse the superblock rather than mount.
constexpr uint32_t kFsMetaFormatV1 = 1;
constexpr uint32_t kFsMetaFormat = 2;
constexpr uint32_t kInodeFormat = 1;

std::string Key(const FsMeta& fs, uint64_t a) {
  std::string key = fs.uuid;
  char le[8];
  PutLE(le, a, 8);
  key.append(le, sizeof le);
  return key;
}

template <typename F>
Status Unpack(std::string_view bytes, const char* what, F&& read) {
  // Bounded so that a few corrupt bytes cannot ask for a huge allocation.
  static const msgpack::unpack_limit kLimits(/*array=*/64, /*map=*/4096, /*str=*/1u << 20,
                                             /*bin=*/1u << 20, /*ext=*/0, /*depth=*/4);
  try {
    msgpack::object_handle oh = msgpack::unpack(bytes.data(), bytes.size(), nullptr, nullptr, kLimits);
    return read(oh.get());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("undecodable ") + what + ": " + e.what());
  }
}

void PackBin(msgpack::packer<msgpack::sbuffer>& pk, std::string_view b) {
  pk.pack_bin(static_cast<uint32_t>(b.size()));
  pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
}

std::string Bin(const msgpack::object& o) {
  if (o.type == msgpack::type::BIN) return std::string(o.via.bin.ptr, o.via.bin.size);
  return o.as<std::string>();
}

}  // namespace

Status ValidateFsName(const std::string& name) { return ValidateAdminName(name, "filesystem"); }

Status ValidateChunkSize(uint64_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize || (chunk_size & (chunk_size - 1)) != 0) {
    return Status::InvalidArgument("the chunk size is a power of two from 4 KiB to 16 MiB");
  }
  return Status::Ok();
}

ObjectKey SuperblockId(const std::string& name) { return ObjectKey::Of(reserved::kFs, name); }
ObjectKey CatalogId() { return ObjectKey::Of(reserved::kFsCatalog, "all"); }
ObjectKey InodeId(const FsMeta& fs, uint64_t ino) { return ObjectKey::Of(reserved::kFsInode, Key(fs, ino)); }
ObjectKey DirId(const FsMeta& fs, uint64_t ino) { return ObjectKey::Of(reserved::kFsDir, Key(fs, ino)); }

ObjectKey DirBucketId(const FsMeta& fs, uint64_t ino, uint32_t bucket) {
  if (bucket == 0) return DirId(fs, ino);
  std::string key = Key(fs, ino);
  char le[4];
  PutLE(le, bucket, 4);
  key.append(le, sizeof le);
  return ObjectKey::Of(reserved::kFsDir, key);
}

std::vector<ObjectKey> DirBucketIds(const FsMeta& fs, uint64_t ino) {
  std::vector<ObjectKey> ids;
  for (uint32_t b = 0; b < std::max<uint32_t>(1, fs.dir_buckets); ++b) ids.push_back(DirBucketId(fs, ino, b));
  return ids;
}

uint32_t DirBucketOf(const FsMeta& fs, std::string_view name) {
  if (fs.dir_buckets <= 1) return 0;
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return static_cast<uint32_t>(h % fs.dir_buckets);
}

Status ValidateDirBuckets(uint32_t buckets) {
  if (buckets < 1 || buckets > kMaxDirBuckets) return Status::InvalidArgument("directory buckets are 1 to 256");
  return Status::Ok();
}
ObjectKey ChunkId(const FsMeta& fs, uint64_t ino, uint64_t index) {
  std::string key = Key(fs, ino);
  char le[8];
  PutLE(le, index, 8);
  key.append(le, sizeof le);
  return ObjectKey::Of(reserved::kFsChunk, key);
}

std::string EncodeFsMeta(const FsMeta& m) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(9);
  pk.pack(kFsMetaFormat);
  pk.pack(m.name);
  PackBin(pk, m.uuid);
  pk.pack(m.chunk_size);
  pk.pack(m.quorum.n);
  pk.pack(m.quorum.w);
  pk.pack(m.quorum.r);
  pk.pack(m.created_ms);
  pk.pack(m.dir_buckets);
  return std::string(buf.data(), buf.size());
}

Result<FsMeta> DecodeFsMeta(std::string_view bytes) {
  FsMeta m;
  Status s = Unpack(bytes, "filesystem superblock", [&](const msgpack::object& o) -> Status {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 8) return Status::Corruption("superblock is not an 8-field array");
    const msgpack::object* f = o.via.array.ptr;
    const uint32_t format = f[0].as<uint32_t>();
    if (format != kFsMetaFormat && format != kFsMetaFormatV1) return Status::Corruption("unknown superblock format");
    if (format == kFsMetaFormat && o.via.array.size < 9) return Status::Corruption("superblock is not a 9-field array");
    m.name = f[1].as<std::string>();
    m.uuid = Bin(f[2]);
    if (m.uuid.size() != 16) return Status::Corruption("bad filesystem uuid");
    m.chunk_size = f[3].as<uint64_t>();
    m.quorum.n = f[4].as<uint32_t>();
    m.quorum.w = f[5].as<uint32_t>();
    m.quorum.r = f[6].as<uint32_t>();
    m.created_ms = f[7].as<uint64_t>();
    m.dir_buckets = format == kFsMetaFormat ? f[8].as<uint32_t>() : 1;
    if (!ValidateDirBuckets(m.dir_buckets).ok()) return Status::Corruption("bad directory bucket count in superblock");
    if (!ValidateChunkSize(m.chunk_size).ok()) return Status::Corruption("bad chunk size in superblock");
    const Quorum& q = m.quorum;
    if (q.n == 0 || q.w == 0 || q.r == 0 || q.w > q.n || q.r > q.n) return Status::Corruption("bad quorum in superblock");
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return m;
}

std::string EncodeInode(const Inode& n) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(18);
  pk.pack(kInodeFormat);
  pk.pack(n.ino);
  pk.pack(n.mode);
  pk.pack(n.uid);
  pk.pack(n.gid);
  pk.pack(n.nlink);
  pk.pack(n.size);
  pk.pack(n.rdev);
  for (const Timespec* t : {&n.atime, &n.mtime, &n.ctime}) {
    pk.pack(t->sec);
    pk.pack(t->nsec);
  }
  pk.pack(n.parent);
  PackBin(pk, n.target);
  pk.pack_map(static_cast<uint32_t>(n.xattrs.size()));
  for (const auto& [k, v] : n.xattrs) {
    PackBin(pk, k);
    PackBin(pk, v);
  }
  pk.pack(n.chunk_limit);
  return std::string(buf.data(), buf.size());
}

Result<Inode> DecodeInode(std::string_view bytes) {
  Inode n;
  Status s = Unpack(bytes, "inode", [&](const msgpack::object& o) -> Status {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 17) return Status::Corruption("inode is not a 17-field array");
    const msgpack::object* f = o.via.array.ptr;
    if (f[0].as<uint32_t>() != kInodeFormat) return Status::Corruption("unknown inode format");
    n.ino = f[1].as<uint64_t>();
    n.mode = f[2].as<uint32_t>();
    n.uid = f[3].as<uint32_t>();
    n.gid = f[4].as<uint32_t>();
    n.nlink = f[5].as<uint32_t>();
    n.size = f[6].as<uint64_t>();
    n.rdev = f[7].as<uint64_t>();
    Timespec* times[] = {&n.atime, &n.mtime, &n.ctime};
    for (int i = 0; i < 3; ++i) {
      times[i]->sec = f[8 + 2 * i].as<int64_t>();
      times[i]->nsec = f[9 + 2 * i].as<uint32_t>();
    }
    n.parent = f[14].as<uint64_t>();
    n.target = Bin(f[15]);
    if (f[16].type != msgpack::type::MAP) return Status::Corruption("inode xattrs are not a map");
    for (uint32_t i = 0; i < f[16].via.map.size; ++i) {
      n.xattrs[Bin(f[16].via.map.ptr[i].key)] = Bin(f[16].via.map.ptr[i].val);
    }
    if (o.via.array.size >= 18) n.chunk_limit = f[17].as<uint64_t>();  // else written before limits
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

std::string EncodeDirTimes(const DirTimes& t) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(4);
  pk.pack(t.mtime.sec);
  pk.pack(t.mtime.nsec);
  pk.pack(t.ctime.sec);
  pk.pack(t.ctime.nsec);
  return std::string(buf.data(), buf.size());
}

Result<DirTimes> DecodeDirTimes(std::string_view bytes) {
  DirTimes t;
  Status s = Unpack(bytes, "directory times", [&](const msgpack::object& o) -> Status {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 4) return Status::Corruption("directory times are not a 4-field array");
    const msgpack::object* f = o.via.array.ptr;
    t.mtime = Timespec{f[0].as<int64_t>(), f[1].as<uint32_t>()};
    t.ctime = Timespec{f[2].as<int64_t>(), f[3].as<uint32_t>()};
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return t;
}

std::string EncodeDirEntry(const DirEntry& e) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(2);
  pk.pack(e.ino);
  pk.pack(e.type);
  return std::string(buf.data(), buf.size());
}

Result<DirEntry> DecodeDirEntry(std::string_view bytes) {
  DirEntry e;
  Status s = Unpack(bytes, "directory entry", [&](const msgpack::object& o) -> Status {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 2) return Status::Corruption("directory entry is not [ino, type]");
    e.ino = o.via.array.ptr[0].as<uint64_t>();
    e.type = o.via.array.ptr[1].as<uint32_t>();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return e;
}

}  // namespace ringstore::fs
