#include "node/runtime/asio_transport.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "node/runtime/acceptor.h"
#include "node/runtime/address.h"
#include "node/runtime/tls_session.h"

namespace ringstore {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr uint8_t kTlsHandshakeRecord = 0x16;  // the first byte a TLS client sends
// Frames smaller than this are joined before encryption, so that they share records.
constexpr size_t kTlsJoinBytes = 16u << 10;
// Plaintext encrypted per socket write. A larger frame goes in pieces, so that the peer
// decrypts the first while this side encrypts the next.
constexpr size_t kTlsFlushBytes = 256u << 10;

}  // namespace

struct AsioTransport::Connection {
  Connection(asio::io_context& io, ConnId id_, size_t buffer_bytes)
      : socket(io), resolver(io), deadline(io), id(id_), read_buf(buffer_bytes) {}
  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer deadline;      // an accepted TLS peer's handshake must end before it
  bool counted = false;             // counted in handshaking_
  std::unique_ptr<TlsSession> tls;  // set on a TLS connection
  std::string tls_peer;             // for messages: the peer's address (accepted) or the address dialled
  std::string tls_out;              // ciphertext being written
  std::string tls_join;             // small frames joined before encryption
  bool tls_writing = false;         // a write of tls_out is in flight
  size_t tls_sent = 0;              // bytes of out.front() already encrypted (a frame in pieces)
  size_t tls_sending = 0;           // what tls_sent becomes when the write in flight completes
  bool announced = false;           // the handler knows this connection (OnAccepted or Connect)
  PeerIdentity peer;
  uint64_t bytes_in = 0;
  ConnId id;
  FrameDecoder decoder;
  std::vector<char> read_buf;
  // Bytes waiting to be written: owned, or a value shared with frames to other connections.
  struct OutBytes {
    std::string own;
    std::shared_ptr<const std::string> shared;
    std::string_view view() const { return shared ? std::string_view(*shared) : std::string_view(own); }
  };
  std::deque<OutBytes> out;
  size_t out_bytes = 0;
  size_t writing_frames = 0;  // frames at the front of out that are being written
  bool connected = false;
  bool reading = false;
  bool read_paused = false;
  bool close_after_flush = false;
  bool closed = false;
  bool flush_posted = false;  // a StartWrite is queued behind the current handlers
};

AsioTransport::AsioTransport(asio::io_context& io, AsioTransportOptions options)
    : io_(io), options_(options) {}

AsioTransport::~AsioTransport() {
  *alive_ = false;
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  for (auto& [id, c] : conns_) {
    c->closed = true;
    c->socket.close(ec);
  }
}

Status AsioTransport::Listen(const std::string& address) {
  auto l = OpenAcceptor(io_, address);
  if (!l.ok()) return l.status();
  local_address_ = std::move(l->local_address);
  acceptor_ = std::move(l->acceptor);
  Accept();
  return Status::Ok();
}

void AsioTransport::StopAccepting() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
}

void AsioTransport::Accept() {
  auto c = std::make_shared<Connection>(io_, next_id_++, options_.read_buffer_bytes);
  acceptor_->async_accept(c->socket, [this, c, alive = alive_](boost::system::error_code ec) {
    if (!*alive || !acceptor_ || !acceptor_->is_open()) return;
    if (!ec) {
      if (conns_.size() + handshaking_ >= options_.max_connections) {
        c->socket.close(ec);
      } else {
        c->socket.set_option(tcp::no_delay(true), ec);
        boost::system::error_code pec;
        auto peer = c->socket.remote_endpoint(pec);
        const std::string name = pec ? std::string("?") : HostPort{peer.address().to_string(), peer.port()}.ToString();
        if (options_.tls) {
          AcceptTls(c, name);
        } else {
          Admit(c, name);
          StartRead(c);
        }
      }
    }
    Accept();
  });
}

void AsioTransport::Admit(const ConnPtr& c, const std::string& peer) {
  if (c->counted) {
    c->counted = false;
    --handshaking_;
    c->deadline.cancel();
  }
  c->connected = true;
  c->announced = true;
  conns_.emplace(c->id, c);
  if (handler_) handler_->OnAccepted(c->id, peer);
}

void AsioTransport::RefuseAdmitted(const ConnPtr& c, const Status& why) {
  if (handler_) handler_->OnStreamError(c->id, why);
  c->close_after_flush = true;
  if (c->out.empty()) Fail(c, why);
}

