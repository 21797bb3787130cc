#include "dht/sync_messages.h"

#include <type_traits>

#include "dht/wire_codec.h"

namespace ringstore {

using namespace wire;  // NOLINT: the codec helpers

namespace {

void PackVersion(Packer& pk, const KeyVersion& v) {
  pk.pack_array(5);
  PackId(pk, v.id);
  pk.pack_uint64(v.meta.ts);
  pk.pack_uint32(v.meta.flags);
  pk.pack_uint64(v.meta.size);
  pk.pack_uint64(v.meta.checksum);
}

void PackVersions(Packer& pk, const std::vector<KeyVersion>& vs) {
  const size_t n = std::min(vs.size(), kMaxSyncEntries);
  pk.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) PackVersion(pk, vs[i]);
}

void PackU32s(Packer& pk, const std::vector<uint32_t>& vs, size_t max) {
  const size_t n = std::min(vs.size(), max);
  pk.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) pk.pack_uint32(vs[i]);
}

void PackScope(Packer& pk, const SyncScope& s) {
  pk.pack_uint64(s.ring_digest);
  pk.pack_uint32(s.replicas);
  PackStr(pk, s.from);
}

Status Array(const Fields& f, uint32_t i, const char* name, size_t max, const msgpack::object** items, uint32_t* n) {
  const msgpack::object& o = f.at(i);
  if (o.type != msgpack::type::ARRAY) return Status::ProtocolError(std::string("field ") + name + " must be an array");
  if (o.via.array.size > max) {
    return Status::ProtocolError(std::string("field ") + name + " has " + std::to_string(o.via.array.size) +
                                 " items, the limit is " + std::to_string(max));
  }
  *items = o.via.array.ptr;
  *n = o.via.array.size;
  return Status::Ok();
}

Status DecodeVersions(const Fields& f, uint32_t i, std::vector<KeyVersion>* out) {
  const msgpack::object* items = nullptr;
  uint32_t n = 0;
  RS_TRY(Array(f, i, "entries", kMaxSyncEntries, &items, &n));
  out->reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    Fields e;
    RS_TRY(e.Wrap(items[k], 5, "entry"));
    KeyVersion v;
    uint64_t flags = 0;
    RS_TRY(e.Id(0, "id", &v.id));
    RS_TRY(e.U64(1, "ts", &v.meta.ts));
    RS_TRY(e.U64(2, "flags", &flags));
    RS_TRY(e.U64(3, "size", &v.meta.size));
    RS_TRY(e.U64(4, "checksum", &v.meta.checksum));
    if (flags > UINT32_MAX) return Status::ProtocolError("entry flags out of range");
    v.meta.flags = static_cast<uint32_t>(flags);
    out->push_back(v);
  }
  return Status::Ok();
}

Status DecodeU32s(const Fields& f, uint32_t i, const char* name, size_t max, uint32_t limit, std::vector<uint32_t>* out) {
  const msgpack::object* items = nullptr;
  uint32_t n = 0;
  RS_TRY(Array(f, i, name, max, &items, &n));
  for (uint32_t k = 0; k < n; ++k) {
    if (items[k].type != msgpack::type::POSITIVE_INTEGER || items[k].via.u64 >= limit) {
      return Status::ProtocolError(std::string("field ") + name + ": item " + std::to_string(k) + " out of range");
    }
    out->push_back(static_cast<uint32_t>(items[k].via.u64));
  }
  return Status::Ok();
}

Status DecodeScope(const Fields& f, SyncScope* s) {
  uint64_t replicas = 0;
  RS_TRY(f.U64(0, "ring_digest", &s->ring_digest));
  RS_TRY(f.U64(1, "replicas", &replicas));
  RS_TRY(f.Str(2, "from", &s->from));
  if (replicas == 0 || replicas > 16) return Status::ProtocolError("replicas out of range");
  s->replicas = static_cast<uint32_t>(replicas);
  return Status::Ok();
}

// A reply whose body is one array of scalars (hashes, booleans).
template <typename T>
std::string EncodeScalarList(Kind kind, uint64_t request_id, const std::vector<T>& vs) {
  FrameWriter w(16 + vs.size() * 9);
  Packer pk(w);
  pk.pack_array(1);
  const size_t n = std::min(vs.size(), kMaxSyncEntries);
  pk.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) pk.pack(static_cast<T>(vs[i]));
  return w.Finish(kind, request_id);
}

