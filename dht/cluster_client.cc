#include "dht/cluster_client.h"

#include "dht/lww_map.h"

#include <algorithm>

#include "routing/membership_messages.h"
#include "routing/placement.h"

namespace ringstore {

struct ClusterClient::WriteOp {
  Txn txn;
  Quorum q;
  std::vector<std::string> candidates;
  size_t next = 0;
  uint32_t acks = 0;
  uint32_t in_flight = 0;
  bool done = false;
  bool not_mine = false;  // a node answered NotMine: our table is stale
  bool rerouted = false;  // the candidates were computed again from a fresh table
  std::vector<std::string> acked;  // each address counts once toward W
  Status last_error;
  Callback<Ack> cb;
};

struct ClusterClient::ReadOp {
  ObjectKey key;
  Quorum q;
  std::vector<std::string> candidates;
  // The addresses of the key's N replicas. A fallback's answer counts toward R only when it
  // holds a record: its NotFound says nothing of the key's latest write (G3). (It is still
  // asked with route_n, so that it forwards to the key's former holders after a ring change.)
  std::vector<std::string> replicas;
  // The nodes whose answers counted toward R, each once: the node asked, or for a relayed
  // record the node it came from (a replica that has not synced, or a fallback outside the
  // key's window, relays the first record it finds, often from a replica that answered too).
  std::vector<std::string> counted;
  size_t next = 0;
  uint32_t responses = 0;
  uint32_t in_flight = 0;
  bool done = false;
  bool meta_only = false;
  // R > 1 GET (Read's one_value): only the first send asks for the value.
  bool one_value = false;
  bool value_asked = false;
  bool best_has_value = false;  // best came with its value (always, unless one_value)
  bool saw_map = false;
  std::string best_address;
  std::optional<Record> best;
  // Who answered what, for read repair: nullopt for a missing or corrupt record.
  std::vector<std::pair<std::string, std::optional<RecordMeta>>> seen;
  Status last_error;
  Callback<Record> cb;
};

ClusterClient::ClusterClient(ClusterClientOptions options, Clock& clock, Random& random, TransportFactory factory)
    : options_(std::move(options)), clock_(clock), random_(random), factory_(std::move(factory)), hlc_(clock) {}

ClusterClient::~ClusterClient() {
  if (refresh_armed_) clock_.Cancel(refresh_timer_);
  if (watch_armed_) clock_.Cancel(watch_timer_);
}

void ClusterClient::ArmRefresh() {
  if (refresh_armed_ || options_.table_refresh <= Clock::Duration::zero()) return;
  refresh_armed_ = true;
  refresh_timer_ = clock_.Schedule(options_.table_refresh, [this] {
    refresh_armed_ = false;
    // A failed refresh keeps the table it has; the next one tries again.
    Refresh([this](Status) { ArmRefresh(); });
  });
}

void ClusterClient::Retire(Conn& c) {
  // We may be inside one of its callbacks: it is destroyed from a timer, after them.
  auto dead = std::make_shared<Conn>(std::move(c));
  c = Conn{};
  clock_.Schedule(Clock::Duration::zero(), [dead] {});
}

void ClusterClient::With(const std::string& address, std::function<void(Client*, Status)> fn) {
  PerNode& node = nodes_[address];
  if (node.conns.empty()) node.conns.resize(std::max<uint32_t>(1, options_.connections_per_node));
  const size_t slot = node.next++ % node.conns.size();
  Conn& c = node.conns[slot];
  if (c.client && c.ready && !c.client->connected()) Retire(c);  // it died since: reconnect
  if (c.client && c.ready) return fn(c.client.get(), Status::Ok());
  c.waiting.push_back(std::move(fn));
  if (c.client) return;  // the handshake is under way
  c.transport = factory_();
  c.client = std::make_unique<Client>(options_.connection, clock_, *c.transport, random_);
  c.client->SetEventHandler([this](const ObjectId& channel, std::string payload) {
    auto it = watches_.find(channel);
    if (it != watches_.end()) it->second(std::move(payload));
  });
  c.client->Connect(address, [this, address, slot](Status s) {
    Conn& conn = nodes_[address].conns[slot];
    auto waiting = std::move(conn.waiting);
    conn.waiting.clear();
    Client* ready = s.ok() ? conn.client.get() : nullptr;
    if (s.ok()) {
      conn.ready = true;
    } else {
      Retire(conn);
    }
    for (auto& w : waiting) w(ready, s);
  });
}

// ---- the route table --------------------------------------------------------------------

void ClusterClient::Connect(std::vector<std::string> seeds, std::function<void(Status)> done) {
  seeds_ = std::move(seeds);
  FetchTable(seeds_, 0, Status::Ok(), [this, done = std::move(done)](Status s) {
    if (s.ok()) ArmRefresh();
    done(s);
  });
}

void ClusterClient::Refresh(std::function<void(Status)> done) {
  std::vector<std::string> addresses;
  for (const auto& [id, e] : table_.entries()) {
    if (e.state == NodeState::kUp) addresses.push_back(e.address);
  }
  for (size_t i = addresses.size(); i > 1; --i) std::swap(addresses[i - 1], addresses[random_.Uniform(i)]);
  addresses.insert(addresses.end(), seeds_.begin(), seeds_.end());
  FetchTable(std::move(addresses), 0, Status::Ok(), std::move(done));
}

void ClusterClient::FetchTable(std::vector<std::string> addresses, size_t i, Status last,
                               std::function<void(Status)> done) {
  if (i >= addresses.size()) {
    // The reason of the last member tried (a refusal says which cluster it belongs to).
    if (last.ok()) return done(Status::Unavailable("no member to ask for the route table"));
    return done(addresses.size() == 1 ? last : Status::FromCode(last.code(), "no member answered; last: " + last.message()));
  }
  const std::string address = addresses[i];
  With(address, [this, addresses = std::move(addresses), i, done = std::move(done)](Client* c, Status s) mutable {
    if (!s.ok()) return FetchTable(std::move(addresses), i + 1, s, std::move(done));
    c->Request(Kind::kRouteTable, std::string("\x90", 1),
               [this, addresses = std::move(addresses), i, done = std::move(done)](Result<Frame> r) mutable {
                 Result<GossipMessage> m = r.ok() ? DecodeGossip(r->body) : Result<GossipMessage>(r.status());
                 if (!m.ok()) return FetchTable(std::move(addresses), i + 1, m.status(), std::move(done));
                 for (const auto& e : m->entries) table_.Merge(e);
                 done(Status::Ok());
               });
  });
}

namespace {
bool Contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}
}  // namespace

