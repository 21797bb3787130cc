// The on-disk record format (docs/storage-format.md): a 32-byte header followed by the value.
// The header carries its own checksum; the value is covered by the XXH3-64 checksum in the
// header. Decoding verifies both, so a corrupt record is reported, never returned.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "dht/record.h"
#include "dht/status.h"
#include "storage/value_log.h"

namespace ringstore {

constexpr uint8_t kRecordFormatVersion = 1;
constexpr size_t kRecordHeaderBytes = 32;
// A record whose value is in the value log: the header, then the value's ValuePointer.
constexpr size_t kLogRecordBytes = kRecordHeaderBytes + 16;

// A decoded header: the record's metadata, and where its value lives.
struct StoredHeader {
  RecordMeta meta;
  // Where the value is, when it is not behind the header. Storage-internal: never on the wire.
  // external: under its own RocksDB key (large values written before the value log; only
  // read now). in_log: in the value log, at log.
  bool external = false;
  bool in_log = false;
  ValuePointer log;
};

// Header bytes for meta (size, checksum and flags as given); external marks the older
// layout, whose value lives under its own key.
std::string EncodeRecordHeader(const RecordMeta& meta, bool external = false);
// The kLogRecordBytes stored for a record whose value is in the value log at p.
std::string EncodeLogRecord(const RecordMeta& meta, ValuePointer p);
// Header followed by the value.
std::string EncodeStoredRecord(const Record& record);
// Verifies the header checksum and format version (a log record's checksum covers its
// pointer too).
Result<StoredHeader> DecodeStoredHeader(std::string_view bytes);
inline Result<RecordMeta> DecodeRecordHeader(std::string_view bytes) {
  auto h = DecodeStoredHeader(bytes);
  if (!h.ok()) return h.status();
  return h->meta;
}
// Checks value against the sizes and checksum in meta and builds the record.
Result<Record> AttachValue(const RecordMeta& meta, std::string_view value);
Result<Record> AttachValue(const RecordMeta& meta, std::string&& value);
// Verifies the header and that the value matches its size and checksum.
Result<Record> DecodeStoredRecord(std::string_view bytes);

}  // namespace ringstore
