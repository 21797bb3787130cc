// TlsSession: one connection's TLS state machine over memory buffers, with no I/O of its own.
// The transport feeds it the ciphertext it reads from the socket and sends the ciphertext it
// hands out; in between, the session runs the handshake, decrypts into plaintext and
// encrypts outgoing plaintext. Batching is the point: one socket read of up to 256 KiB is
// decrypted in one call, and many queued frames become one buffer of records for one write,
// where an ssl::stream makes a system call per 16 KiB record.
// The session's BIO reads the fed bytes in place and appends its output to a string, so the
// only copies are OpenSSL's own (see Feed for how long fed bytes must live).
// Owned by its connection; single-threaded (the transport's io_context thread).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
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

  // Ciphertext read from the socket. It is read in place: the bytes must stay valid until the
  // next Handshake() returns or Drain() calls its sink (what is left unread is copied then).
  void Feed(const char* data, size_t n);
  // Advances the handshake with what has been fed. OK once it is complete (see established());
  // an error explains the failure (ExplainFailure). Call TakeOutput afterwards either way:
  // a failed handshake leaves an alert for the peer.
  Status Handshake();
  bool established() const { return established_; }
  // Decrypts everything fed so far and hands the plaintext to sink in pieces of up to 256 KiB
  // (from a buffer the session owns, valid during the call). Stops early, with OK, when sink
  // returns false. Refused on a TLS error (an alert from the peer, a bad record); a partial
  // record stays for the next Feed. Sets *closed when the peer sent close_notify.
  Status Drain(const std::function<bool(const char*, size_t)>& sink, bool* closed);
  // Encrypts n bytes (the handshake must be complete).
  Status Write(const char* data, size_t n);
  // Swaps the ciphertext waiting to be sent (handshake messages, records, alerts) into out,
  // which must be empty; its old buffer is reused for the next output.
  void TakeOutput(std::string* out);
  bool HasOutput() const { return !out_.empty(); }

  ssl_st* native() { return ssl_; }

 private:
  struct Bio;  // the BIO callbacks
  Status Failure(int ret, const char* what);
  // Copies the fed bytes OpenSSL has not read yet into stash_.
  void KeepRest();
  ssl_st* ssl_ = nullptr;
  bool established_ = false;
  const char* in_ = nullptr;  // fed, not yet read by OpenSSL
  size_t in_len_ = 0;
  std::string stash_;         // holds in_ between feeds
  std::string out_;           // ciphertext to send
  std::unique_ptr<char[]> plain_;  // Drain's buffer, allocated on first use
};

}  // namespace ringstore