void AsioTransport::AcceptTls(const ConnPtr& c, const std::string& peer) {
  // Until it is admitted, the peer counts against max_connections and has a deadline.
  c->counted = true;
  ++handshaking_;
  c->deadline.expires_after(options_.tls_handshake_timeout);
  c->deadline.async_wait([this, c, peer, alive = alive_](boost::system::error_code ec) {
    if (!*alive || ec || c->announced || c->closed) return;
    if (handler_) {
      handler_->OnRefused(peer, Status::Refused("no TLS handshake within " +
                                                std::to_string(options_.tls_handshake_timeout.count()) + " ms"));
    }
    Fail(c, Status::Ok());
  });
  // Peek at the first byte: a TLS client opens with a handshake record, a plaintext
  // ringstore peer with a frame. The plaintext one gets a plaintext error it can read.
  c->socket.async_wait(tcp::socket::wait_read, [this, c, peer, alive = alive_](boost::system::error_code ec) {
    if (!*alive) return;
    uint8_t first = 0;
    if (ec || c->socket.receive(asio::buffer(&first, 1), tcp::socket::message_peek, ec) != 1 || ec) {
      return Fail(c, Status::Ok());  // gone before saying anything
    }
    c->peer.role = Role::kReadOnly;  // until the certificate says more (never read from if refused)
    if (first != kTlsHandshakeRecord) {
      Admit(c, peer);
      return RefuseAdmitted(c, Status::Refused("this node requires TLS: connect with --tls-dir and a certificate "
                                               "signed by the cluster's CA"));
    }
    c->tls = std::make_unique<TlsSession>(options_.tls->ssl_ctx(), TlsSession::Side::kServer);
    c->tls_peer = peer;
    StartRead(c);
  });
}

void AsioTransport::ConnectTls(const ConnPtr& c, const std::string& address) {
  c->tls = std::make_unique<TlsSession>(options_.tls->ssl_ctx(), TlsSession::Side::kClient);
  c->tls_peer = address;
  if (!TlsStep(c)) return;
  StartRead(c);
}

bool AsioTransport::TlsStep(const ConnPtr& c) {
  const bool server = !c->announced;
  Status s = c->tls->Handshake();
  FlushTls(c);  // the next handshake message, or the alert that tells the peer why
  if (!s.ok()) {
    if (server) {
      if (handler_) handler_->OnRefused(c->tls_peer, Status::Refused("TLS handshake failed: " + s.message()));
      c->close_after_flush = true;
      if (!c->tls_writing) Fail(c, s);
    } else {
      Fail(c, Status::Refused("TLS handshake with " + c->tls_peer + " failed: " + s.message()));
    }
    return false;
  }
  if (!c->tls->established()) return true;
  auto id = options_.tls->VerifiedPeer(c->tls->native());
  if (server) {
    if (id.ok()) c->peer = std::move(*id);
    Admit(c, c->tls_peer);
    if (!id.ok()) {
      RefuseAdmitted(c, id.status());
      return false;
    }
    return true;
  }
  if (id.ok() && id->role != Role::kNode) {
    id = Status::Refused(c->tls_peer + " presented the certificate of " + id->Describe() + ", not of a node");
  }
  if (!id.ok()) {
    Fail(c, Status::Refused(c->tls_peer + ": " + id.status().message()));
    return false;
  }
  c->peer = std::move(*id);
  c->connected = true;
  if (handler_) handler_->OnConnected(c->id);
  StartWrite(c);
  return !c->closed;
}

void AsioTransport::OnTlsRead(const ConnPtr& c, size_t n) {
  c->tls->Feed(c->read_buf.data(), n);
  if (!c->tls->established()) {
    if (!TlsStep(c)) return;
    if (!c->tls->established()) return StartRead(c);
  }
  // Application data may follow the handshake in the same read. The frames are handled as
  // they are decrypted; reading goes on once all are.
  bool open = true, peer_closed = false;
  Status s = c->tls->Drain([&](const char* p, size_t n) { return open = OnFrames(c, p, n); }, &peer_closed);
  if (c->closed) return;
  if (c->tls->HasOutput()) FlushTls(c);
  if (!s.ok()) return Fail(c, s);
  if (peer_closed) return Fail(c, Status::Ok());
  if (open) StartRead(c);
}

void AsioTransport::FlushTls(const ConnPtr& c) {
  if (c->closed || c->tls_writing) return;
  size_t n = 0, plain = 0;
  if (c->tls->established() && c->connected) {
    c->tls_join.clear();
    Status s;
    c->tls_sending = 0;
    while (s.ok() && n < c->out.size() && n < options_.max_gather_frames && plain < kTlsFlushBytes) {
      const std::string_view f = c->out[n].view();
      const size_t from = n == 0 ? c->tls_sent : 0;
      if (from == 0 && f.size() < kTlsJoinBytes) {
        c->tls_join += f;
        plain += f.size();
        ++n;
        continue;
      }
      if (!c->tls_join.empty()) s = c->tls->Write(c->tls_join.data(), c->tls_join.size());
      c->tls_join.clear();
      const size_t take = std::min(f.size() - from, kTlsFlushBytes - std::min(plain, kTlsFlushBytes));
      if (s.ok()) s = c->tls->Write(f.data() + from, take);
      plain += take;
      if (from + take < f.size()) {  // the rest of this frame goes with the next write
        c->tls_sending = from + take;
        break;
      }
      ++n;
    }
    if (s.ok() && !c->tls_join.empty()) s = c->tls->Write(c->tls_join.data(), c->tls_join.size());
    if (!s.ok()) return Fail(c, s);
  }
  c->tls_out.clear();
  c->tls->TakeOutput(&c->tls_out);
  if (c->tls_out.empty()) return;
  c->tls_writing = true;
  c->writing_frames = n;
  asio::async_write(c->socket, asio::buffer(c->tls_out), [this, c, alive = alive_](boost::system::error_code ec, size_t) {
    if (!*alive || c->closed) return;
    c->tls_writing = false;
    if (ec) return Fail(c, Status::Unavailable("write failed: " + ec.message()));
    Written(c);
  });
}

