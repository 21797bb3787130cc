#include "blockgateway/nbd_protocol.h"

#include <algorithm>
#include <optional>
#include <string_view>

#include "dht/endian.h"

namespace ringstore::block::nbd {

namespace {

constexpr size_t kOptionHeaderBytes = 16;
constexpr size_t kRequestHeaderBytes = 28;
constexpr size_t kCompactAt = 1u << 20;  // drop consumed input once this much has been read

std::string Be(uint64_t v, int n) {
  std::string s(static_cast<size_t>(n), '\0');
  PutBE(s.data(), v, n);
  return s;
}

}  // namespace

NbdSession::NbdSession(Hooks hooks, SessionLimits limits) : hooks_(std::move(hooks)), limits_(limits) {}

NbdSession::~NbdSession() { *alive_ = false; }

void NbdSession::Start() {
  Emit(Be(kNbdMagic, 8) + Be(kOptMagic, 8) + Be(kFlagFixedNewstyle | kFlagNoZeroes, 2));
}

uint16_t NbdSession::TransmissionFlags() const {
  uint16_t f = kHasFlags | kSendFlush | kSendFua | kCanMultiConn;
  if (export_.read_only) f |= kReadOnly;
  else f |= kSendTrim | kSendWriteZeroes;
  return f;
}

void NbdSession::Emit(std::string bytes) {
  out_bytes_ += bytes.size();
  out_.push_back(std::move(bytes));
}

std::vector<std::string> NbdSession::TakeOutput() {
  std::vector<std::string> v(std::make_move_iterator(out_.begin()), std::make_move_iterator(out_.end()));
  out_.clear();
  out_bytes_ = 0;
  // Room in the output may let parsing go on.
  Process();
  return v;
}

bool NbdSession::WantsInput() const {
  switch (state_) {
    case State::kStartTls:
    case State::kTlsHandshake:
    case State::kWaiting:
    case State::kDisconnecting:
    case State::kClosed:
      return false;
    default:
      return in_flight_ < limits_.max_in_flight && in_flight_bytes_ < limits_.max_in_flight_bytes &&
             out_bytes_ < limits_.max_output_bytes;
  }
}

bool NbdSession::Done() const {
  return state_ == State::kClosed || (state_ == State::kDisconnecting && in_flight_ == 0);
}

void NbdSession::Close(std::string reason) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  close_reason_ = std::move(reason);
  in_.clear();
  in_pos_ = 0;
}

void NbdSession::Feed(const char* data, size_t n) {
  if (state_ == State::kClosed || state_ == State::kDisconnecting) return;
  in_.append(data, n);
  Process();
}

void NbdSession::Process() {
  if (processing_) {
    again_ = true;
    return;
  }
  processing_ = true;
  do {
    again_ = false;
    while (WantsInput() && Step()) {
    }
  } while (again_);
  processing_ = false;
  if (in_pos_ >= kCompactAt || (in_pos_ > 0 && in_pos_ == in_.size())) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
}

