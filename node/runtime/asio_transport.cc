#include "node/runtime/asio_transport.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "node/runtime/acceptor.h"
#include "node/runtime/address.h"

namespace ringstore {

namespace asio = boost::asio;
using asio::ip::tcp;

struct AsioTransport::Connection {
  Connection(asio::io_context& io, ConnId id_, size_t buffer_bytes)
      : socket(io), resolver(io), id(id_), read_buf(buffer_bytes) {}
  tcp::socket socket;
  tcp::resolver resolver;
  ConnId id;
  FrameDecoder decoder;
  std::vector<char> read_buf;
  std::deque<std::string> out;
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
      if (conns_.size() >= options_.max_connections) {
        c->socket.close(ec);
      } else {
        c->socket.set_option(tcp::no_delay(true), ec);
        c->connected = true;
        conns_.emplace(c->id, c);
        boost::system::error_code pec;
        auto peer = c->socket.remote_endpoint(pec);
        if (handler_) {
          handler_->OnAccepted(c->id, pec ? std::string("?")
                                          : HostPort{peer.address().to_string(), peer.port()}.ToString());
        }
        StartRead(c);
      }
    }
    Accept();
  });
}

ConnId AsioTransport::Connect(const std::string& address) {
  auto c = std::make_shared<Connection>(io_, next_id_++, options_.read_buffer_bytes);
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

void AsioTransport::SendParts(ConnId conn, std::string header, std::string body) {
  if (auto c = Find(conn); c && !c->close_after_flush) {
    Enqueue(c, std::move(header));
    Enqueue(c, std::move(body));
  }
}

void AsioTransport::SetFrameLimit(ConnId conn, size_t max_body_bytes) {
  if (auto c = Find(conn)) c->decoder.set_max_body_bytes(max_body_bytes);
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
  c->out.push_back(std::move(bytes));
  // Corking: the write starts after the handlers that are ready now have run, so the
  // replies to a batch of pipelined requests leave in one writev instead of one each.
  if (c->connected && c->writing_frames == 0 && !c->flush_posted) {
    c->flush_posted = true;
    asio::post(io_, [this, c, alive = alive_] {
      if (!*alive) return;
      c->flush_posted = false;
      StartWrite(c);
    });
  }
}

void AsioTransport::StartWrite(const ConnPtr& c) {
  if (c->closed || c->writing_frames > 0 || c->out.empty()) return;
  std::vector<asio::const_buffer> bufs;
  const size_t n = std::min(c->out.size(), options_.max_gather_frames);
  bufs.reserve(n);
  for (size_t i = 0; i < n; ++i) bufs.emplace_back(asio::buffer(c->out[i]));
  c->writing_frames = n;
  asio::async_write(c->socket, bufs, [this, c, alive = alive_](boost::system::error_code ec, size_t) {
    if (!*alive || c->closed) return;
    if (ec) return Fail(c, Status::Unavailable("write failed: " + ec.message()));
    for (size_t i = 0; i < c->writing_frames; ++i) {
      c->out_bytes -= c->out.front().size();
      c->out.pop_front();
    }
    c->writing_frames = 0;
    if (c->out.empty() && c->close_after_flush) return Fail(c, Status::Ok());
    if (c->read_paused && c->out_bytes <= options_.write_high_water_bytes / 2) {
      c->read_paused = false;
      StartRead(c);
    }
    StartWrite(c);
  });
}

void AsioTransport::StartRead(const ConnPtr& c) {
  if (c->closed || c->reading || c->close_after_flush) return;
  if (c->out_bytes > options_.write_high_water_bytes) {
    c->read_paused = true;
    return;
  }
  c->reading = true;
  c->socket.async_read_some(asio::buffer(c->read_buf),
                            [this, c, alive = alive_](boost::system::error_code ec, size_t n) {
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
                              if (ec) {
                                return Fail(c, ec == asio::error::eof
                                                   ? Status::Ok()
                                                   : Status::Unavailable("read failed: " + ec.message()));
                              }
                              OnRead(c, n);
                            });
}

void AsioTransport::OnRead(const ConnPtr& c, size_t n) {
  Status s;
  const char* p = c->read_buf.data();
  // Frame by frame: the handler sees each frame (and may change the frame limit) before the
  // next header is parsed. Once it has closed the connection, the rest is not served.
  while (n > 0 && s.ok() && !c->closed && !c->close_after_flush) {
    size_t used = 0;
    try {
      s = c->decoder.FeedOne(p, n, &used);
    } catch (const std::bad_alloc&) {
      // Out of memory while buffering this peer's frame: drop the connection, not the node.
      return Fail(c, Status::IOError("out of memory while reading a frame"));
    }
    p += used;
    n -= used;
    while (c->decoder.HasFrame() && !c->closed && !c->close_after_flush) {
      Frame f = c->decoder.Next();
      if (handler_) handler_->OnFrame(c->id, std::move(f));
    }
  }
  if (c->closed) return;
  if (!s.ok()) {
    if (handler_) handler_->OnStreamError(c->id, s);
    c->close_after_flush = true;
    if (c->out.empty()) Fail(c, s);
    return;
  }
  StartRead(c);
}

void AsioTransport::Fail(const ConnPtr& c, const Status& why) {
  if (c->closed) return;
  c->closed = true;
  boost::system::error_code ec;
  c->socket.shutdown(tcp::socket::shutdown_both, ec);
  c->socket.close(ec);
  conns_.erase(c->id);
  if (handler_) handler_->OnClosed(c->id, why);
}

}  // namespace ringstore
