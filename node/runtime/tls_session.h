// TlsSession: one connection's TLS state machine over memory buffers, with no I/O of its own.
// The transport feeds it the ciphertext it reads from the socket and sends the ciphertext it
// hands out; in between, the session runs the handshake, decrypts into plaintext and
// encrypts outgoing plaintext. Batching is the point: one socket read of up to 256 KiB is
// decrypted in one call, and many queued frames become one buffer of records for one write,
// where an ssl::stream makes a system call per 16 KiB record.
// Owned by its connection; single-threaded (the transport's io_context thread).
#pragma once

#include <cstddef>
#include <string>

#include "dht/status.h"

struct ssl_st;
struct ssl_ctx_st;

namespace ringstore {

class TlsSession {
 public:
  enum class Side { kClient, kServer };
  TlsSession(ssl_ctx_st* ctx, Side side);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext read from the socket.
  void Feed(const char* data, size_t n);
  // Advances the handshake with what has been fed. OK once it is complete (see established());
  // an error explains the failure (ExplainFailure). Call TakeOutput afterwards either way:
  // a failed handshake leaves an alert for the peer.
  Status Handshake();
  bool established() const { return established_; }
  // Decrypts everything fed so far and appends the plaintext to out. Refused on a TLS error
  // (an alert from the peer, a bad record); OK with nothing appended when a record is partial.
  // Sets *closed when the peer sent close_notify.
  Status Read(std::string* out, bool* closed);
  // Encrypts n bytes (the handshake must be complete).
  Status Write(const char* data, size_t n);
  // Moves the ciphertext waiting to be sent (handshake messages, records, alerts) into out.
  void TakeOutput(std::string* out);
  bool HasOutput() const;

  ssl_st* native() { return ssl_; }

 private:
  Status Failure(int ret, const char* what);
  ssl_st* ssl_ = nullptr;
  bool established_ = false;
};

}  // namespace ringstore
