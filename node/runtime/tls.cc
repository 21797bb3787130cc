#include "node/runtime/tls.h"

#include <boost/asio/ssl/context.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>

namespace ringstore {

namespace ssl = boost::asio::ssl;

std::vector<std::string> CertificateUris(X509* cert) {
  std::vector<std::string> uris;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI) continue;
    const ASN1_IA5STRING* u = n->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(u)), ASN1_STRING_length(u));
  }
  GENERAL_NAMES_free(names);
  return uris;
}

Result<PeerIdentity> CertificateIdentity(X509* cert) {
  for (const std::string& uri : CertificateUris(cert)) {
    if (uri.rfind("ringstore://", 0) == 0) return ParseIdentityUri(uri);
  }
  return Status::InvalidArgument("the certificate carries no ringstore:// identity");
}

Result<PeerIdentity> CertificateFileIdentity(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return Status::InvalidArgument("cannot open " + path);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (cert == nullptr) return Status::InvalidArgument(path + " is not a PEM certificate");
  auto id = CertificateIdentity(cert);
  X509_free(cert);
  if (!id.ok()) return Status::InvalidArgument(path + ": " + id.status().message());
  return id;
}

SSL_CTX* TlsContext::ssl_ctx() { return ctx_->native_handle(); }

TlsContext::TlsContext() : ctx_(std::make_unique<ssl::context>(ssl::context::tls)) {}
TlsContext::~TlsContext() = default;

Result<std::shared_ptr<TlsContext>> TlsContext::Load(const std::string& dir, const std::string& cluster_id) {
  namespace fs = std::filesystem;
  const std::string ca = (fs::path(dir) / kTlsCaFile).string();
  const std::string crt = (fs::path(dir) / kTlsCertFile).string();
  const std::string key = (fs::path(dir) / kTlsKeyFile).string();
  for (const std::string& p : {ca, crt, key}) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      return Status::InvalidArgument("--tls-dir " + dir + ": " + p + " is missing (see `ringstore cert --help`)");
    }
  }
  auto self = CertificateFileIdentity(crt);
  if (!self.ok()) return self.status();
  if (self->cluster_id != cluster_id) {
    return Status::InvalidArgument(crt + " is for cluster '" + self->cluster_id + "', but this party runs with --cluster-id " +
                                   cluster_id);
  }
  std::shared_ptr<TlsContext> t(new TlsContext());
  t->self_ = std::move(*self);
  SSL_CTX* native = t->ctx_->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  boost::system::error_code ec;
  const auto fail = [&](const std::string& what) {
    return Status::InvalidArgument(what + ": " + ec.message());
  };
  if (t->ctx_->load_verify_file(ca, ec); ec) return fail("cannot load the CA certificate " + ca);
  if (t->ctx_->use_certificate_chain_file(crt, ec); ec) return fail("cannot load the certificate " + crt);
  if (t->ctx_->use_private_key_file(key, ssl::context::pem, ec); ec) return fail("cannot load the private key " + key);
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument(key + " is not the key of " + crt);
  }
  t->ctx_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  SSL_CTX_set_num_tickets(native, 0);  // sessions are never resumed: no tickets to make
  // AES-128-GCM first, and the server's order wins: it is OpenSSL's fastest AEAD on CPUs with
  // AES-NI (10 rounds to AES-256's 14) and as safe for this use; the others stay for peers
  // that want them (docs/security.md §4).
  SSL_CTX_set_ciphersuites(native, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
  return t;
}

Result<PeerIdentity> TlsContext::VerifiedPeer(SSL* ssl) const {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return Status::Refused("the peer presented no certificate");
  auto id = CertificateIdentity(cert);
  X509_free(cert);
  if (!id.ok()) return Status::Refused("the peer's certificate: " + id.status().message());
  if (id->cluster_id != self_.cluster_id) {
    return Status::Refused("the peer's certificate is for cluster '" + id->cluster_id + "', not '" + self_.cluster_id +
                           "'");
  }
  return id;
}

std::string TlsContext::ExplainError(unsigned long err, SSL* ssl) {
  const int reason = ERR_GET_REASON(err);
  const char* text = ERR_reason_error_string(err);
  const std::string what = text != nullptr ? text : "error " + std::to_string(err);
  if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
      reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_HTTP_REQUEST || reason == SSL_R_UNEXPECTED_RECORD) {
    return "the peer does not speak TLS; is it running without --tls-dir? (" + what + ")";
  }
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    const long v = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
    return "the peer's certificate does not verify against our ca.crt: " +
           std::string(X509_verify_cert_error_string(v));
  }
  if (what.find("alert") != std::string::npos) return "the peer refused this party's certificate (" + what + ")";
  if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) return "the peer presented no certificate";
  return "TLS error: " + what;
}

Status CheckGatewayIdentity(const PeerIdentity& self, const std::string& tls_dir, bool* read_only) {
  if (!self.ns.empty()) {
    return Status::InvalidArgument(tls_dir + ": the certificate of " + self.Describe() +
                                   " is restricted to one namespace, and volumes and filesystems live in "
                                   "ringstore's own: use a certificate issued without --namespace");
  }
  if (self.role == Role::kReadOnly) *read_only = true;
  return Status::Ok();
}

}  // namespace ringstore
