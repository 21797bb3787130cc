// OpenAcceptor: a listening TCP socket for "host:port" (a name is resolved; port 0 picks a
// free port). Shared by the node transport and the gateways' servers.
// Thread-safety: call on the io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>

#include "dht/status.h"

namespace ringstore {

struct Listener {
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
  std::string local_address;  // the bound address, "host:port"
};

Result<Listener> OpenAcceptor(boost::asio::io_context& io, const std::string& address);

}  // namespace ringstore
