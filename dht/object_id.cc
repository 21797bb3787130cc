#include "dht/object_id.h"

#include <openssl/evp.h>

#include <cassert>

namespace ringstore {

namespace {

// The SHA-256 implementation, fetched once: EVP_sha256() makes OpenSSL 3 look it up (under a
// lock) on every digest, which was a tenth of a simulation's time. Thread-safe (a function
// static); never freed.
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

// A digest context per thread, reused by every hash: making and freeing one per call (as
// EVP_Digest does) is an allocation, a reference count and a cleanse, which was most of the
// cost of a short input such as a replica id (routing/placement.cc). Null if OpenSSL could
// not make one.
EVP_MD_CTX* ThreadCtx() {
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx t;
  return t.ctx;
}

}  // namespace

ObjectId ObjectId::Of(std::string_view ns, std::string_view key) {
  Bytes out{};
  EVP_MD_CTX* ctx = ThreadCtx();
  const char sep = '\0';
  unsigned int len = 0;
  const int ok = ctx != nullptr && EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) &&
                 EVP_DigestUpdate(ctx, ns.data(), ns.size()) && EVP_DigestUpdate(ctx, &sep, 1) &&
                 EVP_DigestUpdate(ctx, key.data(), key.size()) && EVP_DigestFinal_ex(ctx, out.data(), &len);
  assert(ok && len == kSize);
  (void)ok;
  return ObjectId(out);
}

ObjectId ObjectId::Sha256(std::string_view bytes) {
  Bytes out{};
  EVP_MD_CTX* ctx = ThreadCtx();
  unsigned int len = 0;
  const int ok = ctx != nullptr && EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) &&
                 EVP_DigestUpdate(ctx, bytes.data(), bytes.size()) && EVP_DigestFinal_ex(ctx, out.data(), &len);
  assert(ok == 1 && len == kSize);
  (void)ok;
  return ObjectId(out);
}

Result<ObjectId> ObjectId::FromBytes(std::string_view raw) {
  if (raw.size() != kSize) {
    return Status::InvalidArgument("object id must be 32 bytes, got " + std::to_string(raw.size()));
  }
  Bytes b;
  for (size_t i = 0; i < kSize; ++i) b[i] = static_cast<uint8_t>(raw[i]);
  return ObjectId(b);
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<ObjectId> ObjectId::FromHex(std::string_view hex) {
  if (hex.size() != 2 * kSize) return Status::InvalidArgument("object id hex must be 64 digits");
  Bytes b;
  for (size_t i = 0; i < kSize; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("object id hex has a non-hex digit");
    b[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return ObjectId(b);
}

ObjectId ObjectId::Max() {
  Bytes b;
  b.fill(0xff);
  return ObjectId(b);
}

ObjectId ObjectId::Successor() const {
  if (*this == Max()) return *this;
  Bytes b = bytes_;
  for (size_t i = kSize; i-- > 0;) {
    if (++b[i] != 0) break;
  }
  return ObjectId(b);
}

std::string ObjectId::Hex() const {
  static const char* kDigits = "0123456789abcdef";
  std::string s(2 * kSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    s[2 * i] = kDigits[bytes_[i] >> 4];
    s[2 * i + 1] = kDigits[bytes_[i] & 0xf];
  }
  return s;
}

}  // namespace ringstore
