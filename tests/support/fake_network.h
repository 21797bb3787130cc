// FakeNetwork: an in-memory network of FakeTransports for unit tests. Every delivery and
// every store completion goes through one task queue that the test drains with
// RunUntilIdle(), so a test controls exactly what has happened. Frames pass through a real
// FrameDecoder on the receiving side, so raw malformed bytes behave as on TCP.
// Thread-safety: single-threaded.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "dht/frame.h"
#include "dht/transport.h"
#include "storage/store.h"

namespace ringstore::testing {

class FakeTransport;

class FakeNetwork {
 public:
  void Post(std::function<void()> fn) { tasks_.push_back(std::move(fn)); }
  Executor executor() {
    return [this](std::function<void()> fn) { Post(std::move(fn)); };
  }
  // Runs the oldest queued task; false if there was none.
  bool RunOne() {
    if (tasks_.empty()) return false;
    auto fn = std::move(tasks_.front());
    tasks_.pop_front();
    fn();
    return true;
  }
  // Runs queued tasks (and the tasks they queue) until none is left; returns how many ran.
  size_t RunUntilIdle() {
    size_t n = 0;
    while (!tasks_.empty()) {
      auto fn = std::move(tasks_.front());
      tasks_.pop_front();
      fn();
      ++n;
    }
    return n;
  }

 private:
  friend class FakeTransport;
  struct End {
    FakeTransport* owner;
    ConnId local;
    FakeTransport* peer;
    ConnId remote;
    FrameDecoder decoder;  // decodes what this end receives
    bool closing = false;
  };
  std::deque<std::function<void()>> tasks_;
  std::map<std::string, FakeTransport*> listeners_;
  ConnId next_conn_ = 1;
};

class FakeTransport final : public Transport {
 public:
  // address empty: a client-only transport.
  FakeTransport(FakeNetwork& net, std::string address) : net_(net), address_(std::move(address)) {
    if (!address_.empty()) net_.listeners_[address_] = this;
  }
  ~FakeTransport() override {
    if (!address_.empty() && net_.listeners_[address_] == this) net_.listeners_.erase(address_);
  }

  void SetHandler(TransportHandler* handler) override { handler_ = handler; }

  ConnId Connect(const std::string& address) override {
    const ConnId mine = net_.next_conn_++;
    auto it = net_.listeners_.find(address);
    if (it == net_.listeners_.end() || !it->second->accepting_) {
      net_.Post([this, mine, address] {
        if (handler_) handler_->OnClosed(mine, Status::Unavailable("cannot connect to " + address));
      });
      return mine;
    }
    FakeTransport* server = it->second;
    const ConnId theirs = net_.next_conn_++;
    ends_[mine] = std::make_shared<FakeNetwork::End>(FakeNetwork::End{this, mine, server, theirs, FrameDecoder()});
    server->ends_[theirs] = std::make_shared<FakeNetwork::End>(FakeNetwork::End{server, theirs, this, mine, FrameDecoder()});
    net_.Post([server, theirs, addr = address_] {
      if (server->handler_) server->handler_->OnAccepted(theirs, addr.empty() ? "client" : addr);
    });
    net_.Post([this, mine] {
      if (handler_) handler_->OnConnected(mine);
    });
    return mine;
  }

  void Send(ConnId conn, std::string frame) override {
    if (on_send) on_send(frame);
    SendRaw(conn, std::move(frame));
  }
  // Test hook: sees each frame given to Send (what a node asks of its peers, say), and may
  // change it (to make a node look like an older one).
  std::function<void(std::string& frame)> on_send;
  // Test hook: delivers arbitrary bytes to the peer, through its frame decoder.
  void SendRaw(ConnId conn, std::string bytes) {
    if (dead_) return;
    auto it = ends_.find(conn);
    if (it == ends_.end() || it->second->closing) return;
    FakeTransport* peer = it->second->peer;
    const ConnId remote = it->second->remote;
    ++frames_sent_;
    net_.Post([peer, remote, bytes = std::move(bytes)] { peer->Receive(remote, bytes); });
  }
  void Close(ConnId conn) override {
    auto it = ends_.find(conn);
    if (it == ends_.end() || it->second->closing) return;
    it->second->closing = true;
    FakeTransport* peer = it->second->peer;
    const ConnId remote = it->second->remote;
    // Queued behind the frames already sent, like a TCP FIN.
    net_.Post([this, conn] { Drop(conn, Status::Ok()); });
    net_.Post([peer, remote] { peer->Drop(remote, Status::Unavailable("peer closed the connection")); });
  }
  void StopAccepting() override { accepting_ = false; }
  void SetFrameLimit(ConnId conn, size_t max_body_bytes) override {
    if (auto it = ends_.find(conn); it != ends_.end()) it->second->decoder.set_max_body_bytes(max_body_bytes);
    frame_limits_[conn] = max_body_bytes;
  }
  size_t frame_limit(ConnId conn) const {
    auto it = frame_limits_.find(conn);
    return it == frame_limits_.end() ? kMaxFrameBodyBytes : it->second;
  }

  // The process behind this transport dies: nothing is accepted or delivered any more, and
  // every connection drops (the peers see it closed).
  void Crash() {
    accepting_ = false;
    dead_ = true;
    for (auto& [conn, end] : std::map<ConnId, std::shared_ptr<FakeNetwork::End>>(ends_)) {
      FakeTransport* peer = end->peer;
      const ConnId remote = end->remote;
      ends_.erase(conn);
      net_.Post([peer, remote] { peer->Drop(remote, Status::Unavailable("peer crashed")); });
    }
  }

  bool IsOpen(ConnId conn) const { return ends_.count(conn) != 0; }
  size_t open_connections() const { return ends_.size(); }
  uint64_t frames_sent() const { return frames_sent_; }

 private:
  void Receive(ConnId conn, const std::string& bytes) {
    if (dead_) return;
    auto it = ends_.find(conn);
    if (it == ends_.end()) return;
    auto end = it->second;  // keep alive across callbacks
    Status s;
    const char* p = bytes.data();
    size_t n = bytes.size();
    // Frame by frame, as AsioTransport does.
    while (n > 0 && s.ok() && ends_.count(conn) && !end->closing) {
      size_t used = 0;
      s = end->decoder.FeedOne(p, n, &used);
      p += used;
      n -= used;
      while (end->decoder.HasFrame() && ends_.count(conn) && !end->closing) {
        Frame f = end->decoder.Next();
        if (handler_) handler_->OnFrame(conn, std::move(f));
      }
    }
    if (!s.ok() && ends_.count(conn) && !end->closing) {
      if (handler_) handler_->OnStreamError(conn, s);
      Close(conn);
    }
  }
  void Drop(ConnId conn, const Status& why) {
    if (ends_.erase(conn) == 0) return;
    if (handler_) handler_->OnClosed(conn, why);
  }

  FakeNetwork& net_;
  std::string address_;
  TransportHandler* handler_ = nullptr;
  bool accepting_ = true;
  bool dead_ = false;
  uint64_t frames_sent_ = 0;
  std::map<ConnId, std::shared_ptr<FakeNetwork::End>> ends_;
  std::map<ConnId, size_t> frame_limits_;
};

}  // namespace ringstore::testing
