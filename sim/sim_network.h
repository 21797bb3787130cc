// SimNetwork: the simulated network. SimTransports (one per node or client process) connect
// by address; frames between two hosts take a random latency, keep their order within a
// connection (as TCP does), and go through the receiver's real FrameDecoder. Faults:
//  - cut links, one direction at a time (partitions of any shape are sets of cuts): frames
//    and connection attempts across a cut vanish; a connect times out after connect_timeout;
//  - loss: a frame vanishes (the connection stalls, as TCP under a black hole);
//  - duplication: a request or reply frame (never a handshake) is delivered twice;
//  - reordering: extra random delay, so frames on different connections overtake each other.
// A crashed process's transport is destroyed: its connections close, the peers hear of it
// after a latency, and nothing more reaches it.
// Every delivery is folded into trace_hash(), which a seed must reproduce exactly.
// Thread-safety: single-threaded.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dht/frame.h"
#include "dht/random.h"
#include "dht/transport.h"
#include "sim/event_loop.h"

namespace ringstore::sim {

struct NetFaults {
  Time min_latency = std::chrono::microseconds(100);
  Time max_latency = std::chrono::milliseconds(2);
  double loss = 0;                // probability a frame vanishes
  double dup = 0;                 // probability a frame is delivered twice
  Time reorder_jitter{0};         // extra uniform delay in [0, jitter)
  Time connect_timeout = std::chrono::seconds(3);
};

struct NetStats {
  uint64_t frames_sent = 0, frames_delivered = 0, frames_dropped = 0, frames_duplicated = 0;
  uint64_t connects = 0, connects_refused = 0;
};

class SimTransport;

class SimNetwork {
 public:
  SimNetwork(EventLoop& loop, Random& rng) : loop_(loop), rng_(rng) {}

  NetFaults& faults() { return faults_; }
  // Frames from host a to host b vanish while the link is cut.
  void Cut(const std::string& a, const std::string& b) { cuts_.insert({a, b}); }
  void Heal(const std::string& a, const std::string& b) { cuts_.erase({a, b}); }
  void HealAll() { cuts_.clear(); }
  bool IsCut(const std::string& a, const std::string& b) const {
    return !cuts_.empty() && cuts_.count(std::pair<std::string_view, std::string_view>(a, b)) != 0;
  }
  size_t cuts() const { return cuts_.size(); }

  const NetStats& stats() const { return stats_; }
  uint64_t trace_hash() const { return trace_; }
  void Trace(uint64_t a, uint64_t b, uint64_t c);

 private:
  friend class SimTransport;
  struct End {
    SimTransport* owner;
    ConnId peer;  // the other end's id
    FrameDecoder decoder;
    bool closing = false;
    Time last_delivery{0};  // frames to this end arrive in order
  };
  Time Latency();
  // Queues bytes for the end `to`, after the frames before them.
  void Deliver(ConnId to, const std::string& from_host, std::string bytes, bool allow_dup);
  void Receive(ConnId to, const std::string& bytes);
  void CloseEnd(ConnId id, const Status& why, Time delay);

  EventLoop& loop_;
  Random& rng_;
  NetFaults faults_;
  NetStats stats_;
  uint64_t trace_ = 0x9e3779b97f4a7c15ull;
  // Searchable by views, without copying the host names: IsCut runs per frame.
  struct CutLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& x, const B& y) const {
      return std::pair<std::string_view, std::string_view>(x.first, x.second) <
             std::pair<std::string_view, std::string_view>(y.first, y.second);
    }
  };
  std::set<std::pair<std::string, std::string>, CutLess> cuts_;
  std::map<std::string, SimTransport*> listeners_;
  std::unordered_map<ConnId, std::unique_ptr<End>> ends_;  // never iterated: order is free
  ConnId next_conn_ = 1;
};

class SimTransport final : public Transport {
 public:
  // host: the address others connect to (a node), or a name for a client; listen: whether
  // connections to host are accepted.
  SimTransport(SimNetwork& net, std::string host, bool listen);
  ~SimTransport() override;  // the process is gone: every connection closes

  void SetHandler(TransportHandler* handler) override { handler_ = handler; }
  ConnId Connect(const std::string& address) override;
  void Send(ConnId conn, std::string encoded_frame) override;
  void Close(ConnId conn) override;
  void StopAccepting() override { accepting_ = false; }
  void SetFrameLimit(ConnId conn, size_t max_body_bytes) override;

  const std::string& host() const { return host_; }

 private:
  friend class SimNetwork;
  SimNetwork& net_;
  const std::string host_;
  bool accepting_;
  TransportHandler* handler_ = nullptr;
  std::set<ConnId> mine_;  // ends this transport owns
};

}  // namespace ringstore::sim
