#include "dht/lww_map.h"

#include <msgpack.hpp>

#include <algorithm>
#include <tuple>

#include "dht/wire_codec.h"

namespace ringstore {
namespace {

struct StringWriter {
  std::string* out;
  void write(const char* data, size_t len) { out->append(data, len); }
};

void PackBin(msgpack::packer<StringWriter>& pk, std::string_view b) {
  pk.pack_bin(static_cast<uint32_t>(b.size()));
  pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
}

Status BinField(const msgpack::object& o, size_t max, std::string_view what, std::string* out) {
  if (o.type != msgpack::type::BIN && o.type != msgpack::type::STR) {
    return Status::InvalidArgument(std::string(what) + " is not bytes");
  }
  const uint32_t size = o.type == msgpack::type::BIN ? o.via.bin.size : o.via.str.size;
  const char* ptr = o.type == msgpack::type::BIN ? o.via.bin.ptr : o.via.str.ptr;
  if (size > max) return Status::InvalidArgument(std::string(what) + " is too long");
  out->assign(ptr, size);
  return Status::Ok();
}

Status DecodeInto(const msgpack::object& root, LwwMap* map) {
  if (root.type != msgpack::type::ARRAY || root.via.array.size < 2) {
    return Status::InvalidArgument("map record: not a [version, entries] array");
  }
  const msgpack::object& version = root.via.array.ptr[0];
  if (version.type != msgpack::type::POSITIVE_INTEGER || version.via.u64 != kLwwMapFormatVersion) {
    return Status::InvalidArgument("map record: unknown format version");
  }
  const msgpack::object& entries = root.via.array.ptr[1];
  if (entries.type != msgpack::type::ARRAY) return Status::InvalidArgument("map record: entries not an array");
  if (entries.via.array.size > kMaxMapEntries) return Status::InvalidArgument("map record: too many entries");
  for (uint32_t i = 0; i < entries.via.array.size; ++i) {
    const msgpack::object& e = entries.via.array.ptr[i];
    if (e.type != msgpack::type::ARRAY || e.via.array.size < 4) {
      return Status::InvalidArgument("map record: entry is not [name, ts, deleted, payload]");
    }
    const msgpack::object* f = e.via.array.ptr;
    std::string name;
    MapEntry entry;
    RS_TRY(BinField(f[0], kMaxMapNameBytes, "map entry name", &name));
    if (f[1].type != msgpack::type::POSITIVE_INTEGER) return Status::InvalidArgument("map entry ts is not a uint");
    entry.ts = f[1].via.u64;
    if (f[2].type != msgpack::type::BOOLEAN) return Status::InvalidArgument("map entry deleted is not a bool");
    entry.deleted = f[2].via.boolean;
    RS_TRY(BinField(f[3], kMaxMapPayloadBytes, "map entry payload", &entry.payload));
    // A name given twice keeps its winning version, so decoding never depends on order.
    auto [it, inserted] = map->try_emplace(std::move(name), entry);
    if (!inserted && EntrySupersedes(entry, it->second)) it->second = std::move(entry);
  }
  return Status::Ok();
}

Timestamp NewestEntry(const LwwMap& map) {
  Timestamp ts = 0;
  for (const auto& [name, e] : map) ts = std::max(ts, e.ts);
  return ts;
}

}  // namespace

std::string EncodeLwwMapHeader(uint64_t entries) {
  std::string out;
  StringWriter w{&out};
  msgpack::packer<StringWriter> pk(w);
  pk.pack_array(2);
  pk.pack_uint64(kLwwMapFormatVersion);
  pk.pack_array(static_cast<uint32_t>(entries));
  return out;
}

void AppendLwwMapEntry(std::string* out, std::string_view name, const MapEntry& e) {
  StringWriter w{out};
  msgpack::packer<StringWriter> pk(w);
  pk.pack_array(4);
  PackBin(pk, name);
  pk.pack_uint64(e.ts);
  if (e.deleted) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  PackBin(pk, e.payload);
}

std::string EncodeLwwMap(const LwwMap& map) {
  std::string out = EncodeLwwMapHeader(map.size());
  size_t hint = out.size();
  for (const auto& [name, e] : map) hint += name.size() + e.payload.size() + 16;
  out.reserve(hint);
  for (const auto& [name, e] : map) AppendLwwMapEntry(&out, name, e);
  return out;
}

Result<LwwMap> DecodeLwwMap(std::string_view bytes) {
  LwwMap map;
  try {
    std::size_t off = 0;
    const msgpack::unpack_limit limit(/*array=*/kMaxMapEntries, /*map=*/0, /*str=*/kMaxMapNameBytes,
                                      /*bin=*/kMaxMapPayloadBytes, /*ext=*/0, /*depth=*/3);
    msgpack::zone zone;
    bool referenced = false;
    msgpack::object root = msgpack::unpack(zone, bytes.data(), bytes.size(), off, referenced, wire::ReferenceAll, nullptr, limit);
    if (off != bytes.size()) return Status::InvalidArgument("map record: trailing bytes");
    RS_TRY(DecodeInto(root, &map));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("map record: malformed msgpack: ") + e.what());
  } catch (...) {
    return Status::InvalidArgument("map record: malformed msgpack");
  }
  return map;
}

