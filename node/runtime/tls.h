// TlsContext: this party's TLS setup, loaded from --tls-dir DIR:
//   DIR/ca.crt   the cluster's CA certificate: peers must present a certificate it signed
//   DIR/tls.crt  this party's certificate (`ringstore cert issue`), carrying its identity
//   DIR/tls.key  its private key
// Every link is mutually authenticated: both ends present a certificate and verify the
// other's against ca.crt. A certificate names its cluster, kind, name and role in a URI
// subject alternative name (dht/peer_identity.h); a certificate for another cluster is
// refused even when the same CA signed it.
// Owned by the program (shared with its transports); immutable after Load, so it may be
// shared across threads; OpenSSL's context is thread-safe for use by many connections.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dht/peer_identity.h"
#include "dht/status.h"

namespace boost::asio::ssl {
class context;
}
struct ssl_st;
struct ssl_ctx_st;
struct x509_st;

namespace ringstore {

// The file names inside a --tls-dir.
inline constexpr const char* kTlsCaFile = "ca.crt";
inline constexpr const char* kTlsCertFile = "tls.crt";
inline constexpr const char* kTlsKeyFile = "tls.key";

// The URIs among a certificate's subject alternative names.
std::vector<std::string> CertificateUris(x509_st* cert);
// The ringstore identity in a certificate's URI subject alternative name.
Result<PeerIdentity> CertificateIdentity(x509_st* cert);
// The same, for a PEM file.
Result<PeerIdentity> CertificateFileIdentity(const std::string& path);

// A gateway's check of its own certificate: InvalidArgument (naming tls_dir) for a
// namespace-restricted one, since volumes and filesystems live in ringstore's own namespaces.
// Sets *read_only (and returns OK) for a read-only one.
Status CheckGatewayIdentity(const PeerIdentity& self, const std::string& tls_dir, bool* read_only);

class TlsContext {
 public:
  // Loads DIR's three files and checks that the key matches the certificate and that the
  // certificate carries cluster_id. Errors name the file and the reason.
  static Result<std::shared_ptr<TlsContext>> Load(const std::string& dir, const std::string& cluster_id);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // OpenSSL's context, for new TLS sessions (TlsSession).
  ssl_ctx_st* ssl_ctx();
  // Who this party is, by its own certificate.
  const PeerIdentity& self() const { return self_; }

  // After a completed handshake: the identity in the peer's verified certificate, refused
  // (Refused) when it is for another cluster.
  Result<PeerIdentity> VerifiedPeer(ssl_st* ssl) const;

  // One clear line for an OpenSSL error (ERR_get_error) in a handshake or a read: whether the
  // peer does not speak TLS, refused our certificate, or presented one that does not verify
  // (and why).
  static std::string ExplainError(unsigned long err, ssl_st* ssl);

 private:
  TlsContext();
  std::unique_ptr<boost::asio::ssl::context> ctx_;
  PeerIdentity self_;
};

}  // namespace ringstore
