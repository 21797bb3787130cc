// ObjectId: the 256-bit address of an object on the ring, SHA-256 of `namespace \0 key`.
// Byte 0 is the most significant, so byte-wise order is ring order (and RocksDB key order).
// Thread-safety: plain value type.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "dht/status.h"

namespace ringstore {

class ObjectId {
 public:
  static constexpr size_t kSize = 32;
  using Bytes = std::array<uint8_t, kSize>;

  ObjectId() : bytes_{} {}
  explicit ObjectId(const Bytes& b) : bytes_(b) {}

  // SHA-256(ns || '\0' || key).
  static ObjectId Of(std::string_view ns, std::string_view key);
  // SHA-256(bytes): for IDs derived from other IDs (replica IDs, ring IDs).
  static ObjectId Sha256(std::string_view bytes);
  // Exactly 32 raw bytes, else InvalidArgument.
  static Result<ObjectId> FromBytes(std::string_view raw);
  // Exactly 64 hex digits (either case), else InvalidArgument.
  static Result<ObjectId> FromHex(std::string_view hex);
  static ObjectId Min() { return ObjectId(); }
  static ObjectId Max();
  // The next id in order (this + 1); Max()'s successor is Max() itself.
  ObjectId Successor() const;

  const Bytes& bytes() const { return bytes_; }
  std::string_view AsStringView() const {
    return {reinterpret_cast<const char*>(bytes_.data()), kSize};
  }
  std::string Hex() const;
  // First 8 bytes as a big-endian integer: cheap for sharding and logs.
  uint64_t Prefix64() const {
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v = v << 8 | bytes_[i];
    return v;
  }

  auto operator<=>(const ObjectId&) const = default;

 private:
  Bytes bytes_;
};

struct ObjectIdHash {
  size_t operator()(const ObjectId& id) const { return static_cast<size_t>(id.Prefix64()); }
};

}  // namespace ringstore