std::vector<std::string> ClusterClient::Candidates(const ObjectId& id, uint32_t n,
                                                   std::vector<std::string>* replicas) const {
  std::vector<std::string> live, down;
  // A replica's slot is empty (it is down, or its address is another entry's): fallbacks come
  // right after the live replicas.
  bool replace = false;
  for (const NodeEntry* e : PlaceReplicas(table_, id, n)) {
    // Two entries can share an address (a node restarted with a new identity): one process
    // must never count as two replicas.
    if (Contains(live, e->address) || Contains(down, e->address)) {
      replace = true;
      continue;
    }
    if (e->state != NodeState::kDown) {
      live.push_back(e->address);
      continue;
    }
    replace = true;
    const bool reused = std::any_of(table_.entries().begin(), table_.entries().end(), [&](const auto& kv) {
      return kv.second.address == e->address && kv.second.state != NodeState::kDown &&
             kv.second.state != NodeState::kLeft;
    });
    if (!reused) down.push_back(e->address);
  }
  if (replicas != nullptr) {
    *replicas = live;
    replicas->insert(replicas->end(), down.begin(), down.end());
  }
  if (replace) MoreCandidates(id, n, live);  // replace the dead replicas by fallbacks right away
  live.insert(live.end(), down.begin(), down.end());
  return live;
}

bool ClusterClient::MoreCandidates(const ObjectId& id, uint32_t n, std::vector<std::string>& list,
                                   const std::vector<std::string>& skip) const {
  bool added = false;
  for (const NodeEntry* e : PlaceReplicas(table_, id, n + options_.max_fallbacks)) {
    if (e->state == NodeState::kDown || Contains(list, e->address) || Contains(skip, e->address)) continue;
    // (list holds every address already tried or queued, so duplicates never enter it)
    list.push_back(e->address);
    added = true;
  }
  return added;
}

