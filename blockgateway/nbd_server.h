// NbdServer: the block gateway's TCP side. It accepts NBD connections, runs an NbdSession on
// each, and serves their requests from one VolumeCache per volume, shared by every
// connection to that volume (so a FLUSH on one covers writes made on all, as CAN_MULTI_CONN
// promises). Exports are the volumes in the cluster's catalog, looked up on each
// connection, so a volume created after start is served at once.
//
// A server that writes holds a lease on each volume it has connections to or dirty chunks of,
// and lets it go when it has neither (volume_lease.h), so that `volume rm` and a shrink wait.
//
// Ownership: the server owns its connections, volume caches, chunk stores and leases; it borrows the
// io_context, ClusterClient, Clock and logger, which must outlive it.
// Thread-safety: everything runs on the io_context's one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "blockgateway/chunk_store.h"
#include "blockgateway/nbd_protocol.h"
#include "blockgateway/volume.h"
#include "blockgateway/volume_cache.h"
#include "blockgateway/volume_lease.h"
#include "dht/cluster_client.h"
#include "node/runtime/tls.h"

namespace ringstore::block {

struct ServerOptions {
  bool read_only = false;
  CacheLimits cache;
  RetryPolicy retry;
  nbd::SessionLimits session;
  Quorum meta_quorum;  // for volume metadata and leases, fitted to the ring at each request
  // NBD over TLS in FORCEDTLS mode (STARTTLS, mutual authentication against the cluster's
  // CA; a read-only client certificate sees every export read-only). Null: plaintext NBD.
  std::shared_ptr<TlsContext> tls;
  // The lease a gateway that writes holds on each volume it serves (volume_lease.h); its
  // holder name is this host's name, the NBD address and a random id. drain: how long a
  // chunk write can still land after the lease ran out (its attempts' timeouts).
  Clock::Duration lease_term = std::chrono::seconds(30);
  Clock::Duration lease_drain = std::chrono::seconds(40);
};

class NbdServer {
 public:
  NbdServer(boost::asio::io_context& io, ClusterClient& client, Clock& clock, std::shared_ptr<spdlog::logger> log,
            ServerOptions options);
  ~NbdServer();

  Status Listen(const std::string& address);
  std::string local_address() const;
  // Stops accepting, lets connections finish, writes back every dirty chunk, then calls done
  // with the first writeback failure.
  void Shutdown(std::function<void(Status)> done);
  size_t connections() const { return connections_.size(); }

 private:
  class Connection;
  struct Volume {
    VolumeMeta meta;
    std::unique_ptr<ClusterChunkStore> store;
    std::unique_ptr<VolumeCache> cache;
    std::unique_ptr<VolumeLease> lease;  // null on a read-only server
    bool ready = false;                  // the lease is held (or none is needed)
    bool release_check_armed = false;    // MaybeRelease will look again (it writes back)
    std::vector<std::function<void(Status)>> waiting;  // lookups while it is acquired
  };
  void Accept();
  void Lookup(const std::string& name, std::function<void(Result<std::shared_ptr<Volume>>)> done);
  void List(std::function<void(Result<std::vector<std::string>>)> done);
  void Closed(Connection* c);
  // Lets go of a volume nobody uses and nothing dirty is left of, and forgets it.
  void MaybeRelease(const std::string& name);
  // MaybeRelease once the current handler is done (and its references to the volume gone).
  void ReleaseLater(const std::string& name);
  void Opened(const std::string& name, std::shared_ptr<Volume> v, std::function<void(Result<std::shared_ptr<Volume>>)> done);

  boost::asio::io_context& io_;
  ClusterClient& client_;
  Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  const ServerOptions options_;
  VolumeCatalog catalog_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::map<Connection*, std::shared_ptr<Connection>> connections_;
  std::map<std::string, std::shared_ptr<Volume>> volumes_;
  bool stopping_ = false;
  uint64_t next_conn_id_ = 1;
  std::string holder_;  // the name of this gateway's leases, set by Listen
};

}  // namespace ringstore::block
