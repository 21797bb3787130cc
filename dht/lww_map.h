// LwwMap: the value of a map record (kRecordMap), a map from names to small payloads in which
// every entry carries its own timestamp. Replicas merge map records entry by entry instead of
// replacing one version with another, so two writers that change different entries of one
// object concurrently (two mounts creating files in one directory) both keep their change.
// An entry is removed by writing a deleted entry (an entry tombstone) with a newer timestamp.
//
// Merge order of two versions of one entry: the greater (ts, deleted, payload) wins, so every
// replica picks the same winner. A map record's encoding is canonical (entries sorted by
// name), so replicas holding the same entries hold the same bytes and checksum.
//
// Whole-record rules (MergeRecords), used by the stores when either side is a map record:
//   map + map            -> the entry-wise union;
//   tombstone(T) + map   -> the entries newer than T, and a clear mark at T (the tombstone if
//                           there are none);
//   anything else        -> last writer wins (Supersedes), as for ordinary records.
// The clear mark is the entry named "/" (kMapClearName: no file or volume name holds a slash),
// deleted, at T:
// every other entry at or before T counts as gone, in every merge (MergeLwwMap). Without it a
// replica that missed the tombstone merged its old entries back in (docs/fsgateway.md).
// Deleted entries are kept; collecting them is left to anti-entropy (docs/fsgateway.md).
//
// Thread-safety: value types and pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "dht/record.h"
#include "dht/status.h"

namespace ringstore {

constexpr size_t kMaxMapNameBytes = 4096;
constexpr size_t kMaxMapPayloadBytes = 64 * 1024;
constexpr size_t kMaxMapEntries = 4u << 20;
// The entry whose timestamp says "everything at or before this was deleted" (see above).
inline constexpr std::string_view kMapClearName = "/";

struct MapEntry {
  // 0 in a write means "the write's own timestamp": the node stamps it (see MapRecordFromWrite).
  Timestamp ts = 0;
  bool deleted = false;
  std::string payload;

  bool operator==(const MapEntry&) const = default;
};

using LwwMap = std::map<std::string, MapEntry, std::less<>>;

std::string EncodeLwwMap(const LwwMap& map);
// Checks structure and bounds; bad input is an InvalidArgument, never a crash.
Result<LwwMap> DecodeLwwMap(std::string_view bytes);

// True when a should replace b as the version of one entry.
bool EntrySupersedes(const MapEntry& a, const MapEntry& b);
// Merges from into into, entry by entry, then drops the entries at or before the clear mark;
// returns true if into changed.
bool MergeLwwMap(LwwMap& into, const LwwMap& from);

// A map record holding map: its timestamp is the newest of ts and the entries' timestamps.
Record MapRecord(const LwwMap& map, Timestamp ts);
inline bool IsMapRecord(const RecordMeta& m) { return (m.flags & kRecordMap) != 0; }

// The map record a node stores for a merge op carrying bytes under timestamp ts: entries with
// ts 0 get ts. InvalidArgument if bytes are not a map.
Result<Record> MapRecordFromWrite(std::string_view bytes, Timestamp ts);

// What a store should hold after incoming arrives on top of stored (nullptr: nothing stored),
// by the rules above. A map record that fails to decode loses to the other side.
Record MergeRecords(const Record* stored, const Record& incoming);

// ---- the encoding in pieces (dht/lww_map_merge.cc) -----------------------------------------
// EncodeLwwMap(map) is EncodeLwwMapHeader(map.size()) followed by AppendLwwMapEntry of each
// entry in name order.
constexpr uint64_t kLwwMapFormatVersion = 1;
std::string EncodeLwwMapHeader(uint64_t entries);
void AppendLwwMapEntry(std::string* out, std::string_view name, const MapEntry& e);
// EncodeLwwMap of the entry-wise merge of from into the map whose encoding is stored, made
// without decoding stored, and *newest = the newest entry's timestamp. nullopt when stored is
// not exactly what EncodeLwwMap writes, or holds a clear mark (then decode, merge and encode
// instead). from must hold no clear mark: the caller checks (the cut is not applied here).
// Marks are never collected, so a map that got one takes the slower path from then on.
std::optional<std::string> MergeIntoEncoded(std::string_view stored, const LwwMap& from, Timestamp* newest);

}  // namespace ringstore
