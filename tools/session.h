// Session: a blocking wrapper for command-line programs. It owns an io_context, the real
// clock and transport, and one or more Clients, and runs the loop until a call completes.
// Thread-safety: single-threaded; not for use inside callbacks.
#pragma once

#include <utility>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <vector>

#include "dht/client.h"
#include "dht/cluster_client.h"
#include "dht/random.h"
#include "node/runtime/asio_clock.h"
#include "node/runtime/asio_transport.h"

namespace ringstore {

// FitToRing (dht/cluster_client.h), and with warn,
// says so on stderr when they had to.
Quorum FitQuorum(Quorum q, size_t ring_nodes, bool warn);

class Session {
 public:
  // tls: every connection uses it (--tls-dir); null for plaintext.
  explicit Session(ClientOptions options, ClusterClientOptions cluster_options = {},
                   std::shared_ptr<TlsContext> tls = nullptr);
  ~Session();

  // The cluster client, connected through the first of seeds that answers.
  Status ConnectCluster(const std::vector<std::string>& seeds);
  ClusterClient& cluster() { return *cluster_; }

  boost::asio::io_context& io() { return io_; }
  Clock& clock() { return clock_; }
  // Adds a connected client (its own TCP connection); the first one is client().
  Status AddClient(const std::string& address);
  Client& client(size_t i = 0) { return *clients_[i].client; }
  size_t clients() const { return clients_.size(); }

  // Starts a call with a completion callback and runs the loop until it completes.
  template <typename T>
  Result<T> Wait(const std::function<void(std::function<void(Result<T>)>)>& start) {
    std::optional<Result<T>> out;
    start([&](Result<T> r) { out.emplace(std::move(r)); });
    while (!out) io_.run_one();
    return std::move(*out);
  }
  Status WaitStatus(const std::function<void(std::function<void(Status)>)>& start);
  // Runs the loop until the cluster client's read repairs are answered (at most the request
  // timeout), so that a repair a read started is not lost when the program exits.
  void DrainRepairs();

 private:
  std::unique_ptr<AsioTransport> NewTransport();
  struct Entry {
    std::unique_ptr<AsioTransport> transport;
    std::unique_ptr<Client> client;
  };
  ClientOptions options_;
  std::shared_ptr<TlsContext> tls_;
  boost::asio::io_context io_;
  AsioClock clock_;
  SeededRandom random_;
  std::vector<Entry> clients_;
  std::unique_ptr<ClusterClient> cluster_;
};

}  // namespace ringstore
