#include "node/runtime/acceptor.h"

#include "node/runtime/address.h"

namespace ringstore {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<Listener> OpenAcceptor(asio::io_context& io, const std::string& address) {
  auto hp = ParseHostPort(address);
  if (!hp.ok()) return hp.status();
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(hp->host, ec);
  if (ec) {
    tcp::resolver resolver(io);
    auto results = resolver.resolve(hp->host, std::to_string(hp->port), ec);
    if (ec || results.empty()) return Status::InvalidArgument("cannot resolve " + hp->host);
    ip = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(ip, hp->port);
  Listener l;
  l.acceptor = std::make_unique<tcp::acceptor>(io);
  l.acceptor->open(ep.protocol(), ec);
  if (!ec) l.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) l.acceptor->bind(ep, ec);
  if (!ec) l.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("cannot listen on " + address + ": " + ec.message());
  auto bound = l.acceptor->local_endpoint(ec);
  l.local_address = HostPort{bound.address().to_string(), bound.port()}.ToString();
  return l;
}

}  // namespace ringstore