bool EntrySupersedes(const MapEntry& a, const MapEntry& b) {
  return std::tie(a.ts, a.deleted, a.payload) > std::tie(b.ts, b.deleted, b.payload);
}

bool MergeLwwMap(LwwMap& into, const LwwMap& from) {
  // The clear mark of the result, if either side has one: entries at or before it are gone.
  std::optional<Timestamp> cut;
  for (const LwwMap* m : {static_cast<const LwwMap*>(&into), &from}) {
    if (auto clear = m->find(kMapClearName); clear != m->end()) cut = std::max(cut.value_or(0), clear->second.ts);
  }
  bool changed = false;
  for (const auto& [name, e] : from) {
    if (cut && name != kMapClearName && e.ts <= *cut) continue;
    auto it = into.find(name);
    if (it == into.end()) {
      into.emplace(name, e);
      changed = true;
    } else if (EntrySupersedes(e, it->second)) {
      it->second = e;
      changed = true;
    }
  }
  if (cut) {
    changed |= std::erase_if(into, [&](const auto& kv) { return kv.first != kMapClearName && kv.second.ts <= *cut; }) > 0;
  }
  return changed;
}

Record MapRecord(const LwwMap& map, Timestamp ts) {
  Record r = Record::Value(std::max(ts, NewestEntry(map)), EncodeLwwMap(map));
  r.meta.flags |= kRecordMap;
  return r;
}

Result<Record> MapRecordFromWrite(std::string_view bytes, Timestamp ts) {
  auto map = DecodeLwwMap(bytes);
  if (!map.ok()) return map.status();
  for (auto& [name, e] : *map) {
    if (e.ts == 0) e.ts = ts;
    // A clear mark is deleted and carries nothing, whoever wrote it.
    if (name == kMapClearName) e = MapEntry{e.ts, true, {}};
  }
  return MapRecord(*map, ts);
}

Record MergeRecords(const Record* stored, const Record& incoming) {
  const bool in_map = IsMapRecord(incoming.meta) && !incoming.meta.tombstone();
  const bool st_map = stored != nullptr && IsMapRecord(stored->meta) && !stored->meta.tombstone();
  auto lww = [&]() -> Record {
    if (stored == nullptr || Supersedes(incoming.meta, stored->meta)) return incoming;
    return *stored;
  };
  if (!in_map && !st_map) return lww();
  if (in_map && stored == nullptr) return incoming;

  auto decode = [](const Record& r) -> std::optional<LwwMap> {
    if (!r.Intact()) return std::nullopt;
    auto m = DecodeLwwMap(r.value);
    if (!m.ok()) return std::nullopt;
    return std::move(*m);
  };
  if (in_map && st_map) {
    // Every replica merges the same writes, so the larger N is the same everywhere.
    const uint8_t replicas = std::max(stored->meta.replicas(), incoming.meta.replicas());
    const Timestamp ts = std::max(stored->meta.ts, incoming.meta.ts);
    // The usual case, a few entries into many: merged without decoding the stored map. Any
    // other (a damaged side, a stored map not in canonical form) takes the path below.
    auto b = decode(incoming);
    Timestamp newest = 0;
    // (A clear mark on either side takes the decoding path, which applies it.)
    if (b && stored->Intact() && !b->contains(kMapClearName)) {
      if (auto bytes = MergeIntoEncoded(stored->value, *b, &newest)) {
        Record merged = Record::Value(std::max(ts, newest), std::move(*bytes));
        merged.meta.flags |= kRecordMap;
        merged.meta.set_replicas(replicas);
        return merged;
      }
    }
    auto a = decode(*stored);
    if (!a) return incoming;  // a damaged stored map is replaced by the healthy one
    if (!b) return *stored;
    MergeLwwMap(*a, *b);
    Record merged = MapRecord(*a, ts);
    merged.meta.set_replicas(replicas);
    return merged;
  }
  // One side is a map, the other a tombstone or a plain value.
  const Record& map_side = in_map ? incoming : *stored;
  const Record& other = in_map ? *stored : incoming;
  if (!other.meta.tombstone()) return lww();
  auto m = decode(map_side);
  if (!m) return other;
  const Timestamp cut = other.meta.ts;
  LwwMap newer;
  for (auto& [name, e] : *m) {
    if (e.ts > cut) newer.emplace(name, std::move(e));
  }
  // The delete is kept as a clear mark, so that a replica's older entries cannot come back.
  MergeLwwMap(newer, LwwMap{{std::string(kMapClearName), MapEntry{cut, true, {}}}});
  if (newer.size() == 1 && newer.begin()->second.ts == cut) return other;  // nothing newer than the delete
  Record kept = MapRecord(newer, 0);
  kept.meta.set_replicas(std::max(map_side.meta.replicas(), other.meta.replicas()));
  return kept;
}

}  // namespace ringstore
