#include "tools/cert_cmd.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>

#include "dht/admin_name.h"
#include "dht/peer_identity.h"
#include "node/runtime/tls.h"
#include "tools/exit_status.h"

namespace ringstore {

namespace {

namespace stdfs = std::filesystem;

constexpr const char* kCaKeyFile = "ca.key";
constexpr int kCaDays = 3650;
constexpr int kPartyDays = 825;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A failure of this command: the message for stderr and the exit status.
struct Failure {
  int code = kExitOk;
  std::string message;
};
Failure BadInput(std::string m) { return {kExitUsage, std::move(m)}; }
Failure Broken(std::string m) { return {kExitError, std::move(m)}; }

// Writes path with mode 0600 through the PEM writer `write`. Refuses to replace a file
// unless force.
template <class WriteFn>
Failure WritePem(const stdfs::path& path, bool force, WriteFn write) {
  std::error_code ec;
  if (stdfs::exists(path, ec)) {
    if (!force) return BadInput(path.string() + " exists; pass --force to replace it");
    stdfs::remove(path, ec);
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Broken("cannot create " + path.string() + ": " + std::strerror(errno));
  std::FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    ::close(fd);
    return Broken("cannot write " + path.string());
  }
  const bool ok = write(f) == 1;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) return Broken("cannot write " + path.string());
  return {};
}

Failure WriteCert(const stdfs::path& path, X509* cert, bool force) {
  return WritePem(path, force, [cert](std::FILE* f) { return PEM_write_X509(f, cert); });
}

Failure WriteKey(const stdfs::path& path, EVP_PKEY* key, bool force) {
  return WritePem(path, force, [key](std::FILE* f) {
    return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

Result<X509Ptr> ReadCert(const stdfs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return Status::InvalidArgument("cannot open " + path.string());
  X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!cert) return Status::InvalidArgument(path.string() + " is not a PEM certificate");
  return cert;
}

Result<PkeyPtr> ReadKey(const stdfs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return Status::InvalidArgument("cannot open " + path.string());
  PkeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!key) return Status::InvalidArgument(path.string() + " is not a PEM private key");
  return key;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

struct CertSpec {
  std::string common_name;
  std::string cluster_id;
  std::string uri;  // the subject alternative name
  bool ca = false;
  bool server = false;  // may also serve TLS (nodes, and parties given --host)
  std::vector<std::string> hosts;  // DNS names or IP addresses, as more subject alternative names
  int days = 0;
  int backdate_days = 0;
};

// "URI:ringstore://...,DNS:name,IP:addr": the identity, then the hosts the party serves as.
std::string SubjectAltNames(const CertSpec& spec) {
  std::string san = "URI:" + spec.uri;
  for (const std::string& h : spec.hosts) {
    const bool ip = h.find_first_not_of("0123456789.") == std::string::npos || h.find(':') != std::string::npos;
    san += (ip ? ",IP:" : ",DNS:") + h;
  }
  return san;
}

// Makes a certificate for key, signed by issuer_key (self-signed when issuer is null).
Result<X509Ptr> MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return Status::IOError("cannot make a certificate");
  BIGNUM* serial = BN_new();
  const bool serial_ok = serial != nullptr && BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
                         BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(serial);
  if (!serial_ok) return Status::IOError("cannot draw a serial number");
  const long start = -static_cast<long>(spec.backdate_days) * 86400;
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), start);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), start + static_cast<long>(spec.days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string org = "ringstore cluster " + spec.cluster_id;
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  bool ok = AddExtension(cert.get(), signer, NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
            AddExtension(cert.get(), signer, NID_key_usage,
                         spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") &&
            AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash") &&
            AddExtension(cert.get(), signer, NID_subject_alt_name, SubjectAltNames(spec));
  if (ok && !spec.ca) {
    ok = AddExtension(cert.get(), signer, NID_ext_key_usage, spec.server ? "serverAuth,clientAuth" : "clientAuth") &&
         AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  if (!ok) return Status::IOError("cannot add the certificate's extensions");
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return Status::IOError("cannot sign the certificate");
  }
  return cert;
}

// The cluster a CA certificate was made for (its ringstore://CLUSTER/ca URI).
Result<std::string> CaCluster(X509* ca, const std::string& path) {
  const std::string prefix = "ringstore://";
  for (const std::string& uri : CertificateUris(ca)) {
    if (uri.rfind(prefix, 0) == 0 && uri.size() > prefix.size() + 3 && uri.substr(uri.size() - 3) == "/ca") {
      return uri.substr(prefix.size(), uri.size() - prefix.size() - 3);
    }
  }
  return Status::InvalidArgument(path + " is not a ringstore CA certificate (`ringstore cert init-ca`)");
}

Failure InitCa(const CertArgs& a, const std::string& cluster_id) {
  if (Status s = ValidateAdminName(cluster_id, "cluster id"); !s.ok()) return BadInput("--cluster-id: " + s.message());
  std::error_code ec;
  stdfs::create_directories(a.dir, ec);
  if (ec) return Broken("cannot create " + a.dir + ": " + ec.message());
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Broken("cannot generate a key");
  CertSpec spec;
  spec.common_name = "ringstore CA for " + cluster_id;
  spec.cluster_id = cluster_id;
  spec.uri = "ringstore://" + cluster_id + "/ca";
  spec.ca = true;
  spec.days = a.days > 0 ? a.days : kCaDays;
  spec.backdate_days = a.backdate_days;
  auto cert = MakeCert(spec, key.get(), nullptr, nullptr);
  if (!cert.ok()) return Broken(cert.status().message());
  // The key first: an existing CA is never half replaced.
  if (Failure f = WriteKey(stdfs::path(a.dir) / kCaKeyFile, key.get(), a.force); f.code != kExitOk) return f;
  if (Failure f = WriteCert(stdfs::path(a.dir) / kTlsCaFile, cert->get(), true); f.code != kExitOk) return f;
  std::cout << "created the CA of cluster '" << cluster_id << "' in " << a.dir << " (" << kTlsCaFile << ", "
            << kCaKeyFile << "; keep " << kCaKeyFile << " secret), valid " << spec.days << " days\n";
  return {};
}

Failure Issue(const CertArgs& a, const std::string& cluster_id, Role role) {
  if (Status s = ValidateAdminName(a.name, "party"); !s.ok()) return BadInput("NAME: " + s.message());
  if (!a.ns.empty()) {
    if (role == Role::kAdmin) return BadInput("--namespace: an admin client cannot be restricted to a namespace");
    if (Status s = ValidateClientNamespace(a.ns); !s.ok()) return BadInput("--namespace: " + s.message());
  }
  auto ca = ReadCert(stdfs::path(a.ca_dir) / kTlsCaFile);
  if (!ca.ok()) return BadInput("--ca: " + ca.status().message());
  auto ca_key = ReadKey(stdfs::path(a.ca_dir) / kCaKeyFile);
  if (!ca_key.ok()) return BadInput("--ca: " + ca_key.status().message());
  if (X509_check_private_key(ca->get(), ca_key->get()) != 1) {
    return BadInput(std::string("--ca: ") + kCaKeyFile + " is not the key of " + kTlsCaFile);
  }
  auto cluster = CaCluster(ca->get(), (stdfs::path(a.ca_dir) / kTlsCaFile).string());
  if (!cluster.ok()) return BadInput("--ca: " + cluster.status().message());
  if (*cluster != cluster_id) {
    return BadInput("--ca is the CA of cluster '" + *cluster + "', not of --cluster-id " + cluster_id);
  }
  std::error_code ec;
  stdfs::create_directories(a.out_dir, ec);
  if (ec) return Broken("cannot create " + a.out_dir + ": " + ec.message());
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Broken("cannot generate a key");
  PeerIdentity id;
  id.role = role;
  id.cluster_id = cluster_id;
  id.name = a.name;
  id.ns = a.ns;
  CertSpec spec;
  spec.common_name = a.name;
  spec.cluster_id = cluster_id;
  spec.uri = IdentityUri(id);
  for (const std::string& h : a.hosts) {
    if (h.empty() || h.find_first_of(", \t") != std::string::npos) return BadInput("--host: bad host name '" + h + "'");
  }
  spec.hosts = a.hosts;
  spec.server = role == Role::kNode || !a.hosts.empty();
  spec.days = a.days > 0 ? a.days : kPartyDays;
  spec.backdate_days = a.backdate_days;
  auto cert = MakeCert(spec, key.get(), ca->get(), ca_key->get());
  if (!cert.ok()) return Broken(cert.status().message());
  const stdfs::path out(a.out_dir);
  if (Failure f = WriteKey(out / kTlsKeyFile, key.get(), a.force); f.code != kExitOk) return f;
  if (Failure f = WriteCert(out / kTlsCertFile, cert->get(), true); f.code != kExitOk) return f;
  if (Failure f = WriteCert(out / kTlsCaFile, ca->get(), true); f.code != kExitOk) return f;
  std::cout << "issued " << id.Describe() << " of cluster '" << cluster_id << "' into " << a.out_dir << " ("
            << kTlsCaFile << ", " << kTlsCertFile << ", " << kTlsKeyFile << "), valid " << spec.days << " days\n";
  return {};
}

Failure Show(const CertArgs& a) {
  std::error_code ec;
  const stdfs::path path = stdfs::is_directory(a.dir, ec) ? stdfs::path(a.dir) / kTlsCertFile : stdfs::path(a.dir);
  auto cert = ReadCert(path);
  if (!cert.ok()) return BadInput(cert.status().message());
  auto id = CertificateIdentity(cert->get());
  if (!id.ok()) return BadInput(path.string() + ": " + id.status().message());
  const auto when = [](const ASN1_TIME* t) {
    BIO* bio = BIO_new(BIO_s_mem());
    ASN1_TIME_print(bio, t);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<size_t>(n));
    BIO_free(bio);
    return s;
  };
  const bool expired = X509_cmp_current_time(X509_get0_notAfter(cert->get())) < 0;
  std::cout << path.string() << ": " << id->Describe() << " of cluster '" << id->cluster_id << "'\n"
            << "  valid from " << when(X509_get0_notBefore(cert->get())) << " to "
            << when(X509_get0_notAfter(cert->get())) << (expired ? " (EXPIRED)" : "") << "\n";
  return {};
}

}  // namespace

int RunCert(const CertArgs& a, const std::string& cluster_id) {
  Failure f;
  if (a.command == CertArgs::kInitCa) {
    f = InitCa(a, cluster_id);
  } else if (a.command == CertArgs::kIssueNode) {
    f = Issue(a, cluster_id, Role::kNode);
  } else if (a.command == CertArgs::kIssueClient) {
    auto role = ParseClientRole(a.role);
    f = role.ok() ? Issue(a, cluster_id, *role) : BadInput("--role: " + role.status().message());
  } else {
    f = Show(a);
  }
  if (f.code != kExitOk) std::cerr << "ringstore cert: " << f.message << "\n";
  return f.code;
}

}  // namespace ringstore
