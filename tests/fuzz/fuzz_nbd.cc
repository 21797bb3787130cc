// libFuzzer target: the NBD server's protocol state machine (blockgateway/nbd_protocol.h),
// fed a client's bytes: the handshake, options and transmission requests. Lookups and
// requests are answered at once; the session must never crash and its output is drained.
// An odd first byte makes the session FORCEDTLS; its STARTTLS is then "handshaken" at once
// (BeginTls, TlsEstablished), so option haggling after TLS is explored too.
#include <cstddef>
#include <cstdint>

#include "blockgateway/nbd_protocol.h"

using namespace ringstore::block::nbd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  NbdSession* session = nullptr;
  NbdSession::Hooks hooks;
  hooks.lookup = [](const std::string& name, std::function<void(ringstore::Result<ExportInfo>)> done) {
    if (name == "missing") return done(ringstore::Status::NotFound("no such export"));
    ExportInfo e;
    e.size = 1 << 20;
    e.read_only = name == "ro";
    done(e);
  };
  hooks.list = [](std::function<void(ringstore::Result<std::vector<std::string>>)> done) {
    done(std::vector<std::string>{"a", "ro"});
  };
  hooks.request = [&session](Request r) {
    session->Reply(r.handle, 0, r.type == kCmdRead ? std::string(r.length, '\0') : std::string());
  };
  SessionLimits limits;
  limits.max_in_flight_bytes = 4 << 20;
  limits.require_tls = size > 0 && (data[0] & 1) != 0;
  NbdSession s(hooks, limits);
  session = &s;
  s.Start();
  size_t at = 0;
  // Pieces of 1 to 64 bytes, sized by the input itself, so short reads are explored too.
  while (at < size && !s.Done()) {
    const size_t n = std::min<size_t>(size - at, 1 + data[at] % 64);
    s.Feed(reinterpret_cast<const char*>(data + at), n);
    at += n;
    (void)s.TakeOutput();
    if (s.StartTlsPending()) {
      const std::string early = s.BeginTls();
      s.TlsEstablished();
      if (!early.empty()) s.Feed(early.data(), early.size());
    }
  }
  (void)s.TakeOutput();
  return 0;
}
