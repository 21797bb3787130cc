// The repair messages (docs/wire-protocol.md §8): SCAN, NODE_STATUS and the anti-entropy
// exchange SYNC_TREE, SYNC_KEYS, SYNC_HAVE and SYNC_GET, with their codecs. Same rules as
// dht/messages.h: positional msgpack arrays, fields only appended, every length bounded,
// decoders never throw.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dht/messages.h"
#include "dht/record.h"

namespace ringstore {

// Entries in one SCAN, SYNC_KEYS or SYNC_HAVE message.
constexpr size_t kMaxSyncEntries = 4096;
// Tree nodes asked for in one SYNC_TREE, and leaves in one SYNC_KEYS.
constexpr size_t kMaxSyncIndices = 256;
// In a SCAN reply: the record's header failed its checksum (its version is unknown).
constexpr uint32_t kScanCorrupt = 1u << 31;

// One record version: the id and the metadata (no value).
struct KeyVersion {
  ObjectId id;
  RecordMeta meta;
};

// SCAN: the node's own records with begin <= id < end, at most limit (<= kMaxSyncEntries),
// whatever the placement. The reply's `more` says the range has more past the last entry.
struct ScanRequest {
  ObjectId begin;
  ObjectId end;
  uint32_t limit = 0;
};
struct ScanReply {
  std::vector<KeyVersion> entries;
  bool more = false;
};

// Both sides of a SYNC_* exchange name the ring they placed keys by (RouteTable::RingDigest)
// and the replica count; a node whose ring differs answers Unavailable.
struct SyncScope {
  uint64_t ring_digest = 0;
  uint32_t replicas = 0;
  std::string from;  // the asking node's id: the tree is the keys the two share
};

// SYNC_TREE: the kFanout child hashes of each listed node of `level` of the responder's
// RangeDigest for the asker (storage/range_digest.h).
struct SyncTreeRequest {
  SyncScope scope;
  uint32_t level = 0;
  std::vector<uint32_t> indices;
};
struct SyncTreeReply {
  std::vector<uint64_t> hashes;  // kFanout per index, in order
};

// SYNC_KEYS: the versions the responder holds, now, in the listed leaves, of keys the two
// share. Leaves are listed whole; `done` says which ones the reply covers (a reply stops
// before kMaxSyncEntries, and the asker asks again for the rest). A leaf of more records
// than one reply takes is listed in parts: the reply's `cut` says its last leaf was listed
// only below that id, and the asker asks again for that leaf from it (`start`).
struct SyncKeysRequest {
  SyncScope scope;
  std::vector<uint32_t> leaves;
  std::optional<ObjectId> start;  // field 4, optional: list leaves[0] from this id on (it must lie in it)
};
struct SyncKeysReply {
  std::vector<uint32_t> done;
  std::vector<KeyVersion> entries;
  std::optional<ObjectId> cut;  // field 2, optional: done.back() is listed only below this id
};

// SYNC_HAVE: for each version, whether the responder holds it or a newer one.
// placed[i] (field 1, optional: absent means all false) says that the offerer held entries[i]
// as one of the key's replicas, in a round that reached every peer, recently enough that no
// delete it missed can have been collected since: the responder then takes it however old it
// is (docs/repair.md §5).
struct SyncHaveRequest {
  std::vector<KeyVersion> entries;
  std::vector<bool> placed;  // empty, or one per entry
};
struct SyncHaveReply {
  std::vector<bool> have;
};

// SYNC_GET: the responder's stored records of the ids asked, tombstones included, in the
// order asked; none where it holds no record of the id, cannot read it intact, or would pass
// kMaxValueBytes of values in the reply. A node pulling records asks for many at once this
// way, where a GET each cost a request and a reply per record. Sent only to a peer that
// announced kSyncGetFeature in its HELLO_REPLY.
constexpr size_t kMaxSyncGetIds = 256;
inline constexpr char kSyncGetFeature[] = "sync-get";
struct SyncGetRequest {
  std::vector<ObjectId> ids;
};
struct SyncGetReply {
  // One per id asked. The responder checks each record, and the asker again (Record::Intact).
  std::vector<std::optional<Record>> records;
};

// NODE_STATUS: the node's repair and rebalance work (node/anti_entropy.h RepairStats).
struct RepairStatus {
  std::string node_id;
  uint64_t rounds = 0;           // anti-entropy rounds completed
  uint64_t round_active = 0;     // 1 while a round runs
  uint64_t synced = 0;           // 1 once a round has completed with every peer on this ring
  uint64_t owned_keys = 0;       // records held as one of their N replicas (last scan)
  uint64_t owned_bytes = 0;
  uint64_t handoff_keys = 0;     // records held but no longer placed here, to hand off
  uint64_t handoff_bytes = 0;
  uint64_t peers = 0;            // peers this node shares keys with
  uint64_t peers_synced = 0;     // of them, compared in the current (or last) round
  uint64_t leaves_pending = 0;   // differing leaves still to resolve in this round
  uint64_t pulled_records = 0, pulled_bytes = 0;  // copied in from peers (since start)
  uint64_t pushed_records = 0, pushed_bytes = 0;  // handed off to peers (since start)
  uint64_t purged_records = 0;                    // copies dropped after a handoff
  uint64_t under_replicated = 0;  // owned keys a replica lacked or could not be asked for, last round
  uint64_t scrubbed = 0, corrupt_found = 0, repaired = 0;
  uint64_t rate_bytes_per_s = 0;  // repair traffic over the last seconds
  uint64_t pending_bytes = 0;     // estimate of what is left to move in this round
  uint64_t last_round_ms = 0;
  uint64_t leaving = 0;           // 1 while decommissioning
  uint64_t left = 0;              // 1 once decommissioned
  uint64_t tombstones_collected = 0;
  uint64_t hints_pending = 0;     // fallback writes held here, waiting to reach their replicas
  uint64_t hints_handed_off = 0;  // since start
};

std::string EncodeScanRequest(uint64_t request_id, const ScanRequest& m);
std::string EncodeScanReply(uint64_t request_id, const ScanReply& m);
std::string EncodeSyncTreeRequest(uint64_t request_id, const SyncTreeRequest& m);
std::string EncodeSyncTreeReply(uint64_t request_id, const SyncTreeReply& m);
std::string EncodeSyncKeysRequest(uint64_t request_id, const SyncKeysRequest& m);
std::string EncodeSyncKeysReply(uint64_t request_id, const SyncKeysReply& m);
std::string EncodeSyncHaveRequest(uint64_t request_id, const SyncHaveRequest& m);
std::string EncodeSyncHaveReply(uint64_t request_id, const SyncHaveReply& m);
std::string EncodeSyncGetRequest(uint64_t request_id, const SyncGetRequest& m);
std::string EncodeSyncGetReply(uint64_t request_id, const SyncGetReply& m);
std::string EncodeRepairStatus(uint64_t request_id, const RepairStatus& m);

Result<ScanRequest> DecodeScanRequest(std::string_view body);
Result<ScanReply> DecodeScanReply(std::string_view body);
Result<SyncTreeRequest> DecodeSyncTreeRequest(std::string_view body);
Result<SyncTreeReply> DecodeSyncTreeReply(std::string_view body);
Result<SyncKeysRequest> DecodeSyncKeysRequest(std::string_view body);
Result<SyncKeysReply> DecodeSyncKeysReply(std::string_view body);
Result<SyncHaveRequest> DecodeSyncHaveRequest(std::string_view body);
Result<SyncHaveReply> DecodeSyncHaveReply(std::string_view body);
Result<SyncGetRequest> DecodeSyncGetRequest(std::string_view body);
Result<SyncGetReply> DecodeSyncGetReply(std::string_view body);
Result<RepairStatus> DecodeRepairStatus(std::string_view body);

}  // namespace ringstore
