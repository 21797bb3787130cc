// NbdSession: the server side of one NBD connection as a byte-in, byte-out state machine with
// no I/O of its own (NetworkBlockDevice/nbd doc/proto.md). The connection adapter feeds it the
// bytes it reads and sends what TakeOutput returns; the fuzz test drives it the same way.
//
// Handshake: fixed newstyle with NO_ZEROES. Options EXPORT_NAME, INFO and GO (INFO_EXPORT and
// INFO_BLOCK_SIZE), LIST, ABORT, STRUCTURED_REPLY, and LIST_META_CONTEXT and
// SET_META_CONTEXT with the one context base:allocation; any other option gets
// REP_ERR_UNSUP and haggling goes on.
// Transmission: pipelined and answered in any order. READ, WRITE, FLUSH, TRIM, WRITE_ZEROES
// and DISC, with FUA, and BLOCK_STATUS (with REQ_ONE) once base:allocation was selected for
// the export. Simple replies, which the kernel client needs, unless the client negotiated
// structured replies: then READ is answered with one OFFSET_DATA chunk (or NONE for zero
// bytes, an ERROR chunk on failure) and BLOCK_STATUS with one BLOCK_STATUS chunk; other
// commands keep simple replies, as the protocol allows. A request that is well framed but
// wrong (bad range, unknown command or flag, a write to a read-only export, a payload over
// 32 MiB, BLOCK_STATUS with no context selected) gets its NBD error and the connection goes
// on; only broken framing (bad magic, unknown client flags) closes it.
//
// Ownership: the session owns its buffers. Hooks are called on the caller's strand and may
// answer at once or later (Reply, and the lookup/list callbacks).
// Thread-safety: strand-confined.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dht/status.h"