template <typename T>
Status DecodeScalarList(std::string_view body, const char* name, std::vector<T>* out) {
  Fields f;
  RS_TRY(f.Parse(body, 1));
  const msgpack::object* items = nullptr;
  uint32_t n = 0;
  RS_TRY(Array(f, 0, name, kMaxSyncEntries, &items, &n));
  constexpr auto kType = std::is_same_v<T, bool> ? msgpack::type::BOOLEAN : msgpack::type::POSITIVE_INTEGER;
  for (uint32_t k = 0; k < n; ++k) {
    if (items[k].type != kType) return Status::ProtocolError(std::string("field ") + name + " has an item of the wrong type");
    if constexpr (std::is_same_v<T, bool>) {
      out->push_back(items[k].via.boolean);
    } else {
      out->push_back(items[k].via.u64);
    }
  }
  return Status::Ok();
}

constexpr uint32_t kMaxTreeIndex = 4096;  // RangeDigest::kLeaves

}  // namespace

std::string EncodeScanRequest(uint64_t request_id, const ScanRequest& m) {
  FrameWriter w(96);
  Packer pk(w);
  pk.pack_array(3);
  PackId(pk, m.begin);
  PackId(pk, m.end);
  pk.pack_uint32(m.limit);
  return w.Finish(Kind::kScan, request_id);
}

Result<ScanRequest> DecodeScanRequest(std::string_view body) {
  Fields f;
  ScanRequest m;
  uint64_t limit = 0;
  RS_TRY(f.Parse(body, 3));
  RS_TRY(f.Id(0, "begin", &m.begin));
  RS_TRY(f.Id(1, "end", &m.end));
  RS_TRY(f.U64(2, "limit", &limit));
  if (limit == 0 || limit > kMaxSyncEntries) return Status::InvalidArgument("scan limit must be 1.." + std::to_string(kMaxSyncEntries));
  m.limit = static_cast<uint32_t>(limit);
  return m;
}

std::string EncodeScanReply(uint64_t request_id, const ScanReply& m) {
  FrameWriter w(16 + m.entries.size() * 72);
  Packer pk(w);
  pk.pack_array(2);
  PackVersions(pk, m.entries);
  pk.pack(m.more);
  return w.Finish(Kind::kScanReply, request_id);
}

Result<ScanReply> DecodeScanReply(std::string_view body) {
  Fields f;
  ScanReply m;
  RS_TRY(f.Parse(body, 2));
  RS_TRY(DecodeVersions(f, 0, &m.entries));
  if (f.at(1).type != msgpack::type::BOOLEAN) return Status::ProtocolError("field more must be a boolean");
  m.more = f.at(1).via.boolean;
  return m;
}

std::string EncodeSyncTreeRequest(uint64_t request_id, const SyncTreeRequest& m) {
  FrameWriter w(64 + m.indices.size() * 3);
  Packer pk(w);
  pk.pack_array(5);
  PackScope(pk, m.scope);
  pk.pack_uint32(m.level);
  PackU32s(pk, m.indices, kMaxSyncIndices);
  return w.Finish(Kind::kSyncTree, request_id);
}

Result<SyncTreeRequest> DecodeSyncTreeRequest(std::string_view body) {
  Fields f;
  SyncTreeRequest m;
  uint64_t level = 0;
  RS_TRY(f.Parse(body, 5));
  RS_TRY(DecodeScope(f, &m.scope));
  RS_TRY(f.U64(3, "level", &level));
  if (level >= 3) return Status::ProtocolError("tree level out of range");
  m.level = static_cast<uint32_t>(level);
  RS_TRY(DecodeU32s(f, 4, "indices", kMaxSyncIndices, kMaxTreeIndex, &m.indices));
  return m;
}

std::string EncodeSyncTreeReply(uint64_t request_id, const SyncTreeReply& m) {
  return EncodeScalarList(Kind::kSyncTreeReply, request_id, m.hashes);
}

Result<SyncTreeReply> DecodeSyncTreeReply(std::string_view body) {
  SyncTreeReply m;
  RS_TRY(DecodeScalarList(body, "hashes", &m.hashes));
  return m;
}

