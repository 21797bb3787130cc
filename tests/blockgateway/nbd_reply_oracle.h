// The NBD fuzz test's oracle over everything an NbdSession sent: the greeting, option
// replies, the export reply or GO's ACK, then simple replies and structured chunks. Only
// the test's own replies are OK, and they come in the order it gave them, with their
// payloads; a read is answered in a chunk once structured replies were negotiated; block
// status extents are nonzero, end at the request's end, and are one for REQ_ONE.
// Thread-safety: a pure function.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "blockgateway/nbd_protocol.h"
#include "dht/endian.h"
#include "tests/blockgateway/nbd_test_support.h"

namespace ringstore::block::nbd::testing {

// A reply the test gave, in order.
struct OurReply {
  uint64_t handle;
  uint32_t error;
  size_t bytes;  // of a read's data
  uint16_t type;
  uint32_t length;  // of the request
  bool req_one;
};

struct ReplyStream {
  std::string failure;  // empty: every rule held
  bool transmitted = false;
  size_t error_replies = 0, block_statuses = 0;
};

// out_: what the session sent; input_: what it was fed; structured: whether the session
// negotiated structured replies; ours_: the test's replies, in order.
inline ReplyStream CheckReplyStream(const std::string& out_, const std::string& input_, bool structured,
                                    const std::vector<OurReply>& ours_) {
  ReplyStream r;
  auto Fail = [&r](const std::string& what) {
    if (r.failure.empty()) r.failure = what;
    return r;
  };
  if (out_.compare(0, 18, Greeting()) != 0) return Fail("output does not start with the greeting");
  size_t p = 18;
  auto have = [&](size_t n) { return out_.size() - p >= n; };
  const bool no_zeroes = input_.size() >= 4 && (GetBE(input_.data(), 4) & kClientNoZeroes) != 0;
  bool transmission = false;
  while (!transmission && p < out_.size()) {
    if (have(8) && GetBE(out_.data() + p, 8) == kOptReplyMagic) {
      if (!have(20)) return Fail("truncated option reply");
      const uint32_t option = static_cast<uint32_t>(GetBE(out_.data() + p + 8, 4));
      const uint32_t type = static_cast<uint32_t>(GetBE(out_.data() + p + 12, 4));
      const uint64_t len = GetBE(out_.data() + p + 16, 4);
      static const std::set<uint32_t> kTypes = {kRepAck,        kRepServer,      kRepInfo,      kRepMetaContext,
                                                kRepErrUnsup,   kRepErrInvalid,  kRepErrUnknown, kRepErrShutdown,
                                                kRepErrTooBig};
      if (kTypes.count(type) == 0) return Fail("unknown option reply type");
      if (!have(20 + len)) return Fail("truncated option reply data");
      p += 20 + len;
      if (option == kOptGo && type == kRepAck) transmission = r.transmitted = true;
      if (option == kOptAbort && type == kRepAck) {
        if (p != out_.size()) Fail("output after ABORT's ACK");
        return r;
      }
    } else {
      // EXPORT_NAME's reply: size, flags, maybe zeroes.
      const size_t n = no_zeroes ? 10 : 134;
      if (!have(n)) return Fail("truncated export reply");
      const uint64_t size = GetBE(out_.data() + p, 8);
      if (size != 64u << 10 && size != 8u << 10 && size != 1001) return Fail("bad export size");
      if (!no_zeroes && out_.compare(p + 10, 124, std::string(124, '\0')) != 0) return Fail("bad zeroes");
      p += n;
      transmission = r.transmitted = true;
    }
  }
  // Only our replies are OK; the session's own are errors. Reads (and block status) are
  // answered in structured chunks once those were negotiated, everything else simply.
  size_t ours = 0;
  auto next_ok = [&](uint64_t handle) -> const OurReply* {
    while (ours < ours_.size() && ours_[ours].error != kOk) ++ours;
    if (ours >= ours_.size()) return Fail("an OK reply we did not give"), nullptr;
    if (ours_[ours].handle != handle) return Fail("OK reply with the wrong handle"), nullptr;
    return &ours_[ours++];
  };
  auto known_error = [](uint32_t e) { return e == kEio || e == kEnospc || e == kEinval || e == kEperm; };
  while (p < out_.size()) {
    if (!have(4)) return Fail("truncated reply");
    const uint32_t magic = static_cast<uint32_t>(GetBE(out_.data() + p, 4));
    if (magic == kStructuredReplyMagic) {
      if (!structured) return Fail("a structured reply that was not negotiated");
      if (!have(20)) return Fail("truncated chunk header");
      const uint16_t flags = static_cast<uint16_t>(GetBE(out_.data() + p + 4, 2));
      const uint16_t type = static_cast<uint16_t>(GetBE(out_.data() + p + 6, 2));
      const uint64_t handle = GetBE(out_.data() + p + 8, 8);
      const uint64_t len = GetBE(out_.data() + p + 16, 4);
      if (!have(20 + len)) return Fail("truncated chunk payload");
      const char* payload = out_.data() + p + 20;
      p += 20 + len;
      if (flags != kReplyFlagDone) return Fail("a reply of more than one chunk");
      if (type == kReplyError) {
        if (len < 6 || GetBE(payload + 4, 2) > len - 6) return Fail("malformed error chunk");
        if (!known_error(static_cast<uint32_t>(GetBE(payload, 4)))) return Fail("unexpected error code");
        ++r.error_replies;
        continue;
      }
      const OurReply* o = next_ok(handle);
      if (o == nullptr) return r;
      if (type == kReplyOffsetData) {
        if (o->type != kCmdRead || len != 8 + o->bytes || o->bytes == 0) return Fail("bad data chunk");
      } else if (type == kReplyNone) {
        if (o->type != kCmdRead || len != 0 || o->bytes != 0) return Fail("bad none chunk");
      } else if (type == kReplyBlockStatus) {
        if (o->type != kCmdBlockStatus || len < 12 || (len - 4) % 8 != 0 || GetBE(payload, 4) != kAllocationContextId) {
          return Fail("bad block status chunk");
        }
        // Nonzero extents; all but the last end before the request's end; REQ_ONE: one,
        // no longer than the request.
        const size_t n = (len - 4) / 8;
        uint64_t sum = 0;
        for (size_t k = 0; k < n; ++k) {
          const uint64_t e = GetBE(payload + 4 + 8 * k, 4);
          if (e == 0) return Fail("an empty extent");
          if (k + 1 < n && sum + e >= o->length) return Fail("extents past the request's end");
          sum += e;
        }
        if (o->req_one && (n != 1 || sum > o->length)) return Fail("REQ_ONE answered with more");
        ++r.block_statuses;
      } else {
        return Fail("unknown chunk type");
      }
      continue;
    }
    if (magic != kSimpleReplyMagic) return Fail("bad reply magic");
    if (!have(16)) return Fail("truncated simple reply");
    const uint32_t error = static_cast<uint32_t>(GetBE(out_.data() + p + 4, 4));
    const uint64_t handle = GetBE(out_.data() + p + 8, 8);
    p += 16;
    if (error == kOk) {
      const OurReply* o = next_ok(handle);
      if (o == nullptr) return r;
      if (o->type == kCmdBlockStatus || (structured && o->type == kCmdRead)) return Fail("a simple reply that must be structured");
      if (!have(o->bytes)) return Fail("truncated read payload");
      p += o->bytes;
    } else if (!known_error(error)) {
      return Fail("unexpected error code");
    } else {
      ++r.error_replies;
    }
  }
  while (ours < ours_.size() && ours_[ours].error != kOk) ++ours;
  if (ours != ours_.size()) Fail("an OK reply we gave is missing");
  return r;
}

}  // namespace ringstore::block::nbd::testing
