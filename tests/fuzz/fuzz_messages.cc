// libFuzzer target: every decoder of a frame body or a stored value. The first input byte
// picks the decoder, the rest is the body. A decoder must return a Status, never crash,
// throw or read out of bounds; one that accepts its input must also survive re-encoding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "blockgateway/volume.h"
#include "dht/lww_map.h"
#include "dht/messages.h"
#include "dht/sync_messages.h"
#include "fsgateway/fs_layout.h"
#include "routing/membership_messages.h"
#include "storage/record_format.h"

using namespace ringstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 32) {
    case 0: (void)DecodeHello(body); break;
    case 1: (void)DecodeDiskUsage(body); break;
    case 2: (void)DecodeChannelMessage(body); break;
    case 3: (void)DecodeWrite(Kind::kPut, body); break;
    case 4: (void)DecodeWrite(Kind::kDel, body); break;
    case 5: {
      auto t = DecodeWrite(Kind::kTxn, body);
      if (t.ok()) (void)EncodeTxn(1, *t);
      break;
    }
    case 6: {
      uint32_t route_n = 0;
      ObjectName name;
      (void)DecodeKeyRequest(body, &route_n, &name);
      break;
    }
    case 7: (void)DecodeAck(body); break;
    case 8: (void)DecodeError(body); break;
    case 9: (void)DecodeRecordReply(Kind::kGetReply, body); break;
    case 10: (void)DecodeRecordReply(Kind::kStatReply, body); break;
    case 11: (void)DecodeScanRequest(body); break;
    case 12: (void)DecodeScanReply(body); break;
    case 13: (void)DecodeSyncTreeRequest(body); break;
    case 14: (void)DecodeSyncTreeReply(body); break;
    case 15: (void)DecodeSyncKeysRequest(body); break;
    case 16: (void)DecodeSyncKeysReply(body); break;
    case 17: (void)DecodeSyncHaveRequest(body); break;
    case 18: (void)DecodeSyncHaveReply(body); break;
    case 19: (void)DecodeRepairStatus(body); break;
    case 20: {
      auto g = DecodeGossip(body);
      if (g.ok()) (void)EncodeGossip(Kind::kGossip, *g);
      break;
    }
    case 21: (void)DecodeProbe(body); break;
    case 22: {
      auto m = DecodeLwwMap(body);
      if (m.ok()) (void)EncodeLwwMap(*m);
      break;
    }
    case 23: (void)fs::DecodeFsMeta(body); break;
    case 24: (void)fs::DecodeInode(body); break;
    case 25: (void)fs::DecodeDirEntry(body); break;
    case 26: (void)DecodeStoredHeader(body); break;
    case 27: (void)DecodeStoredRecord(body); break;
    case 28: (void)block::DecodeVolumeMeta(body); break;
    case 29: (void)block::DecodeCatalog(body); break;
    case 30: (void)DecodeSyncGetRequest(body); break;
    case 31: (void)DecodeSyncGetReply(body); break;
  }
  return 0;
}
