// ClusterClient: the client library for a ring. It fetches the route table from any member
// and sends each request straight to the object's replicas (one hop, no coordinator):
// a write goes to N replicas and is acknowledged after W of them; a read asks R replicas and
// returns the newest record by timestamp. A replica that fails, times out or is known to be
// down is replaced by the next node in the object's preference list (replicas beyond N), so a
// write survives up to N-W dead replicas. Requests carry N (route_n): a node that is not among
// the object's first N + kRouteSlack nodes answers a write with NotMine, on which the client
// fetches the table again and resends to the replicas it names; such a node forwards a read of
// a key it does not hold. Every write carries one timestamp and transaction
// id, so sending it again, to the same node or another, is idempotent.
// Connections (one Client each, over a Transport from the factory) are opened on first use.
// Thread-safety: strand-confined; Clock and Random must outlive it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dht/client.h"
#include "dht/lww_map.h"
#include "routing/route_table.h"

namespace ringstore {

using TransportFactory = std::function<std::unique_ptr<Transport>()>;

struct Quorum {
  uint32_t n = 3;
  uint32_t w = 2;
  uint32_t r = 2;
  // The N that writes stamp on their records (RecordMeta::replicas), which repair keeps;
  // 0: n. FitToRing keeps the asked-for N here while n shrinks to the ring, so records
  // written on a small ring get their N copies once it grows.
  uint32_t stamp_n = 0;
  uint32_t StampN() const { return stamp_n != 0 ? stamp_n : n; }
};

// A ring smaller than N holds at most one copy per node: N, W and R shrink to fit it.
inline Quorum FitToRing(Quorum q, size_t ring_nodes) {
  Quorum fit{q.n < ring_nodes ? q.n : static_cast<uint32_t>(ring_nodes), 0, 0, q.StampN()};
  fit.w = q.w < fit.n ? q.w : fit.n;
  fit.r = q.r < fit.n ? q.r : fit.n;
  return fit;
}

struct ClusterClientOptions {
  ClientOptions connection;
  Quorum quorum;
  // Nodes tried beyond the N replicas when replicas fail.
  uint32_t max_fallbacks = 3;
  // TCP connections to each node; requests are spread over them in turn.
  uint32_t connections_per_node = 1;
  // How often the route table is fetched again after Connect (zero: never).
  Clock::Duration table_refresh = std::chrono::seconds(10);
  // After a read, replicas that answered with an older, missing or corrupt record are sent
  // the newest one.
  bool read_repair = true;
  // How often watches (Watch) are sent again, to follow a channel's home node and to survive
  // reconnections.
  Clock::Duration watch_renew = std::chrono::seconds(2);
};

class ClusterClient {
 public:
  template <typename T>
  using Callback = std::function<void(Result<T>)>;

  ClusterClient(ClusterClientOptions options, Clock& clock, Random& random, TransportFactory factory);
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // Fetches the route table from the first seed that answers.
  void Connect(std::vector<std::string> seeds, std::function<void(Status)> done);
  // Fetches the route table again from a member (seeds if none is up).
  void Refresh(std::function<void(Status)> done);

  void Put(const ObjectKey& key, std::string value, Quorum q, Callback<Ack> done);
  // Merges entries into the map record at id (dht/lww_map.h); entries with ts 0 take the
  // write's timestamp. Reads of a map record merge the R replies instead of picking one.
  void Merge(const ObjectKey& key, const LwwMap& entries, Quorum q, Callback<Ack> done);
  void Del(const ObjectKey& key, Quorum q, Callback<Ack> done);
  // The newest record among R replies (a tombstone is a record); NotFound if none has one.
  void Get(const ObjectKey& key, Quorum q, Callback<Record> done);
  // The newest metadata among R replies, as Get but without values.
  void Stat(const ObjectKey& key, Quorum q, Callback<RecordMeta> done);
  // The timestamp of the last write this client stamped (Put, Merge, Del), whatever became of
  // it: a write that fails may still have reached some replicas under it.
  Timestamp last_write_ts() const { return last_write_ts_; }

  // The disks of the nodes that answer among those not known to be down or gone, each disk
  // once (by disk_id). Unavailable if none answers.
  void DiskUsages(Callback<std::vector<DiskUsage>> done);