void AsioTransport::Written(const ConnPtr& c) {
  for (size_t i = 0; i < c->writing_frames; ++i) {
    c->out_bytes -= c->out.front().view().size();
    c->out.pop_front();
  }
  c->writing_frames = 0;
  c->tls_sent = c->tls_sending;  // 0 unless the new front frame went partly
  c->tls_sending = 0;
  if (c->out.empty() && c->close_after_flush) return Fail(c, Status::Ok());
  if (c->read_paused && c->out_bytes <= options_.write_high_water_bytes / 2) {
    c->read_paused = false;
    StartRead(c);
  }
  StartWrite(c);
}

ConnId AsioTransport::Connect(const std::string& address) {
  auto c = std::make_shared<Connection>(io_, next_id_++, options_.read_buffer_bytes);
  c->announced = true;
  conns_.emplace(c->id, c);
  auto hp = ParseHostPort(address);
  if (!hp.ok()) {
    asio::post(io_, [this, c, s = hp.status(), alive = alive_] {
      if (*alive) Fail(c, s);
    });
    return c->id;
  }
  c->resolver.async_resolve(
      hp->host, std::to_string(hp->port),
      [this, c, address, alive = alive_](boost::system::error_code ec, tcp::resolver::results_type results) {
        if (!*alive || c->closed) return;
        if (ec) return Fail(c, Status::Unavailable("cannot resolve " + address + ": " + ec.message()));
        asio::async_connect(c->socket, results,
                            [this, c, address, alive](boost::system::error_code ec, const tcp::endpoint&) {
                              if (!*alive || c->closed) return;
                              if (ec) {
                                return Fail(c, Status::Unavailable("cannot connect to " + address + ": " +
                                                                   ec.message()));
                              }
                              c->socket.set_option(tcp::no_delay(true), ec);
                              if (options_.tls) return ConnectTls(c, address);
                              c->connected = true;
                              if (handler_) handler_->OnConnected(c->id);
                              StartRead(c);
                              StartWrite(c);
                            });
      });
  return c->id;
}

AsioTransport::ConnPtr AsioTransport::Find(ConnId id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second;
}

void AsioTransport::Send(ConnId conn, std::string encoded_frame) {
  if (auto c = Find(conn); c && !c->close_after_flush) Enqueue(c, std::move(encoded_frame));
}

void AsioTransport::SendShared(ConnId conn, std::string head, std::shared_ptr<const std::string> value,
                               std::string tail) {
  auto c = Find(conn);
  if (!c || c->close_after_flush) return;
  Enqueue(c, std::move(head));
  if (value && !value->empty()) {
    c->out_bytes += value->size();
    c->out.push_back(Connection::OutBytes{{}, std::move(value)});
  }
  if (!tail.empty()) Enqueue(c, std::move(tail));
}

void AsioTransport::SetFrameLimit(ConnId conn, size_t max_body_bytes) {
  if (auto c = Find(conn)) c->decoder.set_max_body_bytes(max_body_bytes);
}

PeerIdentity AsioTransport::PeerOf(ConnId conn) const {
  auto it = conns_.find(conn);
  if (it != conns_.end()) return it->second->peer;
  PeerIdentity unknown;
  if (options_.tls) unknown.role = Role::kReadOnly;  // never more than the least role
  return unknown;
}

void AsioTransport::Close(ConnId conn) {
  auto c = Find(conn);
  if (!c) return;
  c->close_after_flush = true;
  // Not connected yet: cancel the connect; nothing queued is worth sending then.
  if (!c->connected || c->out.empty()) Fail(c, Status::Ok());
}

void AsioTransport::Enqueue(const ConnPtr& c, std::string bytes) {
  c->out_bytes += bytes.size();
  c->out.push_back(Connection::OutBytes{std::move(bytes), nullptr});
  // Corking: the write starts after the handlers that are ready now have run, so the
  // replies to a batch of pipelined requests leave in one writev instead of one each.
  if (c->connected && c->writing_frames == 0 && !c->tls_writing && !c->flush_posted) {
    c->flush_posted = true;
    asio::post(io_, [this, c, alive = alive_] {
      if (!*alive) return;
      c->flush_posted = false;
      StartWrite(c);
    });
  }
}

