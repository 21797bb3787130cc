// The on-disk record format (docs/storage-format.md): a 32-byte header followed by the value.
// The header carries its own checksum; the value is covered by the XXH3-64 checksum in the
// header. Decoding verifies both, so a corrupt record is reported, never returned.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "dht/record.h"
#include "dht/status.h"

namespace ringstore {

constexpr uint8_t kRecordFormatVersion = 1;
constexpr size_t kRecordHeaderBytes = 32;

// A decoded header: the record's metadata, and where its value lives.
struct StoredHeader {
  RecordMeta meta;
  // The value is not behind the header but under its own key (large values; see
  // rocksdb_store.h). Storage-internal: never on the wire.
  bool external = false;
};

// Header bytes for meta (size, checksum and flags as given).
std::string EncodeRecordHeader(const RecordMeta& meta, bool external = false);
// Header followed by the value.
std::string EncodeStoredRecord(const Record& record);
// Verifies the header checksum and format version.
Result<StoredHeader> DecodeStoredHeader(std::string_view bytes);
inline Result<RecordMeta> DecodeRecordHeader(std::string_view bytes) {
  auto h = DecodeStoredHeader(bytes);
  if (!h.ok()) return h.status();
  return h->meta;
}
// Checks value against the sizes and checksum in meta and builds the record.
Result<Record> AttachValue(const RecordMeta& meta, std::string_view value);
// Verifies the header and that the value matches its size and checksum.
Result<Record> DecodeStoredRecord(std::string_view bytes);

}  // namespace ringstore
