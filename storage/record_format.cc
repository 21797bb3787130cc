#include "storage/record_format.h"

#include <cstring>

#include "dht/checksum.h"
#include "dht/endian.h"

namespace ringstore {
namespace {

constexpr uint8_t kStorageExternal = 1;  // header byte 2, bit 0
constexpr uint8_t kStorageInLog = 2;     // header byte 2, bit 1

// Checksum of the header (and a log record's pointer: len bytes in all) with its own
// checksum field (bytes 4..7) left out.
uint32_t HeaderChecksum(const char* h, size_t len) {
  char tmp[kLogRecordBytes];
  std::memcpy(tmp, h, len);
  std::memset(tmp + 4, 0, 4);
  return static_cast<uint32_t>(Checksum64(tmp, len, /*seed=*/0x5245434f5244));
}

std::string Encode(const RecordMeta& meta, uint8_t storage_flags, const ValuePointer* p) {
  std::string h(p ? kLogRecordBytes : kRecordHeaderBytes, '\0');
  h[0] = static_cast<char>(kRecordFormatVersion);
  h[1] = static_cast<char>(meta.flags & 0xff);
  h[2] = static_cast<char>(storage_flags);
  h[3] = static_cast<char>(meta.replicas());
  PutLE(h.data() + 8, meta.ts, 8);
  PutLE(h.data() + 16, meta.size, 8);
  PutLE(h.data() + 24, meta.checksum, 8);
  if (p) {
    PutLE(h.data() + 32, p->segment, 8);
    PutLE(h.data() + 40, p->offset, 8);
  }
  PutLE(h.data() + 4, HeaderChecksum(h.data(), h.size()), 4);
  return h;
}

}  // namespace

std::string EncodeRecordHeader(const RecordMeta& meta, bool external) {
  return Encode(meta, external ? kStorageExternal : 0, nullptr);
}

std::string EncodeLogRecord(const RecordMeta& meta, ValuePointer p) { return Encode(meta, kStorageInLog, &p); }

std::string EncodeStoredRecord(const Record& record) {
  std::string out;
  out.reserve(kRecordHeaderBytes + record.value.size());
  out = EncodeRecordHeader(record.meta);
  out.append(record.value);
  return out;
}

Result<StoredHeader> DecodeStoredHeader(std::string_view bytes) {
  if (bytes.size() < kRecordHeaderBytes) return Status::Corruption("record shorter than its header");
  const char* h = bytes.data();
  const bool in_log = (static_cast<uint8_t>(h[2]) & kStorageInLog) != 0;
  if (in_log && bytes.size() < kLogRecordBytes) return Status::Corruption("record shorter than its header");
  if (static_cast<uint32_t>(GetLE(h + 4, 4)) != HeaderChecksum(h, in_log ? kLogRecordBytes : kRecordHeaderBytes)) {
    return Status::Corruption("record header checksum mismatch");
  }
  if (static_cast<uint8_t>(h[0]) != kRecordFormatVersion) {
    return Status::Corruption("unknown record format version " + std::to_string(uint8_t(h[0])));
  }
  StoredHeader out;
  out.meta.flags = static_cast<uint8_t>(h[1]);
  out.meta.set_replicas(static_cast<uint8_t>(h[3]));
  out.external = (static_cast<uint8_t>(h[2]) & kStorageExternal) != 0;
  out.in_log = in_log;
  if (in_log) out.log = ValuePointer{GetLE(h + 32, 8), GetLE(h + 40, 8)};
  out.meta.ts = GetLE(h + 8, 8);
  out.meta.size = GetLE(h + 16, 8);
  out.meta.checksum = GetLE(h + 24, 8);
  return out;
}

Result<Record> AttachValue(const RecordMeta& meta, std::string_view value) {
  if (value.size() != meta.size) return Status::Corruption("record value has the wrong size");
  if (Checksum64(value) != meta.checksum) return Status::Corruption("record value checksum mismatch");
  return Record{meta, std::string(value)};
}

Result<Record> AttachValue(const RecordMeta& meta, std::string&& value) {
  if (value.size() != meta.size) return Status::Corruption("record value has the wrong size");
  if (Checksum64(value) != meta.checksum) return Status::Corruption("record value checksum mismatch");
  return Record{meta, std::move(value)};
}

Result<Record> DecodeStoredRecord(std::string_view bytes) {
  auto h = DecodeStoredHeader(bytes);
  if (!h.ok()) return h.status();
  if (h->external || h->in_log) return Status::Corruption("record value is stored apart from its header");
  return AttachValue(h->meta, bytes.substr(kRecordHeaderBytes));
}

}  // namespace ringstore
