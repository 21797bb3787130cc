#include "tools/session.h"

#include <iostream>

namespace ringstore {

Session::Session(ClientOptions options, ClusterClientOptions cluster_options, std::shared_ptr<TlsContext> tls)
    : options_(std::move(options)), tls_(std::move(tls)), io_(1), clock_(io_), random_(OsRandomSeed()) {
  cluster_options.connection = options_;
  cluster_ = std::make_unique<ClusterClient>(cluster_options, clock_, random_, [this] { return NewTransport(); });
}

std::unique_ptr<AsioTransport> Session::NewTransport() {
  AsioTransportOptions o;
  o.tls = tls_;
  return std::make_unique<AsioTransport>(io_, o);
}

Session::~Session() {
  cluster_.reset();
  clients_.clear();
  io_.poll();  // let the closes and cancelled timers run their handlers
}

Quorum FitQuorum(Quorum q, size_t ring_nodes, bool warn) {
  const Quorum fit = FitToRing(q, ring_nodes);
  if (warn && (fit.n != q.n || fit.w != q.w || fit.r != q.r)) {
    std::cerr << "ringstore: the ring has " << ring_nodes << " node(s): using N=" << fit.n << " W=" << fit.w
              << " R=" << fit.r << "\n";
  }
  return fit;
}

Status Session::ConnectCluster(const std::vector<std::string>& seeds) {
  return WaitStatus([&](std::function<void(Status)> done) { cluster_->Connect(seeds, std::move(done)); });
}

Status Session::WaitStatus(const std::function<void(std::function<void(Status)>)>& start) {
  std::optional<Status> out;
  start([&](Status s) { out.emplace(std::move(s)); });
  while (!out) io_.run_one();
  return *out;
}

void Session::DrainRepairs() {
  if (!cluster_ || cluster_->repairs_in_flight() == 0) return;
  bool expired = false;
  const auto timer = clock_.Schedule(options_.request_timeout, [&] { expired = true; });
  while (cluster_->repairs_in_flight() > 0 && !expired) io_.run_one();
  clock_.Cancel(timer);
}

Status Session::AddClient(const std::string& address) {
  Entry e;
  e.transport = NewTransport();
  e.client = std::make_unique<Client>(options_, clock_, *e.transport, random_);
  Client* c = e.client.get();
  clients_.push_back(std::move(e));
  return WaitStatus([&](std::function<void(Status)> done) { c->Connect(address, std::move(done)); });
}

}  // namespace ringstore
