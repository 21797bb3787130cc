// Client: the library programs use to talk to ringstore. It holds one connection to a node,
// performs the handshake, pipelines requests (matched by request id), times them out and
// bounds how many are in flight. It stamps each write with its own hybrid-logical-clock
// timestamp and a transaction id, so a resend is idempotent. (The cluster issue turns it
// into a routing client that fans out to replicas.)
// It is the Transport's handler; Clock, Transport and Random must outlive it.
// Thread-safety: strand-confined; callbacks run on the owner's strand.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>

#include "dht/clock.h"
#include "dht/hlc.h"
#include "dht/messages.h"
#include "dht/random.h"
#include "dht/transport.h"

namespace ringstore {

struct ClientOptions {
  std::string cluster_id = "ringstore";
  Clock::Duration request_timeout = std::chrono::seconds(30);
  Clock::Duration connect_timeout = std::chrono::seconds(5);
  // Requests outstanding at once; one more fails at once with Busy.
  size_t max_in_flight = 4096;
  // How often deadlines are checked.
  Clock::Duration sweep_interval = std::chrono::milliseconds(50);
};

class Client final : public TransportHandler {
 public:
  template <typename T>
  using Callback = std::function<void(Result<T>)>;

  Client(ClientOptions options, Clock& clock, Transport& transport, Random& random);
  ~Client() override;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and handshakes. Unavailable if the node cannot be reached, Refused if it
  // rejects us (another cluster), Timeout after connect_timeout.
  void Connect(const std::string& address, std::function<void(Status)> done);
  bool connected() const { return ready_; }
  const std::string& server_node_id() const { return server_node_id_; }

  // Keys go with their names when the caller has them (dht/object_key.h): a node with TLS
  // refuses a non-admin client's unnamed writes.
  void Put(const ObjectKey& key, std::string value, Callback<Ack> done);
  void Del(const ObjectKey& key, Callback<Ack> done);
  // By reference: a TXN sent to N replicas is encoded N times but copied none.
  void Commit(const Txn& txn, Callback<Ack> done);
  // The same, for a stamped txn (txn_id and ts set) that frames to other replicas share:
  // the value of a one-op txn of kSharedValueBytes or more is sent from txn itself, not
  // copied into each replica's frame (EncodeTxnShared).
  void Commit(std::shared_ptr<const Txn> txn, Callback<Ack> done);
  // The newest record. A tombstone comes back as a record with the tombstone flag; the value
  // has been checked against its checksum. route_n > 0 lets a node that does not hold the
  // key forward the request (see EncodeKeyRequest).
  void Get(const ObjectKey& key, Callback<Record> done, uint32_t route_n = 0);
  void Stat(const ObjectKey& key, Callback<RecordMeta> done, uint32_t route_n = 0);
  // A GET (with_value) or STAT reply, and where its record came from: from is empty when the
  // node answered from its own store, else the address of the node whose reply it relayed
  // (route_n > 0 lets it forward: wire-protocol §7.4). A quorum counts each source once.
  struct SourcedRecord {
    Record record;
    std::string from;
  };
  void Read(const ObjectKey& key, bool with_value, uint32_t route_n, Callback<SourcedRecord> done);

  // Sends a frame of kind with body and returns the reply frame (an ERROR reply becomes its
  // Status). For requests whose bodies other modules code (the route table).
  void Request(Kind kind, std::string body, Callback<Frame> done);
  // The disk under the node's store.
  void DiskUsageOf(Callback<DiskUsage> done);
  // Change notification: subscribe this connection to channel on the node; publish payload to
  // the channel's other subscribers on the node. Events arrive through the event handler.
  void Watch(const ObjectId& channel, Callback<Ack> done);
  void Notify(const ObjectId& channel, std::string payload, Callback<Ack> done);
  using EventHandler = std::function<void(const ObjectId& channel, std::string payload)>;
  void SetEventHandler(EventHandler handler) { on_event_ = std::move(handler); }

  size_t in_flight() const { return pending_.size(); }

  void OnAccepted(ConnId, const std::string&) override {}
  void OnConnected(ConnId conn) override {}
  void OnFrame(ConnId conn, Frame frame) override;
  void OnStreamError(ConnId conn, const Status& status) override;
  void OnClosed(ConnId conn, const Status& why) override;

 private:
  using ReplyHandler = std::function<void(Result<Frame>)>;
  struct Pending {
    Clock::Duration deadline;
    ReplyHandler handler;
  };

  // Sends a frame built for request id rid and waits for its reply.
  void Call(SharedFrame frame, uint64_t rid, Clock::Duration timeout, ReplyHandler handler);
  void Call(std::string frame, uint64_t rid, Clock::Duration timeout, ReplyHandler handler) {
    Call(SharedFrame{std::move(frame), nullptr, {}}, rid, timeout, std::move(handler));
  }
  bool Reserve(const std::function<void(Status)>& fail);
  void SendWrite(SharedFrame frame, uint64_t rid, Callback<Ack> done);
  void SendWrite(std::string frame, uint64_t rid, Callback<Ack> done) {
    SendWrite(SharedFrame{std::move(frame), nullptr, {}}, rid, std::move(done));
  }
  void FailAll(const Status& why);
  void Sweep();

  const ClientOptions options_;
  Clock& clock_;
  Transport& transport_;
  Random& random_;
  HlcClock hlc_;
  ConnId conn_ = 0;
  bool have_conn_ = false;
  bool ready_ = false;
  std::string address_;
  std::string server_node_id_;
  uint64_t next_rid_ = 1;
  std::unordered_map<uint64_t, Pending> pending_;
  EventHandler on_event_;
  Clock::TimerId sweep_timer_ = 0;
  bool sweep_armed_ = false;
};

}  // namespace ringstore
