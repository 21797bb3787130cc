// Transport: the only way logic code reaches the network. It carries whole frames between
// connections; framing, buffering and sockets live in the implementation.
// Implementations: runtime/asio_transport (TCP), tests' FakeTransport, sim's network.
// Thread-safety: used from its owner's strand only; handler callbacks run on that strand.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dht/frame.h"
#include "dht/peer_identity.h"
#include "dht/status.h"

namespace ringstore {

using ConnId = uint64_t;

class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // A peer connected to our listener.
  virtual void OnAccepted(ConnId conn, const std::string& peer_address) = 0;
  // An outgoing Connect() completed.
  virtual void OnConnected(ConnId conn) = 0;
  virtual void OnFrame(ConnId conn, Frame frame) = 0;
  // The byte stream is broken (bad magic, checksum, oversized length). The handler may send
  // one last frame; the transport closes the connection after flushing it.
  virtual void OnStreamError(ConnId conn, const Status& status) = 0;
  // The connection is gone (peer closed, I/O error, Close()). No more callbacks for conn.
  virtual void OnClosed(ConnId conn, const Status& why) = 0;
  // A peer was turned away before it became a connection (a failed TLS handshake, a
  // certificate for another cluster, plaintext at a TLS listener). For the log.
  virtual void OnRefused(const std::string& peer_address, const Status& why) {}
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void SetHandler(TransportHandler* handler) = 0;
  // Starts connecting to "host:port". Frames sent before OnConnected are queued.
  // Failure is reported through OnClosed.
  virtual ConnId Connect(const std::string& address) = 0;
  // Queues a frame (already encoded by EncodeFrame). Unknown or closed conn: dropped.
  virtual void Send(ConnId conn, std::string encoded_frame) = 0;
  // Sends head, *value (if not null) and tail as the bytes of one frame; with no value and
  // no tail it is Send(head). The value may be shared with frames to other connections: the
  // transport keeps it alive until written and does not copy it. This default joins the
  // three (the simulator's and tests' transports).
  virtual void SendShared(ConnId conn, std::string head, std::shared_ptr<const std::string> value, std::string tail) {
    if (value) head += *value;
    head += tail;
    Send(conn, std::move(head));
  }
  // Closes after the queued frames are written.
  virtual void Close(ConnId conn) = 0;
  // Stops accepting new connections; established ones continue.
  virtual void StopAccepting() = 0;
  // Largest frame body accepted on conn from the next header on (default kMaxFrameBodyBytes).
  virtual void SetFrameLimit(ConnId conn, size_t max_body_bytes) = 0;
  // Who the peer of conn proved to be. Without TLS: Role::kOpen (no one is authenticated).
  virtual PeerIdentity PeerOf(ConnId conn) const { return {}; }
};

}  // namespace ringstore
