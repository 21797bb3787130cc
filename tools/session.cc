#include "tools/session.h"

namespace ringstore {

Session::Session(ClientOptions options)
    : options_(std::move(options)), io_(1), clock_(io_), random_(OsRandomSeed()) {}

Session::~Session() {
  clients_.clear();
  io_.poll();  // let the closes and cancelled timers run their handlers
}

Status Session::WaitStatus(const std::function<void(std::function<void(Status)>)>& start) {
  std::optional<Status> out;
  start([&](Status s) { out.emplace(std::move(s)); });
  while (!out) io_.run_one();
  return *out;
}

Status Session::AddClient(const std::string& address) {
  Entry e;
  e.transport = std::make_unique<AsioTransport>(io_);
  e.client = std::make_unique<Client>(options_, clock_, *e.transport, random_);
  Client* c = e.client.get();
  clients_.push_back(std::move(e));
  return WaitStatus([&](std::function<void(Status)> done) { c->Connect(address, std::move(done)); });
}

}  // namespace ringstore
