// Helpers shared by the message codecs (dht/messages, routing/membership_messages): build a
// frame around msgpack output in one buffer, and read a positional msgpack array with typed,
// bounded getters that return a Status instead of throwing.
// Thread-safety: Fields::Parse uses a per-thread zone; a Fields is used by one thread.
#pragma once

#include <msgpack.hpp>

#include <string>
#include <string_view>

#include "dht/frame.h"
#include "dht/messages.h"
#include "dht/object_id.h"
#include "dht/status.h"

namespace ringstore::wire {

// Appends msgpack output straight after a reserved frame header, so a frame is built in one
// buffer with one copy of the value.
struct FrameWriter {
  std::string buf;
  explicit FrameWriter(size_t body_hint) {
    buf.reserve(kFrameHeaderBytes + body_hint);
    buf.resize(kFrameHeaderBytes);
  }
  void write(const char* data, size_t len) { buf.append(data, len); }
  std::string Finish(Kind kind, uint64_t request_id) {
    std::string_view body(buf.data() + kFrameHeaderBytes, buf.size() - kFrameHeaderBytes);
    EncodeFrameHeader(static_cast<uint16_t>(kind), request_id, body, 0, buf.data());
    return std::move(buf);
  }
  // The frame whose body is what was written, then *value, then tail.
  SharedFrame FinishShared(Kind kind, uint64_t request_id, std::shared_ptr<const std::string> value, std::string tail) {
    std::string_view body(buf.data() + kFrameHeaderBytes, buf.size() - kFrameHeaderBytes);
    EncodeFrameHeaderParts(static_cast<uint16_t>(kind), request_id, {body, *value, tail}, 0, buf.data());
    return SharedFrame{std::move(buf), std::move(value), std::move(tail)};
  }
};
using Packer = msgpack::packer<FrameWriter>;

inline void PackBin(Packer& pk, std::string_view b) {
  pk.pack_bin(static_cast<uint32_t>(b.size()));
  pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
}
inline void PackStr(Packer& pk, std::string_view s) {
  if (s.size() > kMaxShortString) s = s.substr(0, kMaxShortString);
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}
inline void PackId(Packer& pk, const ObjectId& id) { PackBin(pk, id.AsStringView()); }

// ---- decoding -------------------------------------------------------------------------

inline bool ReferenceAll(msgpack::type::object_type, std::size_t, void*) { return true; }

// A decoded top-level array. Strings and bins point into the body; the objects live in a
// per-thread zone that the next Parse on this thread reuses.
class Fields {
 public:
  Status Parse(std::string_view body, uint32_t min_fields) {
    try {
      std::size_t off = 0;
      // Loose structural bounds; the decoders apply the exact ones with clearer errors.
      const msgpack::unpack_limit limit(/*array=*/4 * kMaxTxnOps, /*map=*/0,
                                        /*str=*/kMaxShortString, /*bin=*/kMaxFrameBodyBytes,
                                        /*ext=*/0, /*depth=*/4);
      // One zone per thread, cleared per message: decoding allocates nothing in the common
      // case. Decoders copy what they keep before returning, so the reuse is safe.
      static thread_local msgpack::zone zone;
      zone.clear();
      bool referenced = false;
      root_ = msgpack::unpack(zone, body.data(), body.size(), off, referenced, ReferenceAll, nullptr, limit);
      if (off != body.size()) return Status::ProtocolError("trailing bytes after message body");
    } catch (const std::exception& e) {
      return Status::ProtocolError(std::string("malformed msgpack body: ") + e.what());
    } catch (...) {
      return Status::ProtocolError("malformed msgpack body");
    }
    return Wrap(root_, min_fields, "message body");
  }
  // Views a nested array (a txn op) without owning the zone.
  Status Wrap(const msgpack::object& o, uint32_t min_fields, const char* what) {
    if (o.type != msgpack::type::ARRAY) return Status::ProtocolError(std::string(what) + " is not an array");
    if (o.via.array.size < min_fields) {
      return Status::ProtocolError(std::string(what) + " has " + std::to_string(o.via.array.size) +
                                   " fields, needs " + std::to_string(min_fields));
    }
    arr_ = o.via.array.ptr;
    size_ = o.via.array.size;
    return Status::Ok();
  }
  uint32_t size() const { return size_; }
  const msgpack::object& at(uint32_t i) const { return arr_[i]; }

  Status U64(uint32_t i, const char* name, uint64_t* v) const {
    if (at(i).type != msgpack::type::POSITIVE_INTEGER) return TypeError(i, name, "unsigned integer");
    *v = at(i).via.u64;
    return Status::Ok();
  }
  Status Bin(uint32_t i, const char* name, std::string_view* v) const {
    if (at(i).type != msgpack::type::BIN) return TypeError(i, name, "bin");
    *v = std::string_view(at(i).via.bin.ptr, at(i).via.bin.size);
    return Status::Ok();
  }
  Status Str(uint32_t i, const char* name, std::string* v) const {
    if (at(i).type != msgpack::type::STR) return TypeError(i, name, "string");
    v->assign(at(i).via.str.ptr, at(i).via.str.size);
    return Status::Ok();
  }
  Status Id(uint32_t i, const char* name, ObjectId* id) const {
    std::string_view raw;
    if (Status s = Bin(i, name, &raw); !s.ok()) return s;
    auto r = ObjectId::FromBytes(raw);
    if (!r.ok()) return Status::ProtocolError(std::string("field ") + name + ": " + r.status().message());
    *id = *r;
    return Status::Ok();
  }

 private:
  static Status TypeError(uint32_t i, const char* name, const char* want) {
    return Status::ProtocolError("field " + std::to_string(i) + " (" + name + ") must be " + want);
  }
  msgpack::object root_;
  const msgpack::object* arr_ = nullptr;
  uint32_t size_ = 0;
};

// A record as GET_REPLY and SYNC_GET_REPLY carry it: an array of ts, flags, size, checksum
// and the value (bin), then any fields appended. PackRecordHead writes all of it up to the
// value's bytes, which the caller writes next.
inline void PackRecordHead(Packer& pk, const RecordMeta& meta, size_t value_bytes, uint32_t fields = 5) {
  pk.pack_array(fields);
  pk.pack_uint64(meta.ts);
  pk.pack_uint32(meta.flags);
  pk.pack_uint64(meta.size);
  pk.pack_uint64(meta.checksum);
  pk.pack_bin(static_cast<uint32_t>(value_bytes));
}
// Reads such a record's first five fields; value points into the body.
inline Status RecordFields(const Fields& f, RecordMeta* meta, std::string_view* value) {
  uint64_t flags = 0;
  RS_TRY(f.U64(0, "ts", &meta->ts));
  RS_TRY(f.U64(1, "flags", &flags));
  RS_TRY(f.U64(2, "size", &meta->size));
  RS_TRY(f.U64(3, "checksum", &meta->checksum));
  RS_TRY(f.Bin(4, "value", value));
  if (flags > UINT32_MAX) return Status::ProtocolError("flags out of range");
  meta->flags = static_cast<uint32_t>(flags);
  return Status::Ok();
}



}  // namespace ringstore::wire
