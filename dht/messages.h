// The wire messages and their msgpack codec. Each body is a msgpack array of positional
// fields; fields are only ever appended, and a decoder ignores trailing fields it does not
// know. Kinds are numbered once and never reused (docs/wire-protocol.md).
// Decoders bound every length and never throw: malformed input becomes a Status.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dht/frame.h"
#include "dht/hlc.h"
#include "dht/object_id.h"
#include "dht/object_key.h"
#include "dht/record.h"
#include "dht/status.h"

namespace ringstore {

enum class Kind : uint16_t {
  kHello = 1,
  kHelloReply = 2,
  kError = 3,
  kAck = 4,
  kPut = 10,
  kGet = 11,
  kDel = 12,
  kStat = 13,
  kTxn = 14,
  kGetReply = 20,
  kStatReply = 21,
  // Membership (node to node); bodies are coded in routing/membership_messages.
  kGossip = 30,
  kGossipReply = 31,
  kPing = 32,
  kPingReq = 33,
  kPingAck = 34,
  // The route table, for clients: request (empty body) and reply (a gossip body).
  kRouteTable = 40,
  kRouteTableReply = 41,
  // The disk under a node's store, for statfs: request (empty body) and reply.
  kDiskUsage = 50,
  kDiskUsageReply = 51,
  // Change notification (the filesystem gateway's coherence): WATCH subscribes the connection
  // to a channel on this node, NOTIFY publishes a payload to the channel's other subscribers
  // on this node (both answered with ACK), and EVENT (request id 0, node to client) carries it.
  kWatch = 52,
  kNotify = 53,
  kEvent = 54,
  // Repair (dht/sync_messages.h): SCAN lists a node's own records (tools, tests); NODE_STATUS
  // reports its repair and rebalance work; SYNC_TREE, SYNC_KEYS and SYNC_HAVE are anti-entropy
  // between nodes. Each request has its reply kind.
  kScan = 55,
  kScanReply = 56,
  kNodeStatus = 57,
  kNodeStatusReply = 58,
  kSyncTree = 59,
  kSyncTreeReply = 60,
  kSyncKeys = 61,
  kSyncKeysReply = 62,
  kSyncHave = 63,
  kSyncHaveReply = 64,
  // Decommission the node that receives it (empty body); answered with its NODE_STATUS_REPLY.
  // Asking again while it drains only reports progress.
  kDecommission = 65,
  // Many records of a peer at once, for a node pulling them (dht/sync_messages.h). Sent only
  // to a peer whose HELLO_REPLY carried the feature "sync-get".
  kSyncGet = 66,
  kSyncGetReply = 67,
};
const char* KindName(uint16_t kind);

constexpr size_t kMaxTxnOps = 1024;
constexpr size_t kMaxFeatures = 64;
constexpr size_t kMaxShortString = 1024;  // cluster id, node id, feature names, messages

// The client's first frame (kHello); the node answers with its own (kHelloReply).
struct Hello {
  std::string cluster_id;
  uint32_t version = kProtocolVersion;
  std::vector<std::string> features;
  std::string node_id;  // empty for clients
};

// kMerge writes a map record (dht/lww_map.h): its value is an encoded LwwMap that the replica
// merges into what it holds, entry by entry.
enum class TxnOpType : uint8_t { kPut = 1, kDel = 2, kMerge = 3 };

struct TxnOp {
  TxnOpType type = TxnOpType::kPut;
  ObjectId id;
  std::string value;  // empty for kDel; an encoded LwwMap for kMerge
  ObjectName name;    // what id is the hash of, when the client gives it (node/access_policy.h)
};

// PUT, DEL and TXN all decode into a Txn: a set of ops applied atomically with one timestamp.
// ts == 0 asks the node to assign one. txn_id identifies the transaction (a resend carries
// the same one); the resend is idempotent because it also carries the same timestamp.
struct Txn {
  uint64_t txn_id = 0;
  Timestamp ts = 0;
  std::vector<TxnOp> ops;
  // The N the client placed the ops with (TXN only; 0: not given). A node outside the first
  // route_n + kRouteSlack nodes of an op's preference list answers NotMine.
  uint32_t route_n = 0;
  // The N the records are stamped with (RecordMeta::replicas; 0: not given). It can exceed
  // route_n: a client on a ring smaller than its N routes to fewer nodes but still asks for N.
  uint32_t replicas = 0;
};

// How far past N a client may go down a preference list (its fallbacks) and still reach a
// node that accepts the key as its own.
constexpr uint32_t kRouteSlack = 3;

struct Ack {
  Timestamp ts = 0;  // the timestamp the write was applied with
};

// The filesystem a node's store lives on. disk_id names that filesystem (host and device), so
// that nodes sharing one disk are counted once.
struct DiskUsage {
  uint64_t capacity_bytes = 0;
  uint64_t free_bytes = 0;  // available to the node
  std::string disk_id;
};

constexpr size_t kMaxEventPayload = 64 * 1024;

// The body of WATCH (payload empty), NOTIFY and EVENT.
struct ChannelMessage {
  ObjectId channel;
  std::string payload;
};

struct ErrorReply {
  Code code = Code::kProtocolError;
  std::string message;
  Status ToStatus() const { return Status::FromCode(code, message); }
};

// Encoders return a whole frame (header + body), ready for Transport::Send.
std::string EncodeHello(Kind kind, uint64_t request_id, const Hello& m);
// A key's name, when known, is appended to the request (PUT, DEL, GET, STAT, each TXN op) as
// two bin fields, namespace and key; a decoder that predates them ignores them.
std::string EncodePut(uint64_t request_id, const ObjectKey& key, std::string_view value,
                      Timestamp ts, uint64_t txn_id);
std::string EncodeDel(uint64_t request_id, const ObjectKey& key, Timestamp ts, uint64_t txn_id);
std::string EncodeTxn(uint64_t request_id, const Txn& txn);
// The same TXN, for a transaction of one op with a value of kSharedValueBytes or more, with
// that value left in txn and shared by the frame (and by the frames for the other replicas
// made from the same txn); otherwise the whole frame is in head.
constexpr size_t kSharedValueBytes = 16u << 10;
SharedFrame EncodeTxnShared(uint64_t request_id, std::shared_ptr<const Txn> txn);
// A TXN that writes record (a value, a map or a tombstone) of id again, under the record's own
// timestamp and a transaction id derived from (id, timestamp): sending it to any replica, any
// number of times, is idempotent. Read repair and hinted handoff copy records with it.
Txn CopyRecordTxn(const ObjectKey& key, Record record);
// kGet or kStat: a request that carries an object id and, optionally, the client's N
// (route_n > 0): a node that does not hold the key and is not among its first
// route_n + kRouteSlack nodes forwards the request to one that is.
std::string EncodeKeyRequest(Kind kind, uint64_t request_id, const ObjectKey& key, uint32_t route_n = 0);
std::string EncodeAck(uint64_t request_id, const Ack& m);
std::string EncodeError(uint64_t request_id, const Status& status);
// kGetReply carries the value; kStatReply the metadata only. from: set by a node that relays
// another node's reply (the address of the node whose store answered); empty otherwise.
std::string EncodeRecordReply(Kind kind, uint64_t request_id, const Record& record, std::string_view from = {});
// The same kGetReply, with the value moved out of record into the frame's value piece, so
// that it is sent from its own buffer instead of being copied into the frame.
SharedFrame EncodeGetReply(uint64_t request_id, Record record, std::string_view from = {});

std::string EncodeDiskUsage(uint64_t request_id, const DiskUsage& m);
// kind: kWatch, kNotify or kEvent.
std::string EncodeChannelMessage(Kind kind, uint64_t request_id, const ChannelMessage& m);

Result<Hello> DecodeHello(std::string_view body);
Result<DiskUsage> DecodeDiskUsage(std::string_view body);
Result<ChannelMessage> DecodeChannelMessage(std::string_view body);
// Accepts kPut, kDel and kTxn bodies.
Result<Txn> DecodeWrite(Kind kind, std::string_view body);
Result<ObjectId> DecodeKeyRequest(std::string_view body, uint32_t* route_n = nullptr, ObjectName* name = nullptr);
Result<Ack> DecodeAck(std::string_view body);
Result<ErrorReply> DecodeError(std::string_view body);
// from (if given) is set to the reply's relayed-from address, or cleared when it has none.
Result<Record> DecodeRecordReply(Kind kind, std::string_view body, std::string* from = nullptr);

}  // namespace ringstore
