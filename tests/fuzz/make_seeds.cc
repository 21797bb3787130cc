// fuzz-make-seeds OUT_DIR: writes a starting corpus for the fuzz targets into
// OUT_DIR/{frame,messages,nbd}: valid frames, one valid body per decoder (prefixed with the
// selector byte fuzz_messages.cc reads) and an NBD handshake followed by requests. libFuzzer
// grows the corpus from these (tests/fuzz/CMakeLists.txt).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "blockgateway/volume.h"
#include "dht/frame.h"
#include "dht/lww_map.h"
#include "dht/messages.h"
#include "dht/sync_messages.h"
#include "fsgateway/fs_layout.h"
#include "routing/membership_messages.h"
#include "storage/record_format.h"

using namespace ringstore;
namespace stdfs = std::filesystem;

namespace {

void Write(const stdfs::path& dir, const std::string& name, const std::string& bytes) {
  stdfs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string Body(const std::string& frame) { return frame.substr(kFrameHeaderBytes); }

std::string Be(uint64_t v, int bytes) {
  std::string s;
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz-make-seeds OUT_DIR\n");
    return 2;
  }
  const stdfs::path out(argv[1]);
  const ObjectId id = ObjectId::Of("ns", "key");
  Hello hello{"ringstore", kProtocolVersion, {"txn"}, "00112233445566778899aabbccddeeff"};
  Txn txn;
  txn.txn_id = 7;
  txn.ts = 99;
  const ObjectKey named = ObjectKey::Of("ns", "named");  // requests that carry the object's name
  txn.ops = {{TxnOpType::kPut, id, "value", {}}, {TxnOpType::kDel, named.id, "", named.name}};
  const Record record = Record::Value(5, "hello");
  NodeEntry entry;
  entry.node_id = "00112233445566778899aabbccddeeff";
  entry.address = "127.0.0.1:7400";
  GossipMessage gossip{"127.0.0.1:7400", 42, {entry}};
  SyncTreeRequest tree;
  tree.level = 1;
  tree.indices = {0, 3};
  SyncKeysRequest keys;
  keys.leaves = {1, 2};
  LwwMap map;
  map["a"] = MapEntry{3, false, "x"};
  map["b"] = MapEntry{4, true, ""};

  const std::string frames[] = {EncodeHello(Kind::kHello, 1, hello), EncodePut(2, id, "value", 0, 3),
                                EncodeTxn(4, txn), EncodeKeyRequest(Kind::kGet, 5, id),
                                EncodeRecordReply(Kind::kGetReply, 5, record), EncodeGossip(Kind::kGossip, gossip)};
  int n = 0;
  for (const std::string& f : frames) Write(out / "frame", "seed-" + std::to_string(n++), "\x05" + f + frames[0]);

  const std::string bodies[32] = {
      Body(EncodeHello(Kind::kHello, 1, hello)),
      Body(EncodeDiskUsage(1, DiskUsage{100, 50, "disk"})),
      Body(EncodeChannelMessage(Kind::kNotify, 1, ChannelMessage{id, "payload"})),
      Body(EncodePut(1, named, "value", 0, 3)),
      Body(EncodeDel(1, named, 9, 3)),
      Body(EncodeTxn(1, txn)),
      Body(EncodeKeyRequest(Kind::kGet, 1, named, 3)),
      Body(EncodeAck(1, Ack{77})),
      Body(EncodeError(1, Status::NotFound("gone"))),
      Body(EncodeRecordReply(Kind::kGetReply, 1, record)),
      Body(EncodeRecordReply(Kind::kStatReply, 1, record)),
      Body(EncodeScanRequest(1, ScanRequest{ObjectId::Min(), ObjectId::Max(), 10})),
      Body(EncodeScanReply(1, ScanReply{})),
      Body(EncodeSyncTreeRequest(1, tree)),
      Body(EncodeSyncTreeReply(1, SyncTreeReply{{1, 2, 3}})),
      Body(EncodeSyncKeysRequest(1, keys)),
      Body(EncodeSyncKeysReply(1, SyncKeysReply{})),
      Body(EncodeSyncHaveRequest(1, SyncHaveRequest{})),
      Body(EncodeSyncHaveReply(1, SyncHaveReply{{true, false}})),
      Body(EncodeRepairStatus(1, RepairStatus{})),
      Body(EncodeGossip(Kind::kGossip, gossip)),
      Body(EncodeProbe(Kind::kPingReq, ProbeMessage{"a:1", 3, "b:2"})),
      EncodeLwwMap(map),
      fs::EncodeFsMeta(fs::FsMeta{}),
      fs::EncodeInode(fs::Inode{}),
      fs::EncodeDirEntry(fs::DirEntry{}),
      EncodeRecordHeader(record.meta),
      EncodeStoredRecord(record),
      block::EncodeVolumeMeta(block::VolumeMeta{}),
      block::EncodeCatalog({"a", "b"}),
      Body(EncodeSyncGetRequest(1, SyncGetRequest{{id, id}})),
      Body(EncodeSyncGetReply(1, SyncGetReply{{record, std::nullopt}})),
  };
  for (int i = 0; i < 32; ++i) Write(out / "messages", "seed-" + std::to_string(i), std::string(1, char(i)) + bodies[i]);

  // NBD: fixed newstyle with NO_ZEROES, OPT_GO for "a", then READ, WRITE, FLUSH, TRIM, DISC.
  const std::string ihaveopt = Be(0x49484156454F5054ull, 8);
  const std::string go_data = Be(1, 4) + "a" + Be(1, 2) + Be(3, 2);
  std::string nbd = Be(3, 4) + ihaveopt + Be(7, 4) + Be(go_data.size(), 4) + go_data;
  const auto request = [](uint16_t type, uint64_t handle, uint64_t offset, uint32_t length) {
    return Be(0x25609513, 4) + Be(0, 2) + Be(type, 2) + Be(handle, 8) + Be(offset, 8) + Be(length, 4);
  };
  std::string tx = request(0, 1, 0, 4096) + request(1, 2, 4096, 8) + "12345678" + request(3, 3, 0, 0) +
                   request(4, 4, 0, 65536) + request(2, 5, 0, 0);
  Write(out / "nbd", "seed-go", nbd + tx);
  const std::string list = Be(3, 4) + ihaveopt + Be(3, 4) + Be(0, 4) + ihaveopt + Be(1, 4) + Be(1, 4) + "a";
  Write(out / "nbd", "seed-list-exportname", list + tx);
  std::printf("wrote seeds into %s\n", out.c_str());
  return 0;
}