  // Change notification (Client::Watch). A channel lives on its home node, the first live node
  // of its placement. handler gets the payloads that other clients Notify on the channel. The
  // watch is renewed every watch_renew and so follows the home when the table changes; events
  // published while it moves can be lost, so callers keep a fallback (the filesystem's TTLs).
  // Handlers run on the client's strand.
  void Watch(const ObjectId& channel, std::function<void(std::string)> handler);
  // Fire and forget.
  void Notify(const ObjectId& channel, std::string payload);

  const RouteTable& table() const { return table_; }
  uint64_t read_repairs() const { return read_repairs_; }
  // Read repairs sent and not yet answered. A short-lived program waits for them before it
  // exits, or they are lost with its connections.
  uint64_t repairs_in_flight() const { return repairs_in_flight_; }
  const ClusterClientOptions& options() const { return options_; }

 private:
  struct Conn {
    std::unique_ptr<Transport> transport;
    std::unique_ptr<Client> client;
    bool ready = false;
    std::vector<std::function<void(Client*, Status)>> waiting;  // until the handshake ends
  };
  struct WriteOp;
  struct ReadOp;

  // Empties the slot; the old connection is destroyed once the current callbacks are done.
  void Retire(Conn& c);
  // Runs fn with a ready connection to address (or a failure Status).
  void With(const std::string& address, std::function<void(Client*, Status)> fn);
  // Asks addresses[i], then the next ones; fails with the last reason when none answers.
  void FetchTable(std::vector<std::string> addresses, size_t i, Status last, std::function<void(Status)> done);
  // The object's preference list: its N replicas, nodes believed down last. When one of them
  // is down, or (MoreCandidates) when they all failed, the fallbacks beyond N follow; they are
  // computed only then, since each costs a hash. Each address once: a down entry whose address
  // an up entry of the table has (a node restarted there with a new identity) is left out,
  // since that process answers as the up one. replicas (if given) gets the addresses listed as
  // the key's replicas, the fallbacks left out.
  std::vector<std::string> Candidates(const ObjectId& id, uint32_t n, std::vector<std::string>* replicas = nullptr) const;
  // Appends the fallbacks in neither list nor skip; false if there are none.
  bool MoreCandidates(const ObjectId& id, uint32_t n, std::vector<std::string>& list,
                      const std::vector<std::string>& skip = {}) const;
  void Write(Txn txn, Quorum q, Callback<Ack> done);
  void SendWrite(const std::shared_ptr<WriteOp>& op);
  // After NotMine answers used up the candidates: refresh the table and try its replicas.
  void Reroute(const std::shared_ptr<WriteOp>& op);
  // one_value: with R > 1, a GET asks one replica for the value and the others only for the
  // metadata (STAT); the value is fetched from a newer replica if one has it, and a map record
  // (whose replies merge) is read again with GETs everywhere.
  void Read(const ObjectKey& key, Quorum q, bool meta_only, Callback<Record> done, bool one_value = true);
  void SendRead(const std::shared_ptr<ReadOp>& op);
  // The R replies are in: deliver op->best, after fetching its value if needed.
  void FinishRead(const std::shared_ptr<ReadOp>& op);
  void Repair(const ReadOp& op);
  void ArmRefresh();
  void RenewWatches();
  std::string Home(const ObjectId& channel) const;

  const ClusterClientOptions options_;
  Clock& clock_;
  Random& random_;
  TransportFactory factory_;
  HlcClock hlc_;
  Timestamp last_write_ts_ = 0;
  RouteTable table_;
  std::vector<std::string> seeds_;
  struct PerNode {
    std::vector<Conn> conns;  // connections_per_node slots
    uint32_t next = 0;        // the slot the next request uses
  };
  std::map<std::string, PerNode> nodes_;
  Clock::TimerId refresh_timer_ = 0;
  bool refresh_armed_ = false;
  std::map<ObjectId, std::function<void(std::string)>> watches_;
  Clock::TimerId watch_timer_ = 0;
  bool watch_armed_ = false;
  uint64_t read_repairs_ = 0;
  uint64_t repairs_in_flight_ = 0;
};

}  // namespace ringstore