// ---- writes -----------------------------------------------------------------------------

void ClusterClient::Put(const ObjectKey& key, std::string value, Quorum q, Callback<Ack> done) {
  Txn txn;
  txn.ops.push_back(TxnOp{TxnOpType::kPut, key.id, std::move(value), key.name});
  Write(std::move(txn), q, std::move(done));
}

void ClusterClient::Merge(const ObjectKey& key, const LwwMap& entries, Quorum q, Callback<Ack> done) {
  Txn txn;
  txn.ops.push_back(TxnOp{TxnOpType::kMerge, key.id, EncodeLwwMap(entries), key.name});
  Write(std::move(txn), q, std::move(done));
}

void ClusterClient::Del(const ObjectKey& key, Quorum q, Callback<Ack> done) {
  Txn txn;
  txn.ops.push_back(TxnOp{TxnOpType::kDel, key.id, {}, key.name});
  Write(std::move(txn), q, std::move(done));
}

void ClusterClient::Write(Txn txn, Quorum q, Callback<Ack> done) {
  if (q.n == 0 || q.w == 0 || q.w > q.n || q.r == 0 || q.r > q.n || q.n > kMaxReplicas) {
    return done(Status::InvalidArgument("need 1 <= W,R <= N <= 16"));
  }
  if (table_.ring().empty()) return done(Status::Unavailable("no route table: not connected"));
  auto op = std::make_shared<WriteOp>();
  // One timestamp and transaction id for every copy: a resend anywhere is idempotent.
  txn.ts = hlc_.Now();
  last_write_ts_ = txn.ts;  // (a write refused above leaves the previous one's: it calls back at once)
  txn.txn_id = random_.Next();
  op->candidates = Candidates(txn.ops.front().id, q.n);
  op->txn = std::move(txn);
  op->txn.route_n = q.n;
  op->txn.replicas = q.StampN();
  op->q = q;
  op->cb = std::move(done);
  const size_t first = std::min<size_t>(q.n, op->candidates.size());
  // A send can fail at once (a full connection) and move on down the list itself.
  for (size_t i = 0; i < first && !op->done && op->next < op->candidates.size(); ++i) SendWrite(op);
  if (first == 0) {
    op->done = true;
    op->cb(Status::Unavailable("no node of the key's preference list is up"));
  }
}

void ClusterClient::SendWrite(const std::shared_ptr<WriteOp>& op) {
  if (op->done || op->next >= op->candidates.size()) return;
  const std::string address = op->candidates[op->next++];
  ++op->in_flight;
  auto on_result = [this, op, address](const Status& s) {
    --op->in_flight;
    if (op->done) return;
    // (An address that acknowledged already cannot be asked again: MoreCandidates skips it.)
    if (s.ok()) {
      op->acked.push_back(address);
      if (++op->acks >= op->q.w) {
        op->done = true;
        op->cb(Ack{op->txn.ts});
      } else if (op->in_flight == 0 && op->next >= op->candidates.size()) {
        op->done = true;  // every node answered, and there are fewer than W
        op->cb(Status::Unavailable("only " + std::to_string(op->acks) + " of the " + std::to_string(op->q.w) +
                                   " acknowledgements needed: the ring has too few nodes"));
      }
      return;
    }
    op->last_error = Status::FromCode(s.code(), address + ": " + s.message());
    if (s.code() == Code::kNotMine) op->not_mine = true;
    if (s.code() == Code::kPermissionDenied) {  // every node would say the same: the certificate's role
      op->done = true;
      return op->cb(s);
    }
    if (op->next < op->candidates.size() ||
        MoreCandidates(op->txn.ops.front().id, op->q.n, op->candidates, op->acked)) {
      return SendWrite(op);  // the next in the preference list
    }
    if (op->not_mine && !op->rerouted && op->in_flight == 0) return Reroute(op);
    if (op->acks + op->in_flight < op->q.w) {
      op->done = true;
      op->cb(Status::Unavailable(std::to_string(op->acks) + " of the " + std::to_string(op->q.w) +
                                 " acknowledgements needed; last error: " + op->last_error.ToString()));
    }
  };
  With(address, [op, on_result](Client* c, Status s) {
    if (!s.ok()) return on_result(s);
    // The frames to every replica share the value, which stays in op (kept alive by them).
    c->Commit(std::shared_ptr<const Txn>(op, &op->txn),
              [on_result](Result<Ack> r) { on_result(r.ok() ? Status::Ok() : r.status()); });
  });
}

