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

// Header bytes for meta (size, checksum and flags as given).
std::string EncodeRecordHeader(const RecordMeta& meta);
// Header followed by the value.
std::string EncodeStoredRecord(const Record& record);
// Verifies the header checksum and format version.
Result<RecordMeta> DecodeRecordHeader(std::string_view bytes);
// Verifies the header and that the value matches its size and checksum.
Result<Record> DecodeStoredRecord(std::string_view bytes);

}  // namespace ringstore