bool NbdSession::Step() {
  const char* p = in_.data() + in_pos_;
  switch (state_) {
    case State::kClientFlags: {
      if (Available() < 4) return false;
      const uint32_t flags = static_cast<uint32_t>(GetBE(p, 4));
      in_pos_ += 4;
      if ((flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) {
        Close("unknown client flags");
        return false;
      }
      no_zeroes_ = (flags & kClientNoZeroes) != 0;
      state_ = State::kOptionHeader;
      return true;
    }
    case State::kOptionHeader: {
      if (Available() < kOptionHeaderBytes) return false;
      if (GetBE(p, 8) != kOptMagic) {
        Close("bad option magic");
        return false;
      }
      if (++options_seen_ > kMaxOptions) {
        Close("too many options");
        return false;
      }
      cur_option_ = static_cast<uint32_t>(GetBE(p + 8, 4));
      cur_length_ = static_cast<uint32_t>(GetBE(p + 12, 4));
      in_pos_ += kOptionHeaderBytes;
      if (cur_length_ > kMaxOptionBytes) {
        skip_left_ = cur_length_;
        state_ = State::kSkipOption;
      } else {
        state_ = State::kOptionData;
      }
      return true;
    }
    case State::kSkipOption: {
      const uint64_t n = std::min<uint64_t>(skip_left_, Available());
      in_pos_ += n;
      skip_left_ -= n;
      if (skip_left_ > 0) return false;
      state_ = State::kOptionHeader;
      if (cur_option_ == kOptExportName) {
        Close("export name too long");  // EXPORT_NAME has no error reply
        return false;
      }
      OptionReply(cur_option_, kRepErrTooBig, "option data too large");
      return true;
    }
    case State::kOptionData: {
      if (Available() < cur_length_) return false;
      std::string data(p, cur_length_);
      in_pos_ += cur_length_;
      state_ = State::kOptionHeader;
      HandleOption(cur_option_, std::move(data));
      return true;
    }
    case State::kTransmission: {
      if (Available() < kRequestHeaderBytes) return false;
      if (GetBE(p, 4) != kRequestMagic) {
        Close("bad request magic");
        return false;
      }
      Request r;
      r.flags = static_cast<uint16_t>(GetBE(p + 4, 2));
      r.type = static_cast<uint16_t>(GetBE(p + 6, 2));
      r.handle = GetBE(p + 8, 8);
      r.offset = GetBE(p + 16, 8);
      r.length = static_cast<uint32_t>(GetBE(p + 24, 4));
      if (r.type == kCmdWrite) {
        if (r.length > kMaxPayload) {
          // Too large to buffer: skip the payload, then answer.
          in_pos_ += kRequestHeaderBytes;
          skip_left_ = r.length;
          skip_handle_ = r.handle;
          skip_error_ = export_.read_only ? kEperm : kEinval;
          state_ = State::kSkipPayload;
          return true;
        }
        if (Available() < kRequestHeaderBytes + r.length) {
          in_.reserve(in_pos_ + kRequestHeaderBytes + r.length);
          return false;
        }
        r.payload.assign(p + kRequestHeaderBytes, r.length);
        in_pos_ += r.length;
      }
      in_pos_ += kRequestHeaderBytes;
      HandleRequest(std::move(r));
      return true;
    }
    case State::kSkipPayload: {
      const uint64_t n = std::min<uint64_t>(skip_left_, Available());
      in_pos_ += n;
      skip_left_ -= n;
      if (skip_left_ > 0) return false;
      state_ = State::kTransmission;
      SimpleReply(skip_handle_, skip_error_);
      return true;
    }
    case State::kWaiting:
    case State::kDisconnecting:
    case State::kClosed:
    case State::kStartTls:
    case State::kTlsHandshake:
      return false;
  }
  return false;
}

void NbdSession::OptionReply(uint32_t option, uint32_t type, std::string data) {
  Emit(Be(kOptReplyMagic, 8) + Be(option, 4) + Be(type, 4) + Be(data.size(), 4) + data);
}

std::string NbdSession::BeginTls() {
  std::string rest = in_.substr(in_pos_);
  in_.clear();
  in_pos_ = 0;
  state_ = State::kTlsHandshake;
  return rest;
}

void NbdSession::TlsEstablished() {
  if (state_ != State::kTlsHandshake) return;
  tls_active_ = true;
  state_ = State::kOptionHeader;
  Process();
}

void NbdSession::HandleOption(uint32_t option, std::string data) {
  if (limits_.require_tls && !tls_active_ && option != kOptStartTls && option != kOptAbort) {
    ++tls_refusals_;
    if (option == kOptExportName) return Close("TLS is required, and the client sent EXPORT_NAME before STARTTLS");
    return OptionReply(option, kRepErrTlsReqd, "TLS is required: send NBD_OPT_STARTTLS first");
  }
  switch (option) {
    case kOptStartTls:
      if (!limits_.require_tls) return OptionReply(option, kRepErrUnsup, "this server does not offer TLS");
      if (tls_active_) return OptionReply(option, kRepErrInvalid, "TLS is already on");
      if (!data.empty()) return OptionReply(option, kRepErrInvalid, "STARTTLS takes no data");
      OptionReply(option, kRepAck);
      state_ = State::kStartTls;
      return;
    case kOptExportName: {
      state_ = State::kWaiting;
      std::weak_ptr<bool> alive = alive_;
      hooks_.lookup(data, [this, alive, name = data](Result<ExportInfo> info) {
        if (alive.expired() || state_ != State::kWaiting) return;
        if (!info.ok()) return Close("no export named '" + name + "': " + info.status().ToString());
        export_ = *info;
        std::string reply = Be(export_.size, 8) + Be(TransmissionFlags(), 2);
        if (!no_zeroes_) reply.append(124, '\0');
        Emit(std::move(reply));
        EnterTransmission(name);
        Process();
      });
      return;
    }
    case kOptAbort:
      OptionReply(option, kRepAck);
      return Close("client aborted");
    case kOptList: {
      if (!data.empty()) return OptionReply(option, kRepErrInvalid, "LIST takes no data");
      state_ = State::kWaiting;
      std::weak_ptr<bool> alive = alive_;
      hooks_.list([this, alive, option](Result<std::vector<std::string>> names) {
        if (alive.expired() || state_ != State::kWaiting) return;
        state_ = State::kOptionHeader;
        if (!names.ok()) {
          OptionReply(option, kRepErrShutdown, names.status().ToString());
        } else {
          for (const auto& n : *names) OptionReply(option, kRepServer, Be(n.size(), 4) + n);
          OptionReply(option, kRepAck);
        }
        Process();
      });
      return;
    }
    case kOptInfo:
    case kOptGo:
      return HandleInfoGo(option, data);
    case kOptStructuredReply:
      if (!data.empty()) return OptionReply(option, kRepErrInvalid, "STRUCTURED_REPLY takes no data");
      structured_ = true;
      return OptionReply(option, kRepAck);
    case kOptListMetaContext:
    case kOptSetMetaContext:
      return HandleMetaContext(option, data);
    default:
      return OptionReply(option, kRepErrUnsup, "option not supported");
  }
}

void NbdSession::HandleInfoGo(uint32_t option, const std::string& data) {
  if (data.size() < 6) return OptionReply(option, kRepErrInvalid, "option data too short");
  const uint64_t name_len = GetBE(data.data(), 4);
  if (name_len > data.size() - 6 || name_len > kMaxNameBytes) {
    return OptionReply(option, kRepErrInvalid, "bad name length");
  }
  const uint64_t requests = GetBE(data.data() + 4 + name_len, 2);
  if (data.size() != 4 + name_len + 2 + 2 * requests) {
    return OptionReply(option, kRepErrInvalid, "bad information request count");
  }
  std::string name = data.substr(4, name_len);
  state_ = State::kWaiting;
  std::weak_ptr<bool> alive = alive_;
  hooks_.lookup(name, [this, alive, option, name](Result<ExportInfo> info) {
    if (alive.expired() || state_ != State::kWaiting) return;
    state_ = State::kOptionHeader;
    if (!info.ok()) {
      // Unknown, misnamed or unreadable: the export is not available. SHUTDOWN would tell
      // the client the server is going away.
      const uint32_t type = info.status().code() == Code::kShuttingDown ? kRepErrShutdown : kRepErrUnknown;
      OptionReply(option, type, info.status().message());
      return Process();
    }
    const ExportInfo saved = export_;
    export_ = *info;
    OptionReply(option, kRepInfo, Be(kInfoExport, 2) + Be(export_.size, 8) + Be(TransmissionFlags(), 2));
    // The default constraints, stated: any alignment, 4 KiB preferred, 32 MiB payloads.
    OptionReply(option, kRepInfo, Be(kInfoBlockSize, 2) + Be(1, 4) + Be(4096, 4) + Be(kMaxPayload, 4));
    OptionReply(option, kRepAck);
    if (option == kOptGo) {
      EnterTransmission(name);
    } else {
      export_ = saved;
    }
    Process();
  });
}

void NbdSession::EnterTransmission(const std::string& name) {
  export_name_ = name;
  if (name != meta_export_) allocation_ = false;
  state_ = State::kTransmission;
}

void NbdSession::HandleMetaContext(uint32_t option, const std::string& data) {
  const bool set = option == kOptSetMetaContext;
  if (set) {  // replaces the selection, also when it fails
    allocation_ = false;
    meta_export_.clear();
  }
  if (!structured_) return OptionReply(option, kRepErrInvalid, "negotiate structured replies first");
  // Export name, then the queries: each a 32-bit length and a string.
  auto invalid = [&] { OptionReply(option, kRepErrInvalid, "malformed metadata context request"); };
  if (data.size() < 8) return invalid();
  const uint64_t name_len = GetBE(data.data(), 4);
  if (name_len > kMaxNameBytes || name_len > data.size() - 8) return invalid();
  std::string name = data.substr(4, name_len);
  size_t pos = 4 + name_len;
  const uint64_t queries = GetBE(data.data() + pos, 4);
  pos += 4;
  // LIST with no query lists every context; base: lists the base namespace. Queries of
  // other namespaces, and leaves this server does not know, are ignored.
  bool allocation = !set && queries == 0;
  for (uint64_t i = 0; i < queries; ++i) {
    if (data.size() - pos < 4) return invalid();
    const uint64_t len = GetBE(data.data() + pos, 4);
    pos += 4;
    if (len > data.size() - pos) return invalid();
    const std::string_view q(data.data() + pos, len);
    pos += len;
    if (q == kAllocationContext || (!set && q == "base:")) allocation = true;
  }
  if (pos != data.size()) return invalid();
  if (allocation) {
    OptionReply(option, kRepMetaContext, Be(set ? kAllocationContextId : 0, 4) + kAllocationContext);
    if (set) {
      allocation_ = true;
      meta_export_ = std::move(name);
    }
  }
  OptionReply(option, kRepAck);
}

void NbdSession::SimpleReply(uint64_t handle, uint32_t error) {
  Emit(Be(kSimpleReplyMagic, 4) + Be(error, 4) + Be(handle, 8));
}

void NbdSession::Chunk(uint64_t handle, uint16_t type, std::string head, std::string tail) {
  Emit(Be(kStructuredReplyMagic, 4) + Be(kReplyFlagDone, 2) + Be(type, 2) + Be(handle, 8) +
       Be(head.size() + tail.size(), 4) + head);
  if (!tail.empty()) Emit(std::move(tail));
}

void NbdSession::ErrorReply(uint64_t handle, uint16_t type, uint32_t error) {
  if (structured_ && (type == kCmdRead || type == kCmdBlockStatus)) {
    return Chunk(handle, kReplyError, Be(error, 4) + Be(0, 2));  // no message
  }
  SimpleReply(handle, error);
}

void NbdSession::HandleRequest(Request r) {
  const uint64_t end = r.offset + r.length;
  const bool wraps = end < r.offset;
  const bool in_range = !wraps && end <= export_.size;
  const uint16_t allowed = kCmdFlagFua | kCmdFlagNoHole | (r.type == kCmdBlockStatus ? kCmdFlagReqOne : 0);
  if ((r.flags & ~allowed) != 0) {
    return ErrorReply(r.handle, r.type, kEinval);  // DF and FAST_ZERO were not offered
  }
  uint32_t error = kOk;
  switch (r.type) {
    case kCmdDisc:
      state_ = State::kDisconnecting;
      in_.clear();
      in_pos_ = 0;
      return;
    case kCmdRead:
      if (r.length > kMaxPayload || !in_range) error = kEinval;
      break;
    case kCmdWrite:
      if (export_.read_only) error = kEperm;
      else if (!in_range) error = kEnospc;
      break;
    case kCmdTrim:
      if (export_.read_only) error = kEperm;
      else if (!in_range) error = kEinval;
      break;
    case kCmdWriteZeroes:
      if (export_.read_only) error = kEperm;
      else if (!in_range) error = kEnospc;
      break;
    case kCmdFlush:
      break;
    case kCmdBlockStatus:
      if (!allocation_ || r.length == 0 || !in_range) error = kEinval;
      break;
    default:
      error = kEinval;  // CACHE and unknown commands were not offered
  }
  if (error != kOk) return ErrorReply(r.handle, r.type, error);
  const uint64_t bytes = r.type == kCmdRead ? r.length : r.payload.size();
  ++in_flight_;
  in_flight_bytes_ += bytes;
  r.id = ++next_id_;
  charges_.emplace(r.id, Charge{r.handle, bytes, r.type, r.offset, r.length, r.req_one()});
  hooks_.request(std::move(r));
}

std::optional<NbdSession::Charge> NbdSession::TakeCharge(uint64_t id) {
  auto it = charges_.find(id);
  if (it == charges_.end()) return std::nullopt;  // not a request of ours
  const Charge c = it->second;
  in_flight_bytes_ -= c.bytes;
  charges_.erase(it);
  --in_flight_;
  return c;
}

void NbdSession::Reply(uint64_t id, uint32_t error, std::string data) {
  const std::optional<Charge> c = TakeCharge(id);
  if (!c || state_ == State::kClosed) return;
  const uint64_t handle = c->handle;
  if (c->type == kCmdBlockStatus) {
    ErrorReply(handle, c->type, error != kOk ? error : kEio);  // answered without extents
  } else if (error != kOk) {
    ErrorReply(handle, c->type, error);
  } else if (structured_ && c->type == kCmdRead) {
    if (data.empty()) Chunk(handle, kReplyNone, {});
    else Chunk(handle, kReplyOffsetData, Be(c->offset, 8), std::move(data));
  } else {
    SimpleReply(handle, kOk);
    if (!data.empty()) Emit(std::move(data));
  }
  Process();
}

void NbdSession::ReplyExtents(uint64_t id, uint32_t error, std::vector<Extent> extents) {
  const std::optional<Charge> found = TakeCharge(id);
  if (!found || state_ == State::kClosed) return;
  const Charge& c = *found;
  const uint64_t handle = c.handle;
  std::string payload = Be(kAllocationContextId, 4);
  uint64_t covered = 0;
  for (const Extent& e : extents) {
    if (e.length == 0) continue;
    const uint32_t length = c.req_one ? std::min(e.length, c.length) : e.length;
    payload += Be(length, 4) + Be(e.flags, 4);
    covered += length;
    if (c.req_one || covered >= c.length) break;
  }
  if (c.type != kCmdBlockStatus || error != kOk || covered == 0) {
    ErrorReply(handle, c.type, error != kOk ? error : kEio);
    return Process();
  }
  Chunk(handle, kReplyBlockStatus, std::move(payload));
  Process();
}

}  // namespace ringstore::block::nbd
