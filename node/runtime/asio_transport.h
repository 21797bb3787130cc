// AsioTransport: the real Transport over TCP with Boost.Asio. Listens, connects, frames the
// byte stream with FrameDecoder, and writes queued frames with gathered writes started after
// the ready handlers have run (corking), so that many pipelined replies share a system call. Reading from a connection pauses while
// its unsent replies exceed a high-water mark (backpressure on a slow reader).
// With options.tls every connection is TLS with mutual certificate authentication
// (node/runtime/tls.h): an accepted peer becomes a connection only after its handshake and
// its certificate's cluster check, and PeerOf() then says who it is. A plaintext peer at a
// TLS listener, and a TLS peer at a plaintext one, are refused with a clear error.
// It owns its sockets; the handler must outlive it.
// Thread-safety: one io_context thread; every call and callback runs there.
#pragma once

#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dht/transport.h"
#include "node/runtime/tls.h"

namespace ringstore {

struct AsioTransportOptions {
  size_t read_buffer_bytes = 256u << 10;
  // Reads pause while a connection has more than this queued for sending.
  size_t write_high_water_bytes = 128u << 20;
  // Frames gathered into one write.
  size_t max_gather_frames = 256;
  size_t max_connections = 4096;  // accepted, counting those still in their TLS handshake
  // An accepted peer that has not completed its TLS handshake by then is dropped.
  std::chrono::milliseconds tls_handshake_timeout{10000};
  // TLS for every connection (shared with the program's other transports); null: plaintext.
  std::shared_ptr<TlsContext> tls;
};

class AsioTransport final : public Transport {
 public:
  explicit AsioTransport(boost::asio::io_context& io, AsioTransportOptions options = {});
  ~AsioTransport() override;
  AsioTransport(const AsioTransport&) = delete;
  AsioTransport& operator=(const AsioTransport&) = delete;

  // Binds and starts accepting. Port 0 picks a free port; see local_address().
  Status Listen(const std::string& address);
  std::string local_address() const { return local_address_; }

  void SetHandler(TransportHandler* handler) override { handler_ = handler; }
  ConnId Connect(const std::string& address) override;
  void Send(ConnId conn, std::string encoded_frame) override;
  void SendShared(ConnId conn, std::string head, std::shared_ptr<const std::string> value, std::string tail) override;
  void Close(ConnId conn) override;
  void StopAccepting() override;
  void SetFrameLimit(ConnId conn, size_t max_body_bytes) override;
  PeerIdentity PeerOf(ConnId conn) const override;

 private:
  struct Connection;
  using ConnPtr = std::shared_ptr<Connection>;

  void Accept();
  // Registers an accepted peer as a connection and tells the handler.
  void Admit(const ConnPtr& c, const std::string& peer);
  // TLS listener: plaintext is refused; otherwise the handshake, then the cluster check.
  void AcceptTls(const ConnPtr& c, const std::string& peer);
  void ConnectTls(const ConnPtr& c, const std::string& address);
  // Advances c's handshake and sends what it produced; once it is complete, checks the
  // peer's certificate and announces the connection. False when c was refused or closed.
  bool TlsStep(const ConnPtr& c);
  // TLS: ciphertext arrived in read_buf.
  void OnTlsRead(const ConnPtr& c, size_t n);
  // TLS: encrypts queued frames (once established) and writes all pending ciphertext.
  void FlushTls(const ConnPtr& c);
  // A write of writing_frames frames completed.
  void Written(const ConnPtr& c);
  // Refuses c with a frame-level error (the handler sends it), then closes.
  void RefuseAdmitted(const ConnPtr& c, const Status& why);
  void StartRead(const ConnPtr& c);
  // Plaintext bytes from the peer: frames for the handler, then the next read.
  void OnBytes(const ConnPtr& c, const char* p, size_t n);
  // The frames in p for the handler; false when the connection is closing (read no more).
  bool OnFrames(const ConnPtr& c, const char* p, size_t n);
  void Enqueue(const ConnPtr& c, std::string bytes);
  void StartWrite(const ConnPtr& c);
  void Fail(const ConnPtr& c, const Status& why);
  ConnPtr Find(ConnId id);

  boost::asio::io_context& io_;
  const AsioTransportOptions options_;
  TransportHandler* handler_ = nullptr;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::string local_address_;
  ConnId next_id_ = 1;
  size_t handshaking_ = 0;  // accepted TLS peers not yet admitted
  std::unordered_map<ConnId, ConnPtr> conns_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringstore
