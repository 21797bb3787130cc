#include "dht/frame.h"

#include <cstring>

#include "dht/checksum.h"
#include "dht/endian.h"

namespace ringstore {

uint32_t FrameChecksum(const char header_prefix[20], std::string_view body) {
  return FrameChecksumParts(header_prefix, {body});
}

uint32_t FrameChecksumParts(const char header_prefix[20], std::initializer_list<std::string_view> body) {
  const uint64_t seed = Checksum64(header_prefix, 20);
  return static_cast<uint32_t>(Checksum64Parts(body, seed));
}

void EncodeFrameHeader(uint16_t kind, uint64_t request_id, std::string_view body, uint8_t flags,
                       char out[kFrameHeaderBytes]) {
  EncodeFrameHeaderParts(kind, request_id, {body}, flags, out);
}

void EncodeFrameHeaderParts(uint16_t kind, uint64_t request_id, std::initializer_list<std::string_view> body,
                            uint8_t flags, char out[kFrameHeaderBytes]) {
  size_t len = 0;
  for (std::string_view p : body) len += p.size();
  PutLE(out, kFrameMagic, 4);
  out[4] = static_cast<char>(kProtocolVersion);
  out[5] = static_cast<char>(flags);
  PutLE(out + 6, kind, 2);
  PutLE(out + 8, request_id, 8);
  PutLE(out + 16, static_cast<uint32_t>(len), 4);
  PutLE(out + 20, FrameChecksumParts(out, body), 4);
}

std::string EncodeFrame(uint16_t kind, uint64_t request_id, std::string_view body, uint8_t flags) {
  std::string out(kFrameHeaderBytes + body.size(), '\0');
  EncodeFrameHeader(kind, request_id, body, flags, out.data());
  if (!body.empty()) std::memcpy(out.data() + kFrameHeaderBytes, body.data(), body.size());
  return out;
}

Status FrameDecoder::ParseHeader() {
  const char* p = header_raw_;
  header_.magic = static_cast<uint32_t>(GetLE(p, 4));
  header_.version = static_cast<uint8_t>(p[4]);
  header_.flags = static_cast<uint8_t>(p[5]);
  header_.kind = static_cast<uint16_t>(GetLE(p + 6, 2));
  header_.request_id = GetLE(p + 8, 8);
  header_.body_len = static_cast<uint32_t>(GetLE(p + 16, 4));
  header_.checksum = static_cast<uint32_t>(GetLE(p + 20, 4));
  if (header_.magic != kFrameMagic) return Status::ProtocolError("bad frame magic");
  if (header_.version != kProtocolVersion) {
    return Status::ProtocolError("unsupported protocol version " + std::to_string(header_.version));
  }
  if (header_.body_len > max_body_bytes_) {
    return Status::TooLarge("frame body of " + std::to_string(header_.body_len) +
                            " bytes exceeds the limit of " + std::to_string(max_body_bytes_));
  }
  return Status::Ok();
}

Status FrameDecoder::Feed(const char* data, size_t len) {
  while (len > 0) {
    size_t used = 0;
    if (Status s = FeedOne(data, len, &used); !s.ok()) return s;
    data += used;
    len -= used;
  }
  return broken_;
}

Status FrameDecoder::FeedOne(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (!broken_.ok()) return broken_;
  const size_t total = len;
  while (len > 0) {
    if (!have_header_) {
      const size_t need = kFrameHeaderBytes - buffer_.size();
      const size_t take = std::min(need, len);
      buffer_.append(data, take);
      data += take;
      len -= take;
      if (buffer_.size() < kFrameHeaderBytes) break;
      std::memcpy(header_raw_, buffer_.data(), kFrameHeaderBytes);
      buffer_.clear();
      if (Status s = ParseHeader(); !s.ok()) {
        broken_ = s;
        return s;
      }
      have_header_ = true;
      // Memory follows the bytes that actually arrive: a header alone claiming 64 MiB
      // reserves at most kInitialBodyReserveBytes.
      buffer_.reserve(std::min<size_t>(header_.body_len, kInitialBodyReserveBytes));
    }
    const size_t need = header_.body_len - buffer_.size();
    const size_t take = std::min(need, len);
    if (buffer_.size() + take > buffer_.capacity()) {
      // The body keeps coming: grow 8-fold rather than doubling, so that a large body is
      // moved once or twice on its way in instead of at every doubling.
      buffer_.reserve(std::min<size_t>(header_.body_len, std::max(buffer_.size() + take, buffer_.capacity() * 8)));
    }
    buffer_.append(data, take);
    data += take;
    len -= take;
    if (buffer_.size() < header_.body_len) break;
    if (FrameChecksum(header_raw_, buffer_) != header_.checksum) {
      broken_ = Status::Corruption("frame checksum mismatch");
      return broken_;
    }
    ready_.push_back(Frame{header_, std::move(buffer_)});
    buffer_ = std::string();
    have_header_ = false;
    break;  // one frame at a time
  }
  *consumed = total - len;
  return Status::Ok();
}

Frame FrameDecoder::Next() {
  Frame f = std::move(ready_.front());
  ready_.pop_front();
  return f;
}

}  // namespace ringstore
