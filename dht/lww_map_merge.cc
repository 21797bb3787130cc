// MergeIntoEncoded: merges a few entries into a large encoded map without decoding it.
//
// A write to a directory bucket carries one or two entries, and the node merges them into the
// stored bucket, which may hold hundreds. Decoding that into an LwwMap (a tree node and two
// strings per entry) and encoding it again cost 85 us for 625 entries (2026-11-23); this
// copies the unchanged entries' bytes as they are instead. It reads only the canonical form
// that EncodeLwwMap writes (sorted names, smallest msgpack formats), so that its output is
// byte for byte what decoding, merging and encoding would give; on anything else it returns
// nullopt and the caller takes that slower path.
#include "dht/lww_map.h"

#include <algorithm>
#include <tuple>

namespace ringstore {
namespace {

// Reads msgpack values in their smallest encodings only.
class CanonicalReader {
 public:
  explicit CanonicalReader(std::string_view in) : in_(in) {}

  bool ArrayHeader(uint64_t* n) {
    if (pos_ >= in_.size()) return false;
    const uint8_t b = Byte(pos_);
    if ((b & 0xf0) == 0x90) {
      *n = b & 0x0f;
      return Take(1);
    }
    if (b == 0xdc) return Big(1, 2, n) && *n >= 16 && Take(3);
    if (b == 0xdd) return Big(1, 4, n) && *n > 0xffff && Take(5);
    return false;
  }
  bool Uint(uint64_t* v) {
    if (pos_ >= in_.size()) return false;
    const uint8_t b = Byte(pos_);
    if (b < 0x80) {
      *v = b;
      return Take(1);
    }
    if (b == 0xcc) return Big(1, 1, v) && *v >= 0x80 && Take(2);
    if (b == 0xcd) return Big(1, 2, v) && *v > 0xff && Take(3);
    if (b == 0xce) return Big(1, 4, v) && *v > 0xffff && Take(5);
    if (b == 0xcf) return Big(1, 8, v) && *v > 0xffffffffull && Take(9);
    return false;
  }
  bool Bool(bool* v) {
    if (pos_ >= in_.size() || (Byte(pos_) != 0xc2 && Byte(pos_) != 0xc3)) return false;
    *v = Byte(pos_) == 0xc3;
    return Take(1);
  }
  bool Bin(size_t max, std::string_view* v) {
    if (pos_ >= in_.size()) return false;
    const uint8_t b = Byte(pos_);
    uint64_t n = 0;
    size_t head = 0;
    if (b == 0xc4 && Big(1, 1, &n)) head = 2;
    else if (b == 0xc5 && Big(1, 2, &n) && n > 0xff) head = 3;
    else if (b == 0xc6 && Big(1, 4, &n) && n > 0xffff) head = 5;
    else return false;
    if (n > max || in_.size() - pos_ - head < n) return false;
    *v = in_.substr(pos_ + head, n);
    return Take(head + n);
  }
  size_t pos() const { return pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  uint8_t Byte(size_t at) const { return static_cast<uint8_t>(in_[at]); }
  // The big-endian unsigned of width bytes at pos_ + skip.
  bool Big(size_t skip, size_t width, uint64_t* v) const {
    if (in_.size() - pos_ < skip + width) return false;
    *v = 0;
    for (size_t i = 0; i < width; ++i) *v = (*v << 8) | Byte(pos_ + skip + i);
    return true;
  }
  bool Take(size_t n) {
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// One stored entry, its fields pointing into the stored bytes.
struct RawEntry {
  std::string_view bytes, name, payload;
  Timestamp ts = 0;
  bool deleted = false;
};

bool ReadEntry(CanonicalReader& r, std::string_view in, RawEntry* e) {
  const size_t start = r.pos();
  uint64_t fields = 0;
  if (!r.ArrayHeader(&fields) || fields != 4) return false;
  if (!r.Bin(kMaxMapNameBytes, &e->name) || !r.Uint(&e->ts) || !r.Bool(&e->deleted) ||
      !r.Bin(kMaxMapPayloadBytes, &e->payload)) {
    return false;
  }
  e->bytes = in.substr(start, r.pos() - start);
  return true;
}

}  // namespace

std::optional<std::string> MergeIntoEncoded(std::string_view stored, const LwwMap& from, Timestamp* newest) {
  CanonicalReader r(stored);
  uint64_t root = 0, version = 0, count = 0;
  if (!r.ArrayHeader(&root) || root != 2 || !r.Uint(&version) || version != kLwwMapFormatVersion ||
      !r.ArrayHeader(&count) || count > kMaxMapEntries) {
    return std::nullopt;
  }
  std::string body;
  body.reserve(stored.size() + from.size() * 64);
  uint64_t out_count = 0;
  Timestamp ts = 0;
  auto add = [&](std::string_view name, const MapEntry& e) {
    AppendLwwMapEntry(&body, name, e);
    ts = std::max(ts, e.ts);
    ++out_count;
  };
  auto next = from.begin();
  std::string_view previous;
  for (uint64_t i = 0; i < count; ++i) {
    RawEntry e;
    if (!ReadEntry(r, stored, &e) || (i > 0 && !(previous < e.name))) return std::nullopt;
    if (e.name == kMapClearName) return std::nullopt;  // a clear mark: the decoding path applies it
    previous = e.name;
    for (; next != from.end() && std::string_view(next->first) < e.name; ++next) add(next->first, next->second);
    if (next != from.end() && std::string_view(next->first) == e.name) {
      const MapEntry& in = next->second;
      ++next;
      // EntrySupersedes, with the stored side left in place. (Both payloads as string_view:
      // clang's libstdc++ tuple cannot compare a string with a string_view.)
      const std::string_view in_payload = in.payload;
      if (std::tie(in.ts, in.deleted, in_payload) > std::tie(e.ts, e.deleted, e.payload)) {
        add(e.name, in);
        continue;
      }
    }
    body.append(e.bytes);
    ts = std::max(ts, e.ts);
    ++out_count;
  }
  if (!r.done()) return std::nullopt;
  for (; next != from.end(); ++next) add(next->first, next->second);
  if (out_count > kMaxMapEntries) return std::nullopt;
  std::string out = EncodeLwwMapHeader(out_count);
  out.append(body);
  *newest = ts;
  return out;
}

}  // namespace ringstore
