#include "sim/workload.h"

#include <optional>

namespace ringstore::sim {

namespace {
constexpr int64_t kClientWallBaseUs = 1'800'000'000'000'000;
}

std::string KeyName(uint32_t key) { return "k" + std::to_string(key); }
ObjectId KeyId(uint32_t key) { return ObjectId::Of("sim", KeyName(key)); }

struct Workload::SimClient {
  uint32_t index = 0;
  std::string host;
  std::unique_ptr<SimClock> clock;
  std::unique_ptr<SeededRandom> random;
  std::unique_ptr<ClusterClient> client;
  bool busy = false;
};

Workload::Workload(EventLoop& loop, SimNetwork& net, Random& rng, WorkloadOptions options)
    : loop_(loop), net_(net), rng_(rng), options_(options) {}

Workload::~Workload() = default;

std::unique_ptr<ClusterClient> Workload::MakeClient(const std::string& host, Clock& clock, Random& random,
                                                   uint32_t fallbacks) {
  ClusterClientOptions o;
  o.connection.request_timeout = options_.request_timeout;
  o.connection.connect_timeout = std::chrono::seconds(1);
  o.table_refresh = std::chrono::seconds(1);
  o.max_fallbacks = fallbacks;
  // Each connection is a transport of the client's own host, so links to it can be cut.
  return std::make_unique<ClusterClient>(o, clock, random,
                                         [this, host] { return std::make_unique<SimTransport>(net_, host, false); });
}

std::unique_ptr<ClusterClient> Workload::NewClient(const std::vector<std::string>& seeds, const std::string& host) {
  aux_clocks_.push_back(std::make_unique<SimClock>(loop_, kClientWallBaseUs));
  aux_randoms_.push_back(std::make_unique<SeededRandom>(rng_.Next()));
  // The checker reaches past unreadable replicas whatever the workload's quorum policy.
  auto c = MakeClient(host, *aux_clocks_.back(), *aux_randoms_.back(), kRouteSlack);
  std::optional<Status> s;
  c->Connect(seeds, [&](Status st) { s = st; });
  while (!s && loop_.RunOne()) {
  }
  if (!s || !s->ok()) return nullptr;
  return c;
}

void Workload::Start(const std::vector<std::string>& seeds, Time until) {
  until_ = until;
  for (uint32_t i = 0; i < options_.clients; ++i) {
    auto c = std::make_unique<SimClient>();
    c->index = i;
    c->host = "client" + std::to_string(i);
    c->clock = std::make_unique<SimClock>(loop_, kClientWallBaseUs);
    c->random = std::make_unique<SeededRandom>(rng_.Next());
    c->client = MakeClient(c->host, *c->clock, *c->random, options_.fallbacks);
    SimClient* raw = c.get();
    clients_.push_back(std::move(c));
    raw->busy = true;
    raw->client->Connect(seeds, [this, raw](Status) {
      raw->busy = false;
      Next(*raw);
    });
  }
}

bool Workload::idle() const {
  for (const auto& c : clients_) {
    if (c->busy) return false;
  }
  return true;
}

void Workload::Next(SimClient& c) {
  if (loop_.now() >= until_) return;
  const Time think = options_.think_min + Time(static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(
                                               std::max<int64_t>(1, (options_.think_max - options_.think_min).count())))));
  c.busy = true;
  loop_.After(think, [this, &c] {
    if (loop_.now() >= until_) {
      c.busy = false;
      return;
    }
    const size_t slot = history_.size();
    HistoryOp op;
    op.client = c.index;
    op.key = static_cast<uint32_t>(rng_.Uniform(options_.keys));
    const uint64_t roll = rng_.Uniform(100);
    op.type = roll < 45 ? OpType::kPut : roll < 90 ? OpType::kGet : OpType::kDel;
    op.invoke = loop_.now();
    if (op.type == OpType::kPut) op.value = "c" + std::to_string(c.index) + "-v" + std::to_string(++values_);
    history_.push_back(op);
    const ObjectId id = KeyId(op.key);
    auto finish_write = [this, slot, &c](Result<Ack> r) {
      HistoryOp& h = history_[slot];
      h.complete = loop_.now();
      if (r.ok()) {
        h.outcome = Outcome::kOk;
        h.ts = r->ts;
      } else {
        h.outcome = Outcome::kUnknown;  // it may have reached some replicas
        h.error = r.status().ToString();
      }
      c.busy = false;
      Next(c);
    };
    Quorum wq = options_.quorum;
    if (options_.early_stamp_n != 0 && loop_.now() < options_.early_until) wq.stamp_n = options_.early_stamp_n;
    // A write of unknown outcome keeps the timestamp it was sent under (it may have landed).
    const auto stamp = [this, slot, &c] {
      if (history_[slot].outcome == Outcome::kPending) history_[slot].ts = c.client->last_write_ts();
    };
    switch (op.type) {
      case OpType::kPut:
        c.client->Put(id, history_[slot].value, wq, finish_write);
        return stamp();
      case OpType::kDel:
        c.client->Del(id, wq, finish_write);
        return stamp();
      case OpType::kGet:
        return c.client->Get(id, options_.quorum, [this, slot, &c](Result<Record> r) {
          HistoryOp& h = history_[slot];
          h.complete = loop_.now();
          if (r.ok()) {
            h.outcome = Outcome::kOk;
            h.ts = r->meta.ts;
            h.found = !r->meta.tombstone();
            if (h.found) h.value = r->value;
          } else if (r.status().IsNotFound()) {
            h.outcome = Outcome::kOk;
          } else {
            h.outcome = Outcome::kUnknown;
            h.error = r.status().ToString();
          }
          c.busy = false;
          Next(c);
        });
    }
  });
}

}  // namespace ringstore::sim
