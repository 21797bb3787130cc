// RocksDB keys and status mapping shared by the RocksDbStore's source files (storage-internal;
// docs/storage-format.md §3 gives the layout).
// Thread-safety: pure functions.
#pragma once

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <string>

#include "dht/object_id.h"
#include "dht/status.h"

namespace ringstore::rocks {

// A record lives under its object id's 32 bytes.
inline rocksdb::Slice Key(const ObjectId& id) {
  return rocksdb::Slice(reinterpret_cast<const char*>(id.bytes().data()), ObjectId::kSize);
}

// Where an external value of the layout before the value log lives: the id followed by 0x01.
// It sorts right after the id.
inline std::string ValueKey(const ObjectId& id) {
  std::string k(id.AsStringView());
  k.push_back('\x01');
  return k;
}

inline Status FromRocks(const rocksdb::Status& s) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound();
  if (s.IsCorruption()) return Status::Corruption("rocksdb: " + s.ToString());
  return Status::IOError("rocksdb: " + s.ToString());
}

}  // namespace ringstore::rocks