namespace ringstore::block::nbd {

// Protocol values.
constexpr uint64_t kNbdMagic = 0x4e42444d41474943ull;     // "NBDMAGIC"
constexpr uint64_t kOptMagic = 0x49484156454F5054ull;     // "IHAVEOPT"
constexpr uint64_t kOptReplyMagic = 0x3e889045565a9ull;
constexpr uint32_t kRequestMagic = 0x25609513u;
constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
constexpr uint32_t kStructuredReplyMagic = 0x668e33efu;

constexpr uint16_t kFlagFixedNewstyle = 1, kFlagNoZeroes = 2;
constexpr uint32_t kClientFixedNewstyle = 1, kClientNoZeroes = 2;

enum Option : uint32_t {
  kOptExportName = 1, kOptAbort = 2, kOptList = 3, kOptStartTls = 5, kOptInfo = 6, kOptGo = 7,
  kOptStructuredReply = 8, kOptListMetaContext = 9, kOptSetMetaContext = 10,
};
enum OptReply : uint32_t {
  kRepAck = 1, kRepServer = 2, kRepInfo = 3, kRepMetaContext = 4,
  kRepErrUnsup = 0x80000001u, kRepErrPolicy = 0x80000002u, kRepErrInvalid = 0x80000003u, kRepErrTlsReqd = 0x80000005u,
  kRepErrUnknown = 0x80000006u, kRepErrShutdown = 0x80000007u, kRepErrTooBig = 0x80000009u,
};
enum Info : uint16_t { kInfoExport = 0, kInfoName = 1, kInfoDescription = 2, kInfoBlockSize = 3 };

enum TransmissionFlag : uint16_t {
  kHasFlags = 1 << 0, kReadOnly = 1 << 1, kSendFlush = 1 << 2, kSendFua = 1 << 3,
  kSendTrim = 1 << 5, kSendWriteZeroes = 1 << 6, kCanMultiConn = 1 << 8,
};
enum Command : uint16_t {
  kCmdRead = 0, kCmdWrite = 1, kCmdDisc = 2, kCmdFlush = 3, kCmdTrim = 4, kCmdCache = 5,
  kCmdWriteZeroes = 6, kCmdBlockStatus = 7,
};
enum CommandFlag : uint16_t { kCmdFlagFua = 1 << 0, kCmdFlagNoHole = 1 << 1, kCmdFlagReqOne = 1 << 3 };
// Structured replies: chunk types, the flag of a reply's last chunk.
enum ReplyType : uint16_t { kReplyNone = 0, kReplyOffsetData = 1, kReplyBlockStatus = 5, kReplyError = 0x8001 };
constexpr uint16_t kReplyFlagDone = 1;
// The base:allocation context: its name, the id SET_META_CONTEXT gives it, its flags.
constexpr char kAllocationContext[] = "base:allocation";
constexpr uint32_t kAllocationContextId = 1;
enum AllocationFlag : uint32_t { kStateHole = 1, kStateZero = 2 };
enum Error : uint32_t {
  kOk = 0, kEperm = 1, kEio = 5, kEnomem = 12, kEinval = 22, kEnospc = 28, kEoverflow = 75,
  kEnotsup = 95, kEshutdown = 108,
};

constexpr uint32_t kMaxPayload = 32u << 20;      // largest READ or WRITE
constexpr uint32_t kMaxOptionBytes = 16u << 10;  // larger option data is skipped: REP_ERR_TOO_BIG
constexpr uint32_t kMaxNameBytes = 4096;
constexpr uint32_t kMaxOptions = 4096;           // options before GO; more closes the session

struct ExportInfo {
  uint64_t size = 0;
  bool read_only = false;
};

struct Request {
  uint64_t id = 0;  // the session's number for it, unique while in flight: answer with it
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t handle = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  std::string payload;  // WRITE only
  bool fua() const { return (flags & kCmdFlagFua) != 0; }
  bool req_one() const { return (flags & kCmdFlagReqOne) != 0; }
};

// One block status descriptor: length bytes (nonzero) with the same allocation flags.
struct Extent {
  uint32_t length = 0;
  uint32_t flags = 0;
};

struct SessionLimits {
  uint32_t max_in_flight = 128;               // requests handed out and not yet answered
  uint64_t max_in_flight_bytes = 128u << 20;  // their payload plus read lengths
  uint64_t max_output_bytes = 64u << 20;      // unsent replies before input pauses
  // FORCEDTLS: every option but STARTTLS and ABORT gets REP_ERR_TLS_REQD until TLS is on,
  // and EXPORT_NAME closes the session. Without it, STARTTLS gets REP_ERR_UNSUP.
  bool require_tls = false;
};

class NbdSession {
 public:
  struct Hooks {
    // Looks up an export by name (INFO, GO, EXPORT_NAME): NotFound if there is none.
    std::function<void(const std::string& name, std::function<void(Result<ExportInfo>)>)> lookup;
    // The export names (LIST).
    std::function<void(std::function<void(Result<std::vector<std::string>>)>)> list;
    // A valid transmission request: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES or BLOCK_STATUS,
    // in range. Answer BLOCK_STATUS with ReplyExtents, the others with Reply.
    std::function<void(Request)> request;
  };

  NbdSession(Hooks hooks, SessionLimits limits = {});
  ~NbdSession();
  NbdSession(const NbdSession&) = delete;
  NbdSession& operator=(const NbdSession&) = delete;

  // Queues the server greeting.
  void Start();
  // Bytes read from the client. Parsing pauses (the bytes stay buffered) while WantsInput is false.
  void Feed(const char* data, size_t n);
  // Answers the request handed to hooks.request with this id; data is the READ payload.
  // (Ids, not the client's handles: a client may reuse a handle while it is in flight.)
  void Reply(uint64_t id, uint32_t error, std::string data = {});
  // Answers a BLOCK_STATUS request: extents from its offset on, at least one unless error
  // is set. Empty extents are left out, and so is every extent after the one that reaches
  // the request's end; with REQ_ONE only the first is sent, cut to the request's length.
  void ReplyExtents(uint64_t id, uint32_t error, std::vector<Extent> extents);