std::string EncodeSyncKeysRequest(uint64_t request_id, const SyncKeysRequest& m) {
  FrameWriter w(64 + m.leaves.size() * 3);
  Packer pk(w);
  pk.pack_array(m.start ? 5 : 4);
  PackScope(pk, m.scope);
  PackU32s(pk, m.leaves, kMaxSyncIndices);
  if (m.start) PackId(pk, *m.start);
  return w.Finish(Kind::kSyncKeys, request_id);
}

Result<SyncKeysRequest> DecodeSyncKeysRequest(std::string_view body) {
  Fields f;
  SyncKeysRequest m;
  RS_TRY(f.Parse(body, 4));
  RS_TRY(DecodeScope(f, &m.scope));
  RS_TRY(DecodeU32s(f, 3, "leaves", kMaxSyncIndices, kMaxTreeIndex, &m.leaves));
  if (f.size() >= 5) {
    ObjectId start;
    RS_TRY(f.Id(4, "start", &start));
    m.start = start;  // the responder checks that it lies in leaves[0]
  }
  return m;
}

std::string EncodeSyncKeysReply(uint64_t request_id, const SyncKeysReply& m) {
  FrameWriter w(16 + m.done.size() * 3 + m.entries.size() * 72);
  Packer pk(w);
  pk.pack_array(m.cut ? 3 : 2);
  PackU32s(pk, m.done, kMaxSyncIndices);
  PackVersions(pk, m.entries);
  if (m.cut) PackId(pk, *m.cut);
  return w.Finish(Kind::kSyncKeysReply, request_id);
}

Result<SyncKeysReply> DecodeSyncKeysReply(std::string_view body) {
  Fields f;
  SyncKeysReply m;
  RS_TRY(f.Parse(body, 2));
  RS_TRY(DecodeU32s(f, 0, "done", kMaxSyncIndices, kMaxTreeIndex, &m.done));
  RS_TRY(DecodeVersions(f, 1, &m.entries));
  if (f.size() >= 3) {
    ObjectId cut;
    RS_TRY(f.Id(2, "cut", &cut));
    m.cut = cut;  // the asker checks that it lies in done.back()
  }
  return m;
}

std::string EncodeSyncHaveRequest(uint64_t request_id, const SyncHaveRequest& m) {
  FrameWriter w(16 + m.entries.size() * 73);
  Packer pk(w);
  pk.pack_array(2);
  PackVersions(pk, m.entries);
  const size_t n = std::min({m.placed.size(), m.entries.size(), kMaxSyncEntries});
  pk.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) pk.pack(static_cast<bool>(m.placed[i]));
  return w.Finish(Kind::kSyncHave, request_id);
}

Result<SyncHaveRequest> DecodeSyncHaveRequest(std::string_view body) {
  Fields f;
  SyncHaveRequest m;
  RS_TRY(f.Parse(body, 1));
  RS_TRY(DecodeVersions(f, 0, &m.entries));
  if (f.size() >= 2) {
    const msgpack::object* items = nullptr;
    uint32_t n = 0;
    RS_TRY(Array(f, 1, "placed", m.entries.size(), &items, &n));
    for (uint32_t k = 0; k < n; ++k) {
      if (items[k].type != msgpack::type::BOOLEAN) return Status::ProtocolError("field placed has an item that is not a bool");
      m.placed.push_back(items[k].via.boolean);
    }
  }
  return m;
}

std::string EncodeSyncHaveReply(uint64_t request_id, const SyncHaveReply& m) {
  return EncodeScalarList(Kind::kSyncHaveReply, request_id, m.have);
}

Result<SyncHaveReply> DecodeSyncHaveReply(std::string_view body) {
  SyncHaveReply m;
  RS_TRY(DecodeScalarList(body, "have", &m.have));
  return m;
}

std::string EncodeSyncGetRequest(uint64_t request_id, const SyncGetRequest& m) {
  const size_t n = std::min(m.ids.size(), kMaxSyncGetIds);
  FrameWriter w(8 + n * 35);
  Packer pk(w);
  pk.pack_array(1);
  pk.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) PackId(pk, m.ids[i]);
  return w.Finish(Kind::kSyncGet, request_id);
}

