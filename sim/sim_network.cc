#include "sim/sim_network.h"

#include "dht/checksum.h"
#include "dht/messages.h"

namespace ringstore::sim {

namespace {

bool IsHandshake(const std::string& frame) {
  if (frame.size() < kFrameHeaderBytes) return true;
  const uint16_t kind = static_cast<uint16_t>(static_cast<uint8_t>(frame[6]) | static_cast<uint8_t>(frame[7]) << 8);
  return kind == static_cast<uint16_t>(Kind::kHello) || kind == static_cast<uint16_t>(Kind::kHelloReply);
}

}  // namespace

void SimNetwork::Trace(uint64_t a, uint64_t b, uint64_t c) {
  const uint64_t v[4] = {trace_, a, b, c};
  trace_ = Checksum64(std::string_view(reinterpret_cast<const char*>(v), sizeof v));
}

Time SimNetwork::Latency() {
  const int64_t lo = faults_.min_latency.count(), hi = faults_.max_latency.count();
  Time t(lo + static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(std::max<int64_t>(1, hi - lo)))));
  if (faults_.reorder_jitter.count() > 0) {
    t += Time(static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(faults_.reorder_jitter.count()))));
  }
  return t;
}

void SimNetwork::Deliver(ConnId to, const std::string& from_host, std::string bytes, bool allow_dup) {
  auto it = ends_.find(to);
  if (it == ends_.end()) return;
  End& end = *it->second;
  ++stats_.frames_sent;
  if (IsCut(from_host, end.owner->host()) || (faults_.loss > 0 && rng_.NextDouble() < faults_.loss)) {
    ++stats_.frames_dropped;
    return;
  }
  const int copies = allow_dup && faults_.dup > 0 && !IsHandshake(bytes) && rng_.NextDouble() < faults_.dup ? 2 : 1;
  if (copies == 2) ++stats_.frames_duplicated;
  for (int i = 0; i < copies; ++i) {
    Time at = loop_.now() + Latency();
    if (at < end.last_delivery) at = end.last_delivery;  // in order, as on TCP
    end.last_delivery = at;
    std::string copy = i + 1 < copies ? bytes : std::move(bytes);
    loop_.At(at, [this, to, b = std::move(copy)] { Receive(to, b); });
  }
}

void SimNetwork::Receive(ConnId to, const std::string& bytes) {
  auto it = ends_.find(to);
  if (it == ends_.end() || it->second->closing) return;
  End* end = it->second.get();
  ++stats_.frames_delivered;
  Trace(static_cast<uint64_t>(loop_.now().count()), to, Checksum64(bytes));
  Status s = end->decoder.Feed(bytes.data(), bytes.size());
  SimTransport* owner = end->owner;
  while (s.ok() && ends_.count(to) != 0 && !end->closing && end->decoder.HasFrame()) {
    Frame f = end->decoder.Next();
    if (owner->handler_) owner->handler_->OnFrame(to, std::move(f));
  }
  if (!s.ok() && ends_.count(to) != 0 && !end->closing) {
    if (owner->handler_) owner->handler_->OnStreamError(to, s);
    owner->Close(to);
  }
}

void SimNetwork::CloseEnd(ConnId id, const Status& why, Time delay) {
  loop_.After(delay, [this, id, why] {
    auto it = ends_.find(id);
    if (it == ends_.end()) return;
    SimTransport* owner = it->second->owner;
    ends_.erase(it);
    owner->mine_.erase(id);
    if (owner->handler_) owner->handler_->OnClosed(id, why);
  });
}

SimTransport::SimTransport(SimNetwork& net, std::string host, bool listen)
    : net_(net), host_(std::move(host)), accepting_(listen) {
  if (listen) net_.listeners_[host_] = this;
}

SimTransport::~SimTransport() {
  auto l = net_.listeners_.find(host_);
  if (l != net_.listeners_.end() && l->second == this) net_.listeners_.erase(l);
  for (ConnId id : mine_) {
    auto it = net_.ends_.find(id);
    if (it == net_.ends_.end()) continue;
    const ConnId peer = it->second->peer;
    net_.ends_.erase(it);
    // The peer's kernel resets the connection once it hears of the crash.
    net_.CloseEnd(peer, Status::Unavailable("peer " + host_ + " crashed"), net_.Latency());
  }
}

ConnId SimTransport::Connect(const std::string& address) {
  const ConnId mine = net_.next_conn_++;
  const ConnId theirs = net_.next_conn_++;
  ++net_.stats_.connects;
  auto l = net_.listeners_.find(address);
  const bool cut = net_.IsCut(host_, address) || net_.IsCut(address, host_);
  net_.ends_[mine] = std::make_unique<SimNetwork::End>(SimNetwork::End{this, theirs, FrameDecoder()});
  mine_.insert(mine);
  if (l == net_.listeners_.end() || !l->second->accepting_ || cut) {
    ++net_.stats_.connects_refused;
    // Refused at once by a live host; a cut link swallows the SYN until the timeout.
    net_.CloseEnd(mine, Status::Unavailable("cannot connect to " + address),
                  cut ? net_.faults_.connect_timeout : net_.Latency());
    net_.ends_[mine]->peer = 0;
    return mine;
  }
  SimTransport* server = l->second;
  net_.ends_[theirs] = std::make_unique<SimNetwork::End>(SimNetwork::End{server, mine, FrameDecoder()});
  server->mine_.insert(theirs);
  const Time lat = net_.Latency();
  // Frames sent before the accept queue behind it: both ends deliver in order from here.
  net_.ends_[theirs]->last_delivery = net_.loop_.now() + lat;
  net_.ends_[mine]->last_delivery = net_.loop_.now() + lat + lat;
  const std::string me = host_;
  net_.loop_.At(net_.loop_.now() + lat, [this_net = &net_, theirs, me] {
    auto it = this_net->ends_.find(theirs);
    if (it == this_net->ends_.end()) return;
    if (it->second->owner->handler_) it->second->owner->handler_->OnAccepted(theirs, me);
  });
  net_.loop_.At(net_.loop_.now() + lat + lat, [this_net = &net_, mine] {
    auto it = this_net->ends_.find(mine);
    if (it == this_net->ends_.end()) return;
    if (it->second->owner->handler_) it->second->owner->handler_->OnConnected(mine);
  });
  return mine;
}

void SimTransport::Send(ConnId conn, std::string frame) {
  auto it = net_.ends_.find(conn);
  if (it == net_.ends_.end() || it->second->closing || it->second->peer == 0) return;
  net_.Deliver(it->second->peer, host_, std::move(frame), /*allow_dup=*/true);
}

void SimTransport::Close(ConnId conn) {
  auto it = net_.ends_.find(conn);
  if (it == net_.ends_.end() || it->second->closing) return;
  it->second->closing = true;
  const ConnId peer = it->second->peer;
  net_.CloseEnd(conn, Status::Ok(), Time{0});
  if (peer != 0) {
    auto p = net_.ends_.find(peer);
    // The FIN follows the frames already sent.
    const Time after = p == net_.ends_.end() ? Time{0} : p->second->last_delivery - net_.loop_.now();
    net_.CloseEnd(peer, Status::Unavailable("peer closed the connection"),
                  std::max(after, Time{0}) + net_.Latency());
  }
}

void SimTransport::SetFrameLimit(ConnId conn, size_t max_body_bytes) {
  auto it = net_.ends_.find(conn);
  if (it != net_.ends_.end()) it->second->decoder.set_max_body_bytes(max_body_bytes);
}

}  // namespace ringstore::sim
