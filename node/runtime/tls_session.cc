#include "node/runtime/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>

#include "node/runtime/tls.h"

namespace ringstore {

struct TlsSession::Bio {
  static TlsSession* Of(BIO* b) { return static_cast<TlsSession*>(BIO_get_data(b)); }
  static int Write(BIO* b, const char* data, size_t n, size_t* written) {
    Of(b)->out_.append(data, n);
    *written = n;
    return 1;
  }
  static int Read(BIO* b, char* data, size_t n, size_t* read) {
    TlsSession* s = Of(b);
    BIO_clear_retry_flags(b);
    if (s->in_len_ == 0) {
      BIO_set_retry_read(b);
      *read = 0;
      return 0;
    }
    const size_t k = std::min(n, s->in_len_);
    std::memcpy(data, s->in_, k);
    s->in_ += k;
    s->in_len_ -= k;
    *read = k;
    return 1;
  }
  static long Ctrl(BIO* b, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_FLUSH: return 1;
      case BIO_CTRL_PENDING: return static_cast<long>(Of(b)->in_len_);
      case BIO_CTRL_WPENDING: return static_cast<long>(Of(b)->out_.size());
      default: return 0;
    }
  }
  static int Create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }
  static BIO_METHOD* Methods() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringstore TLS buffers");
      BIO_meth_set_write_ex(bm, Write);
      BIO_meth_set_read_ex(bm, Read);
      BIO_meth_set_ctrl(bm, Ctrl);
      BIO_meth_set_create(bm, Create);
      return bm;
    }();
    return m;
  }
};

TlsSession::TlsSession(SSL_CTX* ctx, Side side) : ssl_(SSL_new(ctx)) {
  BIO* bio = BIO_new(Bio::Methods());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; the SSL object frees it
  if (side == Side::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::Feed(const char* data, size_t n) {
  if (in_len_ == 0) {
    in_ = data;
    in_len_ = n;
    return;
  }
  KeepRest();
  stash_.append(data, n);
  in_ = stash_.data();
  in_len_ = stash_.size();
}

void TlsSession::KeepRest() {
  if (in_len_ == 0) {
    stash_.clear();
    return;
  }
  if (!stash_.empty() && in_ >= stash_.data() && in_ < stash_.data() + stash_.size()) {
    stash_.erase(0, static_cast<size_t>(in_ - stash_.data()));
  } else {
    stash_.assign(in_, in_len_);
  }
  in_ = stash_.data();
}

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
  Status s;
  if (r == 1) {
    established_ = true;
  } else {
    s = Failure(r, "");
  }
  KeepRest();
  return s;
}

Status TlsSession::Drain(const std::function<bool(const char*, size_t)>& sink, bool* closed) {
  constexpr size_t kPlainBytes = 256u << 10;
  if (!plain_) plain_.reset(new char[kPlainBytes]);
  *closed = false;
  ERR_clear_error();
  Status s;
  size_t got = 0;
  for (bool more = true; more;) {
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, plain_.get() + got, kPlainBytes - got, &n);
    got += n;
    if (r != 1) {
      *closed = SSL_get_error(ssl_, 0) == SSL_ERROR_ZERO_RETURN;
      s = Failure(0, "");
      more = false;
    }
    // Hand over a full buffer, or what is left once nothing more can be decrypted.
    if ((got == kPlainBytes || !more) && got > 0) {
      // The sink may start the next socket read into the buffer that was fed (Asio reads
      // speculatively when a read is started): keep what OpenSSL has not read first.
      KeepRest();
      if (!sink(plain_.get(), got)) more = false;
      got = 0;
    }
  }
  KeepRest();
  return s;
}

Status TlsSession::Write(const char* data, size_t n) {
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(ssl_, data, n, &written) == 1 && written == n) return Status::Ok();
  return Failure(0, "cannot encrypt: ");
}

void TlsSession::TakeOutput(std::string* out) {
  out->swap(out_);
  out_.clear();
}

}  // namespace ringstore