void ClusterClient::Reroute(const std::shared_ptr<WriteOp>& op) {
  // Nodes said the key is not theirs: fetch the table again and go on with the replicas it
  // names, skipping those that have already acknowledged.
  op->rerouted = true;
  Refresh([this, op](Status) {
    if (op->done) return;
    std::vector<std::string> fresh;
    for (auto& a : Candidates(op->txn.ops.front().id, op->q.n)) {
      if (std::find(op->acked.begin(), op->acked.end(), a) == op->acked.end()) fresh.push_back(std::move(a));
    }
    op->candidates = std::move(fresh);
    op->next = 0;
    const uint32_t need = op->q.w - op->acks;
    for (uint32_t i = 0; i < need && !op->done && op->next < op->candidates.size(); ++i) SendWrite(op);
    if (op->in_flight == 0 && !op->done) {
      op->done = true;
      op->cb(Status::Unavailable(std::to_string(op->acks) + " of the " + std::to_string(op->q.w) +
                                 " acknowledgements needed; last error: " + op->last_error.ToString()));
    }
  });
}

void ClusterClient::DiskUsages(Callback<std::vector<DiskUsage>> done) {
  struct Gather {
    size_t remaining = 0;
    std::map<std::string, DiskUsage> disks;
    Status last = Status::Unavailable("no node to ask");
    Callback<std::vector<DiskUsage>> done;
  };
  auto g = std::make_shared<Gather>();
  g->done = std::move(done);
  std::vector<std::string> addresses;
  for (const auto& [id, e] : table_.entries()) {
    if (e.state == NodeState::kUp || e.state == NodeState::kSuspect) addresses.push_back(e.address);
  }
  if (addresses.empty()) return g->done(g->last);
  g->remaining = addresses.size();
  auto finish_one = [g] {
    if (--g->remaining > 0) return;
    if (g->disks.empty()) return g->done(g->last);
    std::vector<DiskUsage> out;
    for (auto& [id, d] : g->disks) out.push_back(std::move(d));
    g->done(std::move(out));
  };
  for (const std::string& address : addresses) {
    With(address, [g, finish_one](Client* c, Status s) {
      if (!s.ok()) {
        g->last = s;
        return finish_one();
      }
      c->DiskUsageOf([g, finish_one](Result<DiskUsage> r) {
        if (r.ok()) {
          g->disks[r->disk_id] = *r;
        } else {
          g->last = r.status();
        }
        finish_one();
      });
    });
  }
}

// ---- change notification ------------------------------------------------------------------

std::string ClusterClient::Home(const ObjectId& channel) const {
  auto list = Candidates(channel, 1);
  return list.empty() ? std::string() : list.front();
}

void ClusterClient::Watch(const ObjectId& channel, std::function<void(std::string)> handler) {
  watches_[channel] = std::move(handler);
  if (watch_armed_) clock_.Cancel(watch_timer_);
  watch_armed_ = false;
  RenewWatches();
}

void ClusterClient::RenewWatches() {
  for (const auto& watch : watches_) {
    const ObjectId& channel = watch.first;
    const std::string home = Home(channel);
    if (home.empty()) continue;
    With(home, [channel](Client* c, Status s) {
      if (s.ok()) c->Watch(channel, [](Result<Ack>) {});  // renewed again soon if it failed
    });
  }
  if (watches_.empty() || options_.watch_renew <= Clock::Duration::zero()) return;
  watch_armed_ = true;
  watch_timer_ = clock_.Schedule(options_.watch_renew, [this] {
    watch_armed_ = false;
    RenewWatches();
  });
}

void ClusterClient::Notify(const ObjectId& channel, std::string payload) {
  const std::string home = Home(channel);
  if (home.empty()) return;
  With(home, [channel, payload = std::move(payload)](Client* c, Status s) mutable {
    if (s.ok()) c->Notify(channel, std::move(payload), [](Result<Ack>) {});
  });
}

