// PeerLinks: this node's outgoing connections to other nodes, one per peer address, opened on
// first use: HELLO (with our node id) and then the frames, in order. It is the membership's
// sender. A peer that does not connect within connect_timeout is dropped (and retried by the
// next send); frames sent while a link is connecting are bounded by max_queued_frames, beyond
// which they are dropped (membership tolerates loss). A refusal (another cluster) is logged.
// Request sends a frame and routes the reply with the same request id back to a callback
// (used to forward reads); a request fails when its link drops or after its timeout. The
// features the peer's HELLO_REPLY announced are kept with the link (Announced).
// The NodeCore hands it the transport events of the connections it opened.
// Thread-safety: strand-confined; Transport and Clock must outlive it.
#pragma once

#include <spdlog/logger.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dht/clock.h"
#include "dht/transport.h"
#include "routing/membership.h"

namespace ringstore {

struct PeerLinkOptions {
  Clock::Duration connect_timeout = std::chrono::seconds(3);
  size_t max_queued_frames = 64;
  size_t max_pending_requests = 4096;
};

class PeerLinks final : public MembershipSender {
 public:
  PeerLinks(PeerLinkOptions options, std::string cluster_id, std::string node_id, Transport& transport,
            Clock& clock, std::shared_ptr<spdlog::logger> log);
  ~PeerLinks() override;

  void SendTo(const std::string& address, std::string frame) override;
  // Sends build(request id) to address; done gets the reply frame (any kind, ERROR included)
  // or Unavailable (link lost, too many pending) or Timeout.
  void Request(const std::string& address, const std::function<std::string(uint64_t)>& build,
               Clock::Duration timeout, std::function<void(Result<Frame>)> done);
  // Whether the peer at address announced feature in the HELLO_REPLY on this node's link to
  // it: false until that reply has come, and again once the link drops.
  bool Announced(const std::string& address, std::string_view feature) const;
  bool Owns(ConnId conn) const { return by_conn_.count(conn) != 0; }
  void OnConnected(ConnId conn);
  void OnFrame(ConnId conn, Frame frame);
  void OnClosed(ConnId conn, const Status& why);
  size_t links() const { return by_address_.size(); }

 private:
  struct Link {
    ConnId conn = 0;
    bool connected = false;
    size_t queued = 0;  // frames sent while connecting
    Clock::TimerId deadline = 0;
    std::vector<std::string> features;  // from the peer's HELLO_REPLY
  };
  void Drop(const std::string& address);
  void Complete(uint64_t request_id, Result<Frame> r);

  struct Pending {
    std::string address;
    Clock::TimerId timer = 0;
    std::function<void(Result<Frame>)> done;
  };
  std::map<uint64_t, Pending> pending_;
  uint64_t next_request_id_ = 1ull << 48;  // apart from membership's ids

  const PeerLinkOptions options_;
  const std::string cluster_id_;
  const std::string node_id_;
  Transport& transport_;
  Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::unordered_map<std::string, Link> by_address_;  // iterated only to cancel timers
  std::unordered_map<ConnId, std::string> by_conn_;
};

}  // namespace ringstore
