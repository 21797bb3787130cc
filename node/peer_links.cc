#include "node/peer_links.h"

#include <algorithm>

#include "dht/messages.h"

namespace ringstore {

PeerLinks::PeerLinks(PeerLinkOptions options, std::string cluster_id, std::string node_id, Transport& transport,
                     Clock& clock, std::shared_ptr<spdlog::logger> log)
    : options_(options), cluster_id_(std::move(cluster_id)), node_id_(std::move(node_id)), transport_(transport),
      clock_(clock), log_(std::move(log)) {}

PeerLinks::~PeerLinks() {
  for (auto& [address, link] : by_address_) clock_.Cancel(link.deadline);
  for (auto& [rid, p] : pending_) clock_.Cancel(p.timer);
}

void PeerLinks::Request(const std::string& address, const std::function<std::string(uint64_t)>& build,
                        Clock::Duration timeout, std::function<void(Result<Frame>)> done) {
  if (pending_.size() >= options_.max_pending_requests) {
    return done(Status::Unavailable("too many requests pending to peers"));
  }
  const uint64_t rid = next_request_id_++;
  Pending& p = pending_[rid];
  p.address = address;
  p.done = std::move(done);
  p.timer = clock_.Schedule(timeout, [this, rid, address] {
    Complete(rid, Status::Timeout("peer " + address + " did not answer in time"));
  });
  SendTo(address, build(rid));
}

void PeerLinks::Complete(uint64_t request_id, Result<Frame> r) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  auto done = std::move(it->second.done);
  clock_.Cancel(it->second.timer);
  pending_.erase(it);
  done(std::move(r));
}

void PeerLinks::SendTo(const std::string& address, std::string frame) {
  auto it = by_address_.find(address);
  if (it == by_address_.end()) {
    Link link;
    link.conn = transport_.Connect(address);
    link.deadline = clock_.Schedule(options_.connect_timeout, [this, address] {
      auto l = by_address_.find(address);
      if (l == by_address_.end() || l->second.connected) return;
      log_->debug("peer {} did not connect in time", address);
      const ConnId conn = l->second.conn;
      Drop(address);
      transport_.Close(conn);
    });
    Hello hello;
    hello.cluster_id = cluster_id_;
    hello.node_id = node_id_;
    hello.features = {"membership"};
    transport_.Send(link.conn, EncodeHello(Kind::kHello, 0, hello));
    by_conn_[link.conn] = address;
    it = by_address_.emplace(address, link).first;
  }
  Link& link = it->second;
  if (!link.connected && link.queued >= options_.max_queued_frames) return;  // bounded; dropped
  if (!link.connected) ++link.queued;
  transport_.Send(link.conn, std::move(frame));
}

void PeerLinks::OnConnected(ConnId conn) {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return;
  Link& link = by_address_.at(it->second);
  link.connected = true;
  link.queued = 0;
  clock_.Cancel(link.deadline);
}

void PeerLinks::OnFrame(ConnId conn, Frame frame) {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return;
  if (pending_.count(frame.header.request_id) != 0) return Complete(frame.header.request_id, std::move(frame));
  const std::string address = it->second;
  const auto kind = static_cast<Kind>(frame.header.kind);
  if (kind == Kind::kHelloReply) {
    auto hello = DecodeHello(frame.body);
    if (hello.ok() && hello->cluster_id == cluster_id_) {
      by_address_.at(address).features = std::move(hello->features);
      return;
    }
    log_->error("peer {} is not part of cluster '{}' ({}); dropping the link", address, cluster_id_,
                hello.ok() ? "it belongs to cluster '" + hello->cluster_id + "'" : hello.status().ToString());
  } else if (kind == Kind::kError) {
    auto e = DecodeError(frame.body);
    log_->error("peer {} refused this node: {}", address, e.ok() ? e->ToStatus().ToString() : e.status().ToString());
  } else {
    return;  // membership traffic comes back on the peer's own link, not this one
  }
  Drop(address);
  transport_.Close(conn);
}

bool PeerLinks::Announced(const std::string& address, std::string_view feature) const {
  auto it = by_address_.find(address);
  if (it == by_address_.end()) return false;
  const auto& f = it->second.features;
  return std::find(f.begin(), f.end(), feature) != f.end();
}

void PeerLinks::OnClosed(ConnId conn, const Status& why) {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return;
  if (!why.ok()) log_->debug("link to peer {} closed: {}", it->second, why.ToString());
  Drop(it->second);
}

void PeerLinks::Drop(const std::string& address_ref) {
  // A copy: callers pass strings that live in the maps this erases from.
  const std::string address = address_ref;
  auto it = by_address_.find(address);
  if (it == by_address_.end()) return;
  clock_.Cancel(it->second.deadline);
  by_conn_.erase(it->second.conn);
  by_address_.erase(it);
  std::vector<uint64_t> lost;
  for (const auto& [rid, p] : pending_) {
    if (p.address == address) lost.push_back(rid);
  }
  for (uint64_t rid : lost) Complete(rid, Status::Unavailable("link to peer " + address + " lost"));
}

}  // namespace ringstore