void AsioTransport::StartWrite(const ConnPtr& c) {
  if (c->tls) return FlushTls(c);
  if (c->closed || c->writing_frames > 0 || c->out.empty()) return;
  std::vector<asio::const_buffer> bufs;
  const size_t n = std::min(c->out.size(), options_.max_gather_frames);
  bufs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string_view b = c->out[i].view();
    bufs.emplace_back(asio::buffer(b.data(), b.size()));
  }
  c->writing_frames = n;
  asio::async_write(c->socket, bufs, [this, c, alive = alive_](boost::system::error_code ec, size_t) {
    if (!*alive || c->closed) return;
    if (ec) return Fail(c, Status::Unavailable("write failed: " + ec.message()));
    Written(c);
  });
}

void AsioTransport::StartRead(const ConnPtr& c) {
  if (c->closed || c->reading || c->close_after_flush) return;
  if (c->out_bytes > options_.write_high_water_bytes) {
    c->read_paused = true;
    return;
  }
  c->reading = true;
  auto on_read = [this, c, alive = alive_](boost::system::error_code ec, size_t n) {
    if (!*alive || c->closed) return;
    c->reading = false;
    if (ec == asio::error::eof && c->decoder.MidFrame()) {
      // Half-closed mid-frame: say so, then close after the reply.
      const Status why = Status::ProtocolError("connection closed mid-frame (truncated frame)");
      if (handler_) handler_->OnStreamError(c->id, why);
      c->close_after_flush = true;
      if (c->out.empty()) Fail(c, why);
      return;
    }
    if (ec == asio::error::eof && c->tls && !c->tls->established() && c->announced) {
      return Fail(c, Status::Refused("TLS handshake with " + c->tls_peer + " failed: the peer closed the connection"));
    }
    if (ec == asio::error::eof) return Fail(c, Status::Ok());
    if (ec) return Fail(c, Status::Unavailable("read failed: " + ec.message()));
    if (c->tls) return OnTlsRead(c, n);
    OnBytes(c, c->read_buf.data(), n);
  };
  c->socket.async_read_some(asio::buffer(c->read_buf), std::move(on_read));
}

void AsioTransport::OnBytes(const ConnPtr& c, const char* p, size_t n) {
  if (OnFrames(c, p, n)) StartRead(c);
}

bool AsioTransport::OnFrames(const ConnPtr& c, const char* p, size_t n) {
  Status s;
  const char* start = p;
  const bool first_bytes = c->bytes_in == 0;
  c->bytes_in += n;
  // Frame by frame: the handler sees each frame (and may change the frame limit) before the
  // next header is parsed. Once it has closed the connection, the rest is not served.
  while (n > 0 && s.ok() && !c->closed && !c->close_after_flush) {
    size_t used = 0;
    try {
      s = c->decoder.FeedOne(p, n, &used);
    } catch (const std::bad_alloc&) {
      // Out of memory while buffering this peer's frame: drop the connection, not the node.
      Fail(c, Status::IOError("out of memory while reading a frame"));
      return false;
    }
    p += used;
    n -= used;
    while (c->decoder.HasFrame() && !c->closed && !c->close_after_flush) {
      Frame f = c->decoder.Next();
      if (handler_) handler_->OnFrame(c->id, std::move(f));
    }
  }
  if (c->closed) return false;
  // Bad magic that is a TLS record header (0x16 0x03 0x00-0x04): say what it probably is.
  const auto* b = reinterpret_cast<const uint8_t*>(start);
  if (!s.ok() && first_bytes && !c->tls && c->bytes_in >= 3 && b[0] == kTlsHandshakeRecord && b[1] == 0x03 &&
      b[2] <= 0x04) {
    s = Status::ProtocolError("a TLS client connected, but this party runs without TLS (give it --tls-dir to accept "
                              "TLS)");
  }
  if (!s.ok()) {
    if (handler_) handler_->OnStreamError(c->id, s);
    c->close_after_flush = true;
    if (c->out.empty()) Fail(c, s);
    return false;
  }
  return true;
}

void AsioTransport::Fail(const ConnPtr& c, const Status& why) {
  if (c->closed) return;
  c->closed = true;
  if (c->counted) {
    c->counted = false;
    --handshaking_;
  }
  c->deadline.cancel();
  boost::system::error_code ec;
  c->socket.shutdown(tcp::socket::shutdown_both, ec);
  c->socket.close(ec);
  conns_.erase(c->id);
  if (handler_ && c->announced) handler_->OnClosed(c->id, why);
}

}  // namespace ringstore
