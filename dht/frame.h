// The wire frame: a fixed 24-byte little-endian header followed by a msgpack body.
// See docs/wire-protocol.md for the normative layout. FrameDecoder turns a byte stream into
// frames and bounds every length before it allocates.
// Thread-safety: FrameDecoder is owned by one connection and used from one strand.
#pragma once

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "dht/status.h"

namespace ringstore {

constexpr uint32_t kFrameMagic = 0x52535452;  // on the wire (little-endian): bytes 52 54 53 52, "RTSR"
constexpr uint8_t kProtocolVersion = 1;
constexpr size_t kFrameHeaderBytes = 24;
// Largest object value, and the largest frame body (a value plus its message envelope).
constexpr size_t kMaxValueBytes = 64u << 20;
constexpr size_t kMaxFrameBodyBytes = kMaxValueBytes + (64u << 10);
// Until its HELLO is accepted a peer may send frames of at most this size, so that a stranger
// cannot make the node buffer 64 MiB per connection. Wait for HELLO_REPLY before sending more.
constexpr size_t kMaxHandshakeBodyBytes = 64u << 10;
// What the decoder reserves when a header arrives; the rest grows with the bytes received.
// (A value of up to this size, a chunk of 256 KiB say, is then received without being moved
// on its way in. Before its HELLO is accepted a peer's frames are at most
// kMaxHandshakeBodyBytes anyway.)
constexpr size_t kInitialBodyReserveBytes = 1u << 20;

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint8_t version = kProtocolVersion;
  uint8_t flags = 0;
  uint16_t kind = 0;
  uint64_t request_id = 0;
  uint32_t body_len = 0;
  uint32_t checksum = 0;  // low 32 bits of XXH3-64(body, seed = XXH3-64(header bytes 0..19))
};

struct Frame {
  FrameHeader header;
  std::string body;
};

// Fills in magic, version, body_len and checksum, and returns header + body as one buffer.
std::string EncodeFrame(uint16_t kind, uint64_t request_id, std::string_view body,
                        uint8_t flags = 0);
// Writes only the 24 header bytes for body.
void EncodeFrameHeader(uint16_t kind, uint64_t request_id, std::string_view body, uint8_t flags,
                       char out[kFrameHeaderBytes]);
// The same for a body made of parts, one after another, so that a large value can be sent
// from its own buffer instead of being copied into the frame.
void EncodeFrameHeaderParts(uint16_t kind, uint64_t request_id, std::initializer_list<std::string_view> body,
                            uint8_t flags, char out[kFrameHeaderBytes]);
uint32_t FrameChecksum(const char header_prefix[20], std::string_view body);
uint32_t FrameChecksumParts(const char header_prefix[20], std::initializer_list<std::string_view> body);

// One frame in three pieces: head (the 24 header bytes and the start of the body), then a
// value kept in its own buffer, which other frames may share (the same value sent to several
// replicas is not copied for each), then tail. head + *value + tail is the frame; value is
// null when the whole frame is in head. Sent as Transport::SendShared.
struct SharedFrame {
  std::string head;
  std::shared_ptr<const std::string> value;
  std::string tail;
};

class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_body_bytes = kMaxFrameBodyBytes)
      : max_body_bytes_(max_body_bytes) {}

  // Appends bytes from the stream. Complete frames become available through Next().
  // Returns a non-OK Status once the stream is broken (bad magic, unsupported version,
  // oversized length, checksum mismatch); the stream cannot be resynchronised after that.
  Status Feed(const char* data, size_t len);
  // Like Feed, but stops right after a frame completes, so the caller can act on it (for
  // example raise the frame limit after a HELLO) before the next header is judged.
  // *consumed tells how many bytes were taken.
  Status FeedOne(const char* data, size_t len, size_t* consumed);
  bool HasFrame() const { return !ready_.empty(); }
  Frame Next();
  // True when a partial frame is buffered: EOF now means a truncated frame.
  bool MidFrame() const { return !buffer_.empty() || have_header_; }
  // Bytes buffered for the frame being assembled.
  size_t buffered_bytes() const { return buffer_.size(); }
  // Applies to headers parsed from now on.
  void set_max_body_bytes(size_t n) { max_body_bytes_ = n; }

 private:
  Status ParseHeader();
  size_t max_body_bytes_;
  std::string buffer_;
  bool have_header_ = false;
  FrameHeader header_;
  char header_raw_[kFrameHeaderBytes];
  std::deque<Frame> ready_;
  Status broken_;
};

}  // namespace ringstore