// ---- reads ------------------------------------------------------------------------------

void ClusterClient::Repair(const ReadOp& op) {
  // Replicas that answered with an older record, none, or a corrupt one get the newest,
  // under its own timestamp: applying it is idempotent, and a same-version write rewrites a
  // record whose bytes fail their checksum. Fire and forget; anti-entropy covers the rest.
  if (!options_.read_repair || op.meta_only || !op.best) return;
  const Record& best = *op.best;
  std::shared_ptr<const Txn> txn;  // built only if a replica needs it: it copies the value
  for (const auto& [address, meta] : op.seen) {
    if (IsMapRecord(best.meta)) {
      // A merged map can be newer than every reply without superseding them by timestamp:
      // a replica holding anything but the merged version itself gets it.
      if (meta && !Supersedes(best.meta, *meta) && !Supersedes(*meta, best.meta)) continue;
    } else if (meta && !Supersedes(best.meta, *meta)) {
      continue;  // as new as the best
    }
    if (txn == nullptr) txn = std::make_shared<const Txn>(CopyRecordTxn(op.key, best));
    ++read_repairs_;
    ++repairs_in_flight_;
    With(address, [this, txn](Client* c, Status s) {
      if (!s.ok()) {
        --repairs_in_flight_;
        return;
      }
      c->Commit(txn, [this](Result<Ack>) { --repairs_in_flight_; });
    });
  }
}

void ClusterClient::Get(const ObjectKey& key, Quorum q, Callback<Record> done) {
  Read(key, q, /*meta_only=*/false, std::move(done));
}

void ClusterClient::Stat(const ObjectKey& key, Quorum q, Callback<RecordMeta> done) {
  Read(key, q, /*meta_only=*/true, [done = std::move(done)](Result<Record> r) {
    if (!r.ok()) return done(r.status());
    done(r->meta);
  });
}

void ClusterClient::Read(const ObjectKey& key, Quorum q, bool meta_only, Callback<Record> done, bool one_value) {
  if (q.r == 0 || q.r > q.n || q.n > kMaxReplicas) return done(Status::InvalidArgument("need 1 <= R <= N <= 16"));
  if (table_.ring().empty()) return done(Status::Unavailable("no route table: not connected"));
  auto op = std::make_shared<ReadOp>();
  op->key = key;
  op->q = q;
  op->meta_only = meta_only;
  op->one_value = one_value && !meta_only && q.r > 1;
  op->candidates = Candidates(key.id, q.n, &op->replicas);
  op->cb = std::move(done);
  const size_t first = std::min<size_t>(q.r, op->candidates.size());
  for (size_t i = 0; i < first && !op->done && op->next < op->candidates.size(); ++i) SendRead(op);
  if (first == 0) {
    op->done = true;
    op->cb(Status::Unavailable("no node of the key's preference list is up"));
  }
}