  // Buffers to send, in order.
  std::vector<std::string> TakeOutput();
  bool HasOutput() const { return !out_.empty(); }
  // False while a lookup is pending, too much is in flight, or the session is ending.
  bool WantsInput() const;
  // The session is over: close once the output is sent.
  bool Done() const;
  const std::string& close_reason() const { return close_reason_; }
  // Ends the session (a failure outside the protocol, such as a failed TLS handshake).
  void Fail(std::string reason) { Close(std::move(reason)); }

  // STARTTLS: once the session has acknowledged it (and its output is sent), the server
  // calls BeginTls, which returns the bytes already received after the option (the start of
  // the client's TLS handshake); when the handshake is complete it calls TlsEstablished, and
  // option haggling goes on over TLS.
  bool StartTlsPending() const { return state_ == State::kStartTls; }
  std::string BeginTls();
  void TlsEstablished();
  bool tls_active() const { return tls_active_; }
  // Options refused with REP_ERR_TLS_REQD (for the server's log).
  uint32_t tls_refusals() const { return tls_refusals_; }
  bool transmitting() const { return state_ == State::kTransmission || state_ == State::kDisconnecting; }
  const std::string& export_name() const { return export_name_; }
  bool structured() const { return structured_; }
  // BLOCK_STATUS may be sent: base:allocation was selected for the export in use.
  bool allocation_context() const { return allocation_; }
  uint32_t in_flight() const { return in_flight_; }

 private:
  enum class State {
    kClientFlags, kOptionHeader, kOptionData, kSkipOption, kWaiting, kTransmission, kSkipPayload,
    kDisconnecting, kClosed, kStartTls, kTlsHandshake,
  };
  void Process();
  bool Step();  // one unit of parsing; false when it needs more input or must pause
  void HandleOption(uint32_t option, std::string data);
  void HandleInfoGo(uint32_t option, const std::string& data);
  void HandleMetaContext(uint32_t option, const std::string& data);
  // Entering transmission on export name: a context selected for another name is dropped.
  void EnterTransmission(const std::string& name);
  void HandleRequest(Request r);
  void OptionReply(uint32_t option, uint32_t type, std::string data = {});
  void SimpleReply(uint64_t handle, uint32_t error);
  // A reply's one (so last) chunk; its payload is head then tail (a read's data, sent as is).
  void Chunk(uint64_t handle, uint16_t type, std::string head, std::string tail = {});
  // An error answer to a request of this type: structured where the protocol requires it.
  void ErrorReply(uint64_t handle, uint16_t type, uint32_t error);
  void Close(std::string reason);
  void Emit(std::string bytes);
  size_t Available() const { return in_.size() - in_pos_; }
  uint16_t TransmissionFlags() const;

  Hooks hooks_;
  const SessionLimits limits_;
  State state_ = State::kClientFlags;
  std::string in_;
  size_t in_pos_ = 0;
  std::deque<std::string> out_;
  uint64_t out_bytes_ = 0;
  bool no_zeroes_ = false;
  bool structured_ = false;
  bool allocation_ = false;   // base:allocation selected for meta_export_
  std::string meta_export_;
  bool tls_active_ = false;
  uint32_t tls_refusals_ = 0;
  uint32_t options_seen_ = 0;
  uint32_t cur_option_ = 0;
  uint32_t cur_length_ = 0;
  uint64_t skip_left_ = 0;
  uint64_t skip_handle_ = 0;  // the request whose oversized payload is being skipped
  uint32_t skip_error_ = 0;
  std::string export_name_;
  ExportInfo export_;
  uint32_t in_flight_ = 0;
  uint64_t in_flight_bytes_ = 0;
  struct Charge {
    uint64_t handle;  // the client's
    uint64_t bytes;   // payload or read length
    uint16_t type;    // the command
    uint64_t offset;  // where a read starts
    uint32_t length;  // of a block status request
    bool req_one;     // its REQ_ONE flag
  };
  std::unordered_map<uint64_t, Charge> charges_;  // by id, while in flight
  // Removes the request's charge (nullopt: not a request in flight).
  std::optional<Charge> TakeCharge(uint64_t id);
  uint64_t next_id_ = 0;
  bool processing_ = false;
  bool again_ = false;
  std::string close_reason_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringstore::block::nbd
