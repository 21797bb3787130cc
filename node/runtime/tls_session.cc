#include "node/runtime/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "node/runtime/tls.h"

namespace ringstore {

TlsSession::TlsSession(SSL_CTX* ctx, Side side) : ssl_(SSL_new(ctx)) {
  // A memory BIO each way; SSL_set_bio hands both to the SSL object, which frees them.
  SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  if (side == Side::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::Feed(const char* data, size_t n) { BIO_write(SSL_get_rbio(ssl_), data, static_cast<int>(n)); }

Status TlsSession::Failure(int ret, const char* what) {
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::Ok();
  if (e == SSL_ERROR_ZERO_RETURN) return Status::Ok();
  const unsigned long err = ERR_peek_last_error();
  ERR_clear_error();
  return Status::Refused(std::string(what) + TlsContext::ExplainError(err, ssl_));
}

Status TlsSession::Handshake() {
  if (established_) return Status::Ok();
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    established_ = true;
    return Status::Ok();
  }
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::Ok();
  return Failure(r, "");
}

Status TlsSession::Read(std::string* out, bool* closed) {
  *closed = false;
  ERR_clear_error();
  for (;;) {
    const size_t at = out->size();
    out->resize(at + 16384);
    size_t got = 0;
    const int r = SSL_read_ex(ssl_, out->data() + at, 16384, &got);
    out->resize(at + got);
    if (r == 1) continue;
    const int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::Ok();
    if (e == SSL_ERROR_ZERO_RETURN) {
      *closed = true;
      return Status::Ok();
    }
    return Failure(0, "");
  }
}

Status TlsSession::Write(const char* data, size_t n) {
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(ssl_, data, n, &written) == 1 && written == n) return Status::Ok();
  return Failure(0, "cannot encrypt: ");
}

bool TlsSession::HasOutput() const { return BIO_ctrl_pending(SSL_get_wbio(ssl_)) > 0; }

void TlsSession::TakeOutput(std::string* out) {
  BIO* w = SSL_get_wbio(ssl_);
  const size_t pending = BIO_ctrl_pending(w);
  if (pending == 0) return;
  const size_t at = out->size();
  out->resize(at + pending);
  const int got = BIO_read(w, out->data() + at, static_cast<int>(pending));
  out->resize(at + (got > 0 ? static_cast<size_t>(got) : 0));
}

}  // namespace ringstore