Result<SyncGetRequest> DecodeSyncGetRequest(std::string_view body) {
  Fields f;
  SyncGetRequest m;
  RS_TRY(f.Parse(body, 1));
  const msgpack::object* items = nullptr;
  uint32_t n = 0;
  RS_TRY(Array(f, 0, "ids", kMaxSyncGetIds, &items, &n));
  m.ids.resize(n);
  for (uint32_t k = 0; k < n; ++k) {
    if (items[k].type != msgpack::type::BIN) return Status::ProtocolError("field ids: item " + std::to_string(k) + " is not a bin");
    auto id = ObjectId::FromBytes(std::string_view(items[k].via.bin.ptr, items[k].via.bin.size));
    if (!id.ok()) return Status::ProtocolError("field ids: item " + std::to_string(k) + ": " + id.status().message());
    m.ids[k] = *id;
  }
  return m;
}

std::string EncodeSyncGetReply(uint64_t request_id, const SyncGetReply& m) {
  const size_t n = std::min(m.records.size(), kMaxSyncGetIds);
  size_t bytes = 8;
  for (size_t i = 0; i < n; ++i) bytes += 48 + (m.records[i] ? m.records[i]->value.size() : 0);
  FrameWriter w(bytes);
  Packer pk(w);
  pk.pack_array(1);
  pk.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) {
    if (!m.records[i]) {
      pk.pack_nil();
      continue;
    }
    const Record& r = *m.records[i];
    PackRecordHead(pk, r.meta, r.value.size());
    pk.pack_bin_body(r.value.data(), static_cast<uint32_t>(r.value.size()));
  }
  return w.Finish(Kind::kSyncGetReply, request_id);
}

Result<SyncGetReply> DecodeSyncGetReply(std::string_view body) {
  Fields f;
  SyncGetReply m;
  RS_TRY(f.Parse(body, 1));
  const msgpack::object* items = nullptr;
  uint32_t n = 0;
  RS_TRY(Array(f, 0, "records", kMaxSyncGetIds, &items, &n));
  m.records.resize(n);
  for (uint32_t k = 0; k < n; ++k) {
    if (items[k].type == msgpack::type::NIL) continue;
    Fields e;
    RS_TRY(e.Wrap(items[k], 5, "record"));
    Record r;
    std::string_view value;
    RS_TRY(RecordFields(e, &r.meta, &value));
    r.value.assign(value);
    m.records[k] = std::move(r);
  }
  return m;
}

namespace {
// NODE_STATUS's counters, in wire order (append only).
template <typename S, typename F>
void ForEachCounter(S& m, F f) {
  for (auto* v : {&m.rounds, &m.round_active, &m.synced, &m.owned_keys, &m.owned_bytes, &m.handoff_keys,
                  &m.handoff_bytes, &m.peers, &m.peers_synced, &m.leaves_pending, &m.pulled_records,
                  &m.pulled_bytes, &m.pushed_records, &m.pushed_bytes, &m.purged_records, &m.under_replicated,
                  &m.scrubbed, &m.corrupt_found, &m.repaired, &m.rate_bytes_per_s, &m.pending_bytes,
                  &m.last_round_ms, &m.leaving, &m.left, &m.tombstones_collected, &m.hints_pending,
                  &m.hints_handed_off}) {
    f(*v);
  }
}
}  // namespace

std::string EncodeRepairStatus(uint64_t request_id, const RepairStatus& m) {
  FrameWriter w(320);
  Packer pk(w);
  uint32_t n = 1;
  ForEachCounter(m, [&](const uint64_t&) { ++n; });
  pk.pack_array(n);
  PackStr(pk, m.node_id);
  ForEachCounter(m, [&](const uint64_t& v) { pk.pack_uint64(v); });
  return w.Finish(Kind::kNodeStatusReply, request_id);
}

Result<RepairStatus> DecodeRepairStatus(std::string_view body) {
  Fields f;
  RepairStatus m;
  RS_TRY(f.Parse(body, 1));
  RS_TRY(f.Str(0, "node_id", &m.node_id));
  uint32_t i = 1;
  Status st;
  // A sender with fewer counters (older) leaves the rest at zero.
  ForEachCounter(m, [&](uint64_t& v) {
    if (st.ok() && i < f.size()) st = f.U64(i, "counter", &v);
    ++i;
  });
  if (!st.ok()) return st;
  return m;
}

}  // namespace ringstore
