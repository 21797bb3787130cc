#include "dht/messages.h"

#include <utility>

#include "dht/checksum.h"
#include "dht/lww_map.h"
#include "dht/wire_codec.h"

namespace ringstore {

using namespace wire;  // NOLINT: the codec helpers
const char* KindName(uint16_t kind) {
  switch (static_cast<Kind>(kind)) {
    case Kind::kHello: return "HELLO";
    case Kind::kHelloReply: return "HELLO_REPLY";
    case Kind::kError: return "ERROR";
    case Kind::kAck: return "ACK";
    case Kind::kPut: return "PUT";
    case Kind::kGet: return "GET";
    case Kind::kDel: return "DEL";
    case Kind::kStat: return "STAT";
    case Kind::kTxn: return "TXN";
    case Kind::kGetReply: return "GET_REPLY";
    case Kind::kStatReply: return "STAT_REPLY";
    case Kind::kGossip: return "GOSSIP";
    case Kind::kGossipReply: return "GOSSIP_REPLY";
    case Kind::kPing: return "PING";
    case Kind::kPingReq: return "PING_REQ";
    case Kind::kPingAck: return "PING_ACK";
    case Kind::kRouteTable: return "ROUTE_TABLE";
    case Kind::kRouteTableReply: return "ROUTE_TABLE_REPLY";
    case Kind::kDiskUsage: return "DISK_USAGE";
    case Kind::kDiskUsageReply: return "DISK_USAGE_REPLY";
    case Kind::kWatch: return "WATCH";
    case Kind::kNotify: return "NOTIFY";
    case Kind::kEvent: return "EVENT";
    case Kind::kScan: return "SCAN";
    case Kind::kScanReply: return "SCAN_REPLY";
    case Kind::kNodeStatus: return "NODE_STATUS";
    case Kind::kNodeStatusReply: return "NODE_STATUS_REPLY";
    case Kind::kSyncTree: return "SYNC_TREE";
    case Kind::kSyncTreeReply: return "SYNC_TREE_REPLY";
    case Kind::kSyncKeys: return "SYNC_KEYS";
    case Kind::kSyncKeysReply: return "SYNC_KEYS_REPLY";
    case Kind::kSyncHave: return "SYNC_HAVE";
    case Kind::kSyncHaveReply: return "SYNC_HAVE_REPLY";
    case Kind::kSyncGet: return "SYNC_GET";
    case Kind::kSyncGetReply: return "SYNC_GET_REPLY";
    case Kind::kDecommission: return "DECOMMISSION";
  }
  return "UNKNOWN";
}

std::string EncodeHello(Kind kind, uint64_t request_id, const Hello& m) {
  FrameWriter w(128);
  Packer pk(w);
  pk.pack_array(4);
  PackStr(pk, m.cluster_id);
  pk.pack_uint32(m.version);
  pk.pack_array(static_cast<uint32_t>(std::min(m.features.size(), kMaxFeatures)));
  for (size_t i = 0; i < m.features.size() && i < kMaxFeatures; ++i) PackStr(pk, m.features[i]);
  PackStr(pk, m.node_id);
  return w.Finish(kind, request_id);
}

namespace {

// The two name fields, when the name is known.
uint32_t NameFields(const ObjectName& name) { return Sendable(name) ? 2 : 0; }
size_t NameBytes(const ObjectName& name) { return Sendable(name) ? name.ns.size() + name.key.size() + 10 : 0; }
void PackName(Packer& pk, const ObjectName& name) {
  if (!Sendable(name)) return;
  PackBin(pk, name.ns);
  PackBin(pk, name.key);
}
// Reads the name at fields i and i+1 if the sender gave it.
Status UnpackName(const Fields& f, uint32_t i, ObjectName* name) {
  if (name == nullptr || f.size() < i + 2) return Status::Ok();
  std::string_view ns, key;
  RS_TRY(f.Bin(i, "namespace", &ns));
  RS_TRY(f.Bin(i + 1, "key", &key));
  if (ns.size() + key.size() > kMaxObjectNameBytes) return Status::TooLarge("object name longer than 64 KiB");
  *name = ObjectName{std::string(ns), std::string(key), true};
  return Status::Ok();
}

}  // namespace

std::string EncodePut(uint64_t request_id, const ObjectKey& key, std::string_view value,
                      Timestamp ts, uint64_t txn_id) {
  FrameWriter w(value.size() + 64 + NameBytes(key.name));
  Packer pk(w);
  pk.pack_array(4 + NameFields(key.name));
  PackId(pk, key.id);
  PackBin(pk, value);
  pk.pack_uint64(ts);
  pk.pack_uint64(txn_id);
  PackName(pk, key.name);
  return w.Finish(Kind::kPut, request_id);
}

std::string EncodeDel(uint64_t request_id, const ObjectKey& key, Timestamp ts, uint64_t txn_id) {
  FrameWriter w(64 + NameBytes(key.name));
  Packer pk(w);
  pk.pack_array(3 + NameFields(key.name));
  PackId(pk, key.id);
  pk.pack_uint64(ts);
  pk.pack_uint64(txn_id);
  PackName(pk, key.name);
  return w.Finish(Kind::kDel, request_id);
}

Txn CopyRecordTxn(const ObjectKey& key, Record record) {
  Txn txn;
  txn.ts = record.meta.ts;
  txn.txn_id = Checksum64(std::string(key.id.AsStringView()) + std::to_string(txn.ts));
  const bool tomb = record.meta.tombstone();
  const TxnOpType type = tomb ? TxnOpType::kDel : IsMapRecord(record.meta) ? TxnOpType::kMerge : TxnOpType::kPut;
  txn.ops.push_back(TxnOp{type, key.id, tomb ? std::string() : std::move(record.value), key.name});
  txn.replicas = record.meta.replicas();
  return txn;
}

namespace {
// A TXN body in pieces: its fields up to the ops, an op up to its value's bytes, and what
// follows the ops.
void PackTxnHead(Packer& pk, const Txn& txn) {
  pk.pack_array(txn.replicas > 0 ? 5 : txn.route_n > 0 ? 4 : 3);
  pk.pack_uint64(txn.txn_id);
  pk.pack_uint64(txn.ts);
  pk.pack_array(static_cast<uint32_t>(txn.ops.size()));
}
void PackTxnOpHead(Packer& pk, const TxnOp& op) {
  pk.pack_array(3 + NameFields(op.name));
  pk.pack_uint8(static_cast<uint8_t>(op.type));
  PackId(pk, op.id);
  pk.pack_bin(static_cast<uint32_t>(op.value.size()));
}
void PackTxnTail(Packer& pk, const Txn& txn) {
  if (txn.route_n > 0 || txn.replicas > 0) pk.pack_uint32(txn.route_n);
  if (txn.replicas > 0) pk.pack_uint32(txn.replicas);
}
}  // namespace

std::string EncodeTxn(uint64_t request_id, const Txn& txn) {
  size_t hint = 32;
  for (const auto& op : txn.ops) hint += op.value.size() + 48 + NameBytes(op.name);
  FrameWriter w(hint);
  Packer pk(w);
  PackTxnHead(pk, txn);
  for (const auto& op : txn.ops) {
    PackTxnOpHead(pk, op);
    pk.pack_bin_body(op.value.data(), static_cast<uint32_t>(op.value.size()));
    PackName(pk, op.name);
  }
  PackTxnTail(pk, txn);
  return w.Finish(Kind::kTxn, request_id);
}

SharedFrame EncodeTxnShared(uint64_t request_id, std::shared_ptr<const Txn> txn) {
  if (txn->ops.size() != 1 || txn->ops[0].value.size() < kSharedValueBytes) {
    return SharedFrame{EncodeTxn(request_id, *txn), nullptr, {}};
  }
  const TxnOp& op = txn->ops[0];
  FrameWriter head(96 + NameBytes(op.name));
  Packer pk(head);
  PackTxnHead(pk, *txn);
  PackTxnOpHead(pk, op);
  FrameWriter rest(32 + NameBytes(op.name));  // its reserved header bytes are dropped
  Packer rk(rest);
  PackName(rk, op.name);
  PackTxnTail(rk, *txn);
  std::string tail = rest.buf.substr(kFrameHeaderBytes);
  // The value stays in the transaction, which the frame keeps alive until it is sent.
  std::shared_ptr<const std::string> value(txn, &op.value);
  return head.FinishShared(Kind::kTxn, request_id, std::move(value), std::move(tail));
}

std::string EncodeKeyRequest(Kind kind, uint64_t request_id, const ObjectKey& key, uint32_t route_n) {
  FrameWriter w(48 + NameBytes(key.name));
  Packer pk(w);
  // route_n 0 means "not given"; it is sent when a name follows it.
  const bool named = Sendable(key.name);
  pk.pack_array(named ? 4 : route_n > 0 ? 2 : 1);
  PackId(pk, key.id);
  if (route_n > 0 || named) pk.pack_uint32(route_n);
  PackName(pk, key.name);
  return w.Finish(kind, request_id);
}

std::string EncodeAck(uint64_t request_id, const Ack& m) {
  FrameWriter w(16);
  Packer pk(w);
  pk.pack_array(1);
  pk.pack_uint64(m.ts);
  return w.Finish(Kind::kAck, request_id);
}

std::string EncodeError(uint64_t request_id, const Status& status) {
  FrameWriter w(64 + status.message().size());
  Packer pk(w);
  pk.pack_array(2);
  pk.pack_uint32(static_cast<uint32_t>(status.code()));
  PackStr(pk, status.message());
  return w.Finish(Kind::kError, request_id);
}

std::string EncodeRecordReply(Kind kind, uint64_t request_id, const Record& record, std::string_view from) {
  const std::string_view value = kind == Kind::kGetReply ? std::string_view(record.value) : std::string_view();
  FrameWriter w(value.size() + from.size() + 64);
  Packer pk(w);
  PackRecordHead(pk, record.meta, value.size(), from.empty() ? 5 : 6);
  pk.pack_bin_body(value.data(), static_cast<uint32_t>(value.size()));
  if (!from.empty()) PackStr(pk, from);
  return w.Finish(kind, request_id);
}

SharedFrame EncodeGetReply(uint64_t request_id, Record record, std::string_view from) {
  FrameWriter w(64);
  Packer pk(w);
  PackRecordHead(pk, record.meta, record.value.size(), from.empty() ? 5 : 6);
  auto value = std::make_shared<const std::string>(std::move(record.value));
  std::string tail;
  if (!from.empty()) {
    FrameWriter t(from.size() + 8);
    Packer tp(t);
    PackStr(tp, from);
    tail = t.buf.substr(kFrameHeaderBytes);
  }
  return w.FinishShared(Kind::kGetReply, request_id, std::move(value), std::move(tail));
}

Result<Hello> DecodeHello(std::string_view body) {
  Fields f;
  RS_TRY(f.Parse(body, 4));
  Hello m;
  uint64_t version = 0;
  RS_TRY(f.Str(0, "cluster_id", &m.cluster_id));
  RS_TRY(f.U64(1, "version", &version));
  if (version > UINT32_MAX) return Status::ProtocolError("version out of range");
  m.version = static_cast<uint32_t>(version);
  const msgpack::object& feats = f.at(2);
  if (feats.type != msgpack::type::ARRAY || feats.via.array.size > kMaxFeatures) {
    return Status::ProtocolError("field 2 (features) must be an array of at most 64 strings");
  }
  for (uint32_t i = 0; i < feats.via.array.size; ++i) {
    const msgpack::object& s = feats.via.array.ptr[i];
    if (s.type != msgpack::type::STR) return Status::ProtocolError("feature names must be strings");
    m.features.emplace_back(s.via.str.ptr, s.via.str.size);
  }
  RS_TRY(f.Str(3, "node_id", &m.node_id));
  return m;
}

static Status CheckValueSize(size_t size) {
  if (size > kMaxValueBytes) return Status::TooLarge("value larger than 64 MiB");
  return Status::Ok();
}

Result<Txn> DecodeWrite(Kind kind, std::string_view body) {
  Fields f;
  Txn txn;
  std::string_view value;
  switch (kind) {
    case Kind::kPut: {
      TxnOp op;
      RS_TRY(f.Parse(body, 4));
      RS_TRY(f.Id(0, "id", &op.id));
      RS_TRY(f.Bin(1, "value", &value));
      RS_TRY(CheckValueSize(value.size()));
      RS_TRY(f.U64(2, "ts", &txn.ts));
      RS_TRY(f.U64(3, "txn_id", &txn.txn_id));
      RS_TRY(UnpackName(f, 4, &op.name));
      op.value.assign(value);
      txn.ops.push_back(std::move(op));
      return txn;
    }
    case Kind::kDel: {
      TxnOp op;
      op.type = TxnOpType::kDel;
      RS_TRY(f.Parse(body, 3));
      RS_TRY(f.Id(0, "id", &op.id));
      RS_TRY(f.U64(1, "ts", &txn.ts));
      RS_TRY(f.U64(2, "txn_id", &txn.txn_id));
      RS_TRY(UnpackName(f, 3, &op.name));
      txn.ops.push_back(std::move(op));
      return txn;
    }
    case Kind::kTxn: break;
    default: return Status::ProtocolError("not a write message");
  }
  RS_TRY(f.Parse(body, 3));
  RS_TRY(f.U64(0, "txn_id", &txn.txn_id));
  RS_TRY(f.U64(1, "ts", &txn.ts));
  const msgpack::object& ops = f.at(2);
  if (ops.type != msgpack::type::ARRAY) return Status::ProtocolError("field 2 (ops) must be an array");
  if (ops.via.array.size == 0) return Status::InvalidArgument("a transaction needs at least one op");
  if (ops.via.array.size > kMaxTxnOps) return Status::TooLarge("too many ops in one transaction");
  size_t total = 0;
  for (uint32_t i = 0; i < ops.via.array.size; ++i) {
    Fields opf;
    TxnOp op;
    uint64_t type = 0;
    RS_TRY(opf.Wrap(ops.via.array.ptr[i], 3, "txn op"));
    RS_TRY(opf.U64(0, "op type", &type));
    if (type < 1 || type > 3) return Status::ProtocolError("unknown txn op type " + std::to_string(type));
    op.type = static_cast<TxnOpType>(type);
    RS_TRY(opf.Id(1, "op id", &op.id));
    RS_TRY(opf.Bin(2, "op value", &value));
    total += value.size();
    RS_TRY(CheckValueSize(total));
    RS_TRY(UnpackName(opf, 3, &op.name));
    op.value.assign(value);
    txn.ops.push_back(std::move(op));
  }
  if (f.size() > 3) {
    uint64_t n = 0;
    RS_TRY(f.U64(3, "route_n", &n));
    if (n > UINT32_MAX) return Status::ProtocolError("route_n out of range");
    txn.route_n = static_cast<uint32_t>(n);
  }
  if (f.size() > 4) {
    uint64_t n = 0;
    RS_TRY(f.U64(4, "replicas", &n));
    if (n > 0xff) return Status::ProtocolError("replicas out of range");
    txn.replicas = static_cast<uint32_t>(n);
  }
  return txn;
}

Result<ObjectId> DecodeKeyRequest(std::string_view body, uint32_t* route_n, ObjectName* name) {
  Fields f;
  RS_TRY(f.Parse(body, 1));
  ObjectId id;
  RS_TRY(f.Id(0, "id", &id));
  RS_TRY(UnpackName(f, 2, name));
  if (route_n != nullptr) {
    *route_n = 0;
    if (f.size() > 1) {
      uint64_t n = 0;
      RS_TRY(f.U64(1, "route_n", &n));
      if (n > UINT32_MAX) return Status::ProtocolError("route_n out of range");
      *route_n = static_cast<uint32_t>(n);
    }
  }
  return id;
}

Result<Ack> DecodeAck(std::string_view body) {
  Fields f;
  RS_TRY(f.Parse(body, 1));
  Ack a;
  RS_TRY(f.U64(0, "ts", &a.ts));
  return a;
}

Result<ErrorReply> DecodeError(std::string_view body) {
  Fields f;
  RS_TRY(f.Parse(body, 2));
  ErrorReply e;
  uint64_t code = 0;
  RS_TRY(f.U64(0, "code", &code));
  if (code == 0 || code > UINT32_MAX) return Status::ProtocolError("error reply with code " + std::to_string(code));
  e.code = static_cast<Code>(code);
  RS_TRY(f.Str(1, "message", &e.message));
  return e;
}

Result<Record> DecodeRecordReply(Kind kind, std::string_view body, std::string* from) {
  Fields f;
  RS_TRY(f.Parse(body, 5));
  if (from != nullptr) {
    from->clear();
    if (f.size() > 5) {
      RS_TRY(f.Str(5, "from", from));  // at most kMaxShortString bytes, as every string
    }
  }
  Record r;
  std::string_view value;
  RS_TRY(RecordFields(f, &r.meta, &value));
  if (kind == Kind::kGetReply) {
    r.value.assign(value);
    // End-to-end check: the bytes must match the checksum the node stored with them.
    if (!r.Intact()) return Status::Corruption("value does not match its checksum");
  }
  return r;
}

std::string EncodeDiskUsage(uint64_t request_id, const DiskUsage& m) {
  FrameWriter w(64);
  Packer pk(w);
  pk.pack_array(3);
  pk.pack_uint64(m.capacity_bytes);
  pk.pack_uint64(m.free_bytes);
  PackStr(pk, m.disk_id);
  return w.Finish(Kind::kDiskUsageReply, request_id);
}

Result<DiskUsage> DecodeDiskUsage(std::string_view body) {
  Fields f;
  DiskUsage m;
  RS_TRY(f.Parse(body, 3));
  RS_TRY(f.U64(0, "capacity_bytes", &m.capacity_bytes));
  RS_TRY(f.U64(1, "free_bytes", &m.free_bytes));
  RS_TRY(f.Str(2, "disk_id", &m.disk_id));
  return m;
}

std::string EncodeChannelMessage(Kind kind, uint64_t request_id, const ChannelMessage& m) {
  FrameWriter w(48 + m.payload.size());
  Packer pk(w);
  pk.pack_array(2);
  PackId(pk, m.channel);
  PackBin(pk, m.payload);
  return w.Finish(kind, request_id);
}

Result<ChannelMessage> DecodeChannelMessage(std::string_view body) {
  Fields f;
  ChannelMessage m;
  std::string_view payload;
  RS_TRY(f.Parse(body, 2));
  RS_TRY(f.Id(0, "channel", &m.channel));
  RS_TRY(f.Bin(1, "payload", &payload));
  if (payload.size() > kMaxEventPayload) return Status::TooLarge("event payload over 64 KiB");
  m.payload.assign(payload);
  return m;
}

}  // namespace ringstore
