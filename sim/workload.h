// Workload: simulated clients running put/get/delete over a key set through the real
// ClusterClient, each over its own SimTransports, recording a history: every operation's
// invocation and completion time and outcome (ok, failed, or unknown when it timed out or
// could not reach its quorum, since it may still have been applied).
// Thread-safety: single-threaded.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dht/cluster_client.h"
#include "sim/event_loop.h"
#include "sim/sim_network.h"

namespace ringstore::sim {

enum class OpType { kPut, kGet, kDel };
enum class Outcome { kPending, kOk, kUnknown };

struct HistoryOp {
  uint32_t client = 0;
  uint32_t key = 0;
  OpType type = OpType::kPut;
  std::string value;  // put: the value written; get: the value read
  Time invoke{0}, complete{0};
  Outcome outcome = Outcome::kPending;
  Timestamp ts = 0;    // put/del: the timestamp it was sent under (0 if never sent); get: the record's
  bool found = false;  // get: a live value was returned
  std::string error;
};

struct WorkloadOptions {
  uint32_t clients = 4;
  uint32_t keys = 64;
  Quorum quorum;
  // Writes invoked before early_until stamp early_stamp_n instead (0: no such phase): the keys
  // are then rewritten with another N.
  uint32_t early_stamp_n = 0;
  Time early_until{0};
  uint32_t fallbacks = 3;
  Time think_min = std::chrono::milliseconds(1);
  Time think_max = std::chrono::milliseconds(20);
  Time request_timeout = std::chrono::seconds(2);
};

std::string KeyName(uint32_t key);
ObjectId KeyId(uint32_t key);

class Workload {
 public:
  Workload(EventLoop& loop, SimNetwork& net, Random& rng, WorkloadOptions options);
  ~Workload();

  // Connects every client through seeds, then issues operations until `until`.
  void Start(const std::vector<std::string>& seeds, Time until);
  bool idle() const;  // every operation has completed
  const std::vector<HistoryOp>& history() const { return history_; }
  // A fresh client for the checker, connected through seeds (nullptr if none answers). It
  // must be destroyed before the Workload, which owns its clock and random.
  std::unique_ptr<ClusterClient> NewClient(const std::vector<std::string>& seeds, const std::string& host);

 private:
  struct SimClient;
  void Next(SimClient& c);
  std::unique_ptr<ClusterClient> MakeClient(const std::string& host, Clock& clock, Random& random, uint32_t fallbacks);

  EventLoop& loop_;
  SimNetwork& net_;
  Random& rng_;
  const WorkloadOptions options_;
  std::vector<std::unique_ptr<SimClient>> clients_;
  std::vector<HistoryOp> history_;
  std::vector<std::unique_ptr<SimClock>> aux_clocks_;
  std::vector<std::unique_ptr<SeededRandom>> aux_randoms_;
  Time until_{0};
  uint64_t values_ = 0;
};

}  // namespace ringstore::sim