void ClusterClient::SendRead(const std::shared_ptr<ReadOp>& op) {
  if (op->done || op->next >= op->candidates.size()) return;
  const std::string address = op->candidates[op->next++];
  // Without one_value every send is a GET (or every one a STAT); with it, only the first.
  const bool with_value = !op->meta_only && !(op->one_value && op->value_asked);
  if (with_value) op->value_asked = true;
  const bool replica = Contains(op->replicas, address);
  ++op->in_flight;
  auto on_result = [this, op, address, with_value, replica](Result<Client::SourcedRecord> reply) {
    --op->in_flight;
    if (op->done) return;
    // Who vouches for the answer: the node asked, or the one whose record it relayed.
    std::string source = address;
    if (reply.ok() && !reply->from.empty()) source = std::move(reply->from);
    Result<Record> r = reply.ok() ? Result<Record>(std::move(reply->record)) : Result<Record>(reply.status());
    const bool relayed = source != address;
    if (!replica && r.status().IsNotFound()) {
      r = Status::NotFound("a fallback, it holds nothing of the key (which says nothing of its replicas)");
    } else if (r.ok() || r.status().IsNotFound()) {
      // For read repair: a relaying replica holds nothing itself (it forwards only a miss);
      // a relaying fallback is left alone (repair writes to replicas and holders).
      if (!relayed) op->seen.emplace_back(address, r.ok() ? std::optional<RecordMeta>(r->meta) : std::nullopt);
      else if (replica) op->seen.emplace_back(address, std::nullopt);
      if (r.ok() && IsMapRecord(r->meta)) op->saw_map = true;
      const auto take = [&] {
        op->best = std::move(*r);
        op->best_has_value = with_value;
        op->best_address = source;  // a value still to fetch comes from the node that has it
      };
      if (r.ok() && !op->best) {
        take();
      } else if (r.ok() && !op->meta_only && !op->one_value && (IsMapRecord(r->meta) || IsMapRecord(op->best->meta))) {
        op->best = MergeRecords(&*op->best, *r);  // map records merge entry by entry
      } else if (r.ok() && Supersedes(r->meta, op->best->meta)) {
        take();
      } else if (r.ok() && with_value && !op->best_has_value && !Supersedes(op->best->meta, r->meta)) {
        take();  // the same version, with its value
      }
      const bool counts = !Contains(op->counted, source);
      if (counts) op->counted.push_back(source);
      if (counts && ++op->responses >= op->q.r) {
        op->done = true;
        return FinishRead(op);
      }
      // Too few answers coming (a source that already counted, or candidates added since):
      // ask another node.
      if (op->responses + op->in_flight < op->q.r &&
          (op->next < op->candidates.size() || MoreCandidates(op->key.id, op->q.n, op->candidates))) {
        return SendRead(op);
      }
      if (op->in_flight == 0 && op->next >= op->candidates.size()) {
        op->done = true;  // every node answered, and fewer than R distinct ones
        op->cb(Status::Unavailable("only " + std::to_string(op->responses) + " of the " + std::to_string(op->q.r) +
                                   " replies needed from distinct nodes (a relayed record counts for the node it came "
                                   "from): every node of the key's list has answered"));
      }
      return;
    }
    op->last_error = Status::FromCode(r.status().code(), address + ": " + r.status().message());
    if (r.status().code() == Code::kPermissionDenied) {  // every node would say the same
      op->done = true;
      return op->cb(r.status());
    }
    if (with_value && op->one_value) op->value_asked = false;  // the next send asks for it
    if (r.status().IsCorruption()) op->seen.emplace_back(address, std::nullopt);  // repair it too
    if (op->next < op->candidates.size() || MoreCandidates(op->key.id, op->q.n, op->candidates)) return SendRead(op);
    if (op->responses + op->in_flight < op->q.r) {
      op->done = true;
      op->cb(Status::Unavailable(std::to_string(op->responses) + " of the " + std::to_string(op->q.r) +
                                 " replies needed; last error: " + op->last_error.ToString()));
    }
  };
  With(address, [op, on_result, with_value](Client* c, Status s) {
    if (!s.ok()) return on_result(s);
    c->Read(op->key, with_value, op->q.n, on_result);
  });
}

void ClusterClient::FinishRead(const std::shared_ptr<ReadOp>& op) {
  if (!op->best) return op->cb(Status::NotFound());
  const auto deliver = [this, op] {
    hlc_.Observe(op->best->meta.ts);
    Repair(*op);
    op->cb(std::move(*op->best));
  };
  // Map records merge every replica's entries: read them all again, values included.
  if (op->one_value && op->saw_map) return Read(op->key, op->q, false, std::move(op->cb), /*one_value=*/false);
  // A STAT wants no value, and an empty value needs no fetch: the metadata says all of it.
  if (op->meta_only || op->best_has_value || op->best->meta.size == 0) return deliver();
  // The newest version came from a STAT: its value comes from that replica.
  With(op->best_address, [this, op, deliver](Client* c, Status s) {
    const auto fallback = [this, op] { Read(op->key, op->q, false, std::move(op->cb), /*one_value=*/false); };
    if (!s.ok()) return fallback();
    c->Get(
        op->key,
        [op, deliver, fallback](Result<Record> r) {
          if (!r.ok() || IsMapRecord(r->meta) || Supersedes(op->best->meta, r->meta)) return fallback();
          op->best = std::move(*r);
          deliver();
        },
        op->q.n);
  });
}

}  // namespace ringstore
