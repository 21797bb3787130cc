#include "node/node_core.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "dht/lww_map.h"
#include "node/access_policy.h"
#include "routing/placement.h"

namespace ringstore {

NodeCore::NodeCore(NodeOptions options, Clock& clock, Transport& transport, Store& store,
                   std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)),
      clock_(clock),
      transport_(transport),
      store_(store),
      log_(std::move(log)),
      hlc_(clock) {}

void NodeCore::Start() { transport_.SetHandler(this); }

void NodeCore::OnAccepted(ConnId conn, const std::string& peer_address) {
  Conn fresh;
  fresh.peer = peer_address;
  fresh.identity = transport_.PeerOf(conn);
  conns_[conn] = std::move(fresh);
  stats_.connections = conns_.size();
  transport_.SetFrameLimit(conn, kMaxHandshakeBodyBytes);
  log_->debug("connection {} from {}", conn, peer_address);
}

void NodeCore::OnConnected(ConnId conn) {
  if (peers_ != nullptr) peers_->OnConnected(conn);
}

void NodeCore::OnClosed(ConnId conn, const Status& why) {
  if (peers_ != nullptr && peers_->Owns(conn)) return peers_->OnClosed(conn, why);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  if (!why.ok()) log_->debug("connection {} from {} closed: {}", conn, it->second.peer, why.ToString());
  // Requests still in flight finish; their replies are dropped (Finish looks the conn up).
  Unwatch(conn, it->second);
  conns_.erase(it);
  stats_.connections = conns_.size();
}

void NodeCore::OnRefused(const std::string& peer_address, const Status& why) {
  ++stats_.handshakes_refused;
  log_->warn("refused a connection from {}: {}", peer_address, why.ToString());
}

void NodeCore::OnStreamError(ConnId conn, const Status& status) {
  ++stats_.stream_errors;
  if (peers_ != nullptr && peers_->Owns(conn)) {  // a link we opened: just drop it
    log_->warn("dropping the link to a peer: {}", status.ToString());
    transport_.Close(conn);
    return;
  }
  auto it = conns_.find(conn);
  log_->warn("closing connection {} from {}: {}", conn,
             it == conns_.end() ? std::string("?") : it->second.peer, status.ToString());
  SendError(conn, 0, status);
  transport_.Close(conn);
}

void NodeCore::SendError(ConnId conn, uint64_t request_id, const Status& status) {
  ++stats_.errors_sent;
  transport_.Send(conn, EncodeError(request_id, status));
}

const PeerIdentity& NodeCore::Identity(ConnId conn) const {
  // Unreachable (requests come only on known connections), but if it were, it would be denied
  // everything the policy can deny: a read-only client with a namespace no name can match.
  static const PeerIdentity kUnknown{Role::kReadOnly, "", "unknown connection", "-"};
  auto it = conns_.find(conn);
  return it == conns_.end() ? kUnknown : it->second.identity;
}

void NodeCore::Deny(ConnId conn, uint64_t request_id, const Status& why) {
  ++stats_.permission_denied;
  auto it = conns_.find(conn);
  log_->info("{} from {}", why.message(), it == conns_.end() ? std::string("?") : it->second.peer);
  SendError(conn, request_id, why);
}

void NodeCore::OnFrame(ConnId conn, Frame frame) {
  if (peers_ != nullptr && peers_->Owns(conn)) return peers_->OnFrame(conn, std::move(frame));
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  ++stats_.requests;
  const uint64_t rid = frame.header.request_id;
  const auto kind = static_cast<Kind>(frame.header.kind);
  if (!c.hello_done) {
    if (kind != Kind::kHello) {
      ++stats_.handshakes_refused;
      SendError(conn, rid, Status::Refused("handshake required: the first frame must be HELLO"));
      transport_.Close(conn);
      return;
    }
    HandleHello(conn, c, frame);
    return;
  }
  if (shutting_down_) {
    SendError(conn, rid, Status::ShuttingDown("node is shutting down"));
    return;
  }
  if (Status allowed = Authorize(c.identity, frame.header.kind); !allowed.ok()) return Deny(conn, rid, allowed);
  switch (kind) {
    case Kind::kPut:
    case Kind::kDel:
    case Kind::kTxn:
      return HandleWrite(conn, frame);
    case Kind::kGet:
      return HandleGet(conn, frame);
    case Kind::kStat:
      return HandleStat(conn, frame);
    case Kind::kGossip:
    case Kind::kGossipReply:
    case Kind::kPing:
    case Kind::kPingReq:
    case Kind::kPingAck:
    case Kind::kRouteTable:
      return HandleMembership(conn, frame);
    case Kind::kWatch:
    case Kind::kNotify:
      return HandleChannel(conn, c, frame);
    case Kind::kDiskUsage:
      if (!options_.disk_usage) return SendError(conn, rid, Status::Unavailable("this node does not know its disk"));
      return transport_.Send(conn, EncodeDiskUsage(rid, options_.disk_usage()));
    case Kind::kDecommission:
      if (repair_ == nullptr || membership_ == nullptr) return SendError(conn, rid, Status::Unavailable("this node runs no repair"));
      repair_->Decommission();
      return transport_.Send(conn, EncodeRepairStatus(rid, RepairState()));
    case Kind::kNodeStatus:
      if (repair_ == nullptr) return SendError(conn, rid, Status::Unavailable("this node runs no repair"));
      return transport_.Send(conn, EncodeRepairStatus(rid, RepairState()));
    case Kind::kHello:
      return SendError(conn, rid, Status::ProtocolError("HELLO sent twice"));
    default:
      if (AntiEntropy::Handles(kind)) {
        if (repair_ == nullptr) return SendError(conn, rid, Status::Unavailable("this node runs no repair"));
        if (!Admit(conn, rid)) return;
        return repair_->OnRequest(frame, [this, conn](std::string reply) { Finish(conn, std::move(reply)); });
      }
      return SendError(conn, rid,
                       Status::ProtocolError("unexpected message kind " +
                                             std::to_string(frame.header.kind) + " (" +
                                             KindName(frame.header.kind) + ")"));
  }
}

void NodeCore::HandleHello(ConnId conn, Conn& c, const Frame& frame) {
  auto hello = DecodeHello(frame.body);
  Status refuse;
  if (!hello.ok()) {
    refuse = Status::Refused("bad HELLO: " + hello.status().message());
  } else if (hello->cluster_id != options_.cluster_id) {
    refuse = Status::Refused("cluster id mismatch: this node belongs to cluster '" +
                             options_.cluster_id + "', the peer to '" + hello->cluster_id + "'");
  } else if (hello->version != kProtocolVersion) {
    refuse = Status::Refused("protocol version " + std::to_string(hello->version) +
                             " not supported (this node speaks " +
                             std::to_string(kProtocolVersion) + ")");
  }
  if (!refuse.ok()) {
    ++stats_.handshakes_refused;
    log_->warn("refused connection {} from {}: {}", conn, c.peer, refuse.message());
    SendError(conn, frame.header.request_id, refuse);
    transport_.Close(conn);
    return;
  }
  c.hello_done = true;
  transport_.SetFrameLimit(conn, kMaxFrameBodyBytes);
  Hello reply;
  reply.cluster_id = options_.cluster_id;
  reply.node_id = options_.node_id;
  reply.features = {"txn", "pipelining", kSyncGetFeature};
  transport_.Send(conn, EncodeHello(Kind::kHelloReply, frame.header.request_id, reply));
}

bool NodeCore::Admit(ConnId conn, uint64_t request_id) {
  Conn& c = conns_.at(conn);
  if (c.in_flight >= options_.max_in_flight_per_conn ||
      stats_.in_flight >= options_.max_in_flight_total) {
    SendError(conn, request_id, Status::Busy("too many requests in flight"));
    return false;
  }
  ++c.in_flight;
  ++stats_.in_flight;
  return true;
}

void NodeCore::Finish(ConnId conn, std::string reply) { Finish(conn, SharedFrame{std::move(reply), nullptr, {}}); }

void NodeCore::Finish(ConnId conn, SharedFrame reply) {
  --stats_.in_flight;
  if (auto it = conns_.find(conn); it != conns_.end()) {
    --it->second.in_flight;
    Send(conn, std::move(reply));
  }
  MaybeFinishShutdown();
}

void NodeCore::Send(ConnId conn, SharedFrame reply) {
  transport_.SendShared(conn, std::move(reply.head), std::move(reply.value), std::move(reply.tail));
}

RepairStatus NodeCore::RepairState() const {
  RepairStatus st = repair_->status();
  if (handoff_ != nullptr) {
    st.hints_pending = handoff_->stats().pending;
    st.hints_handed_off = handoff_->stats().handed_off;
  }
  return st;
}

void NodeCore::HandleWrite(ConnId conn, const Frame& frame) {
  const uint64_t rid = frame.header.request_id;
  auto txn = DecodeWrite(static_cast<Kind>(frame.header.kind), frame.body);
  if (!txn.ok()) return SendError(conn, rid, txn.status());
  if (Status allowed = AuthorizeWrite(Identity(conn), *txn); !allowed.ok()) return Deny(conn, rid, allowed);
  std::vector<bool> fallback;  // by op: taken in for replicas that failed
  for (const auto& op : txn->ops) {
    const int rank = Rank(op.id, txn->route_n);
    fallback.push_back(rank >= 0 && txn->route_n > 0 && rank >= static_cast<int>(txn->route_n));
    if (rank < 0) {
      ++stats_.not_mine;
      char digest[17];
      std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(membership_->table().Digest()));
      return SendError(conn, rid,
                       Status::NotMine("object " + op.id.Hex().substr(0, 16) + " is not placed on this node (table " +
                                       digest + "): fetch the route table again"));
    }
  }
  if (!Admit(conn, rid)) return;
  // The writer's timestamp is kept so that replicas agree and a resend is idempotent;
  // a request without one gets the node's.
  Timestamp ts = txn->ts;
  if (ts == 0) {
    ts = hlc_.Now();
  } else {
    const int64_t ahead_ms = static_cast<int64_t>(TimestampWallMs(ts)) - clock_.WallMicros() / 1000;
    if (ahead_ms > options_.max_future_skew_ms) {
      ++stats_.errors_sent;
      Finish(conn, EncodeError(rid, Status::InvalidArgument(
                                        "write timestamp is " + std::to_string(ahead_ms) +
                                        " ms ahead of this node's clock (limit " +
                                        std::to_string(options_.max_future_skew_ms) + " ms)")));
      return;
    }
    hlc_.Observe(ts);
  }
  std::vector<WriteOp> ops;
  ops.reserve(txn->ops.size());
  for (auto& op : txn->ops) {
    switch (op.type) {
      case TxnOpType::kDel: ops.push_back(WriteOp{op.id, Record::Tombstone(ts)}); break;
      case TxnOpType::kPut: ops.push_back(WriteOp{op.id, Record::Value(ts, std::move(op.value))}); break;
      case TxnOpType::kMerge: {
        auto rec = MapRecordFromWrite(op.value, ts);
        if (!rec.ok()) {
          ++stats_.errors_sent;
          return Finish(conn, EncodeError(rid, rec.status()));
        }
        ops.push_back(WriteOp{op.id, std::move(*rec)});
        break;
      }
    }
  }
  // Every copy of the write carries the writer's N, so repair keeps that many (R4).
  if (txn->replicas > 0) {
    for (WriteOp& op : ops) op.record.meta.set_replicas(txn->replicas);
  }
  const uint32_t route_n = txn->route_n;
  // A fallback's hint is kept in the same write as the record (node/hinted_handoff.h).
  std::vector<ObjectId> fallback_for;
  if (handoff_ != nullptr) {
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!fallback[i]) continue;
      ops[i].hint_n = route_n;
      fallback_for.push_back(ops[i].id);
    }
  }
  store_.Apply(std::move(ops), [this, conn, rid, ts, route_n, fallback_for = std::move(fallback_for)](Status s) {
    if (!s.ok()) {
      log_->error("write failed: {}", s.ToString());
      ++stats_.errors_sent;
      return Finish(conn, EncodeError(rid, s));
    }
    if (handoff_ != nullptr) {
      for (const ObjectId& id : fallback_for) handoff_->Note(id, route_n, ts);
    }
    Finish(conn, EncodeAck(rid, Ack{ts}));
  });
}

void NodeCore::HandleGet(ConnId conn, const Frame& frame) {
  const uint64_t rid = frame.header.request_id;
  uint32_t route_n = 0;
  ObjectName name;
  auto id = DecodeKeyRequest(frame.body, &route_n, &name);
  ++stats_.gets;
  if (!id.ok()) return SendError(conn, rid, id.status());
  if (Status allowed = AuthorizeRead(Identity(conn), *id, name); !allowed.ok()) return Deny(conn, rid, allowed);
  // Hot records are answered at once; the rest waits for the disk. A miss is answered at once
  // too when the key is ours and this node is in sync; otherwise the slow path decides
  // whether to forward it.
  if (auto cached = store_.GetIfCached(*id)) {
    const bool answer = !cached->status().IsNotFound() ||
                        (Mine(*id, route_n) && (route_n == 0 || repair_ == nullptr || repair_->synced()));
    if (answer) {
      Send(conn, GetReply(rid, *id, std::move(*cached)));
      return;
    }
  }
  if (!Admit(conn, rid)) return;
  store_.Get(*id, [this, conn, rid, route_n, id = *id](Result<Record> r) {
    // A key we do not hold and do not own: its replicas have it, if anyone does.
    if (r.status().IsNotFound() && !Mine(id, route_n)) return Forward(conn, rid, Kind::kGet, id, route_n);
    // One we own but lack, before this node has synced under the current ring: the data may
    // still be on the previous holders.
    if (r.status().IsNotFound() && route_n > 0 && repair_ != nullptr && !repair_->synced()) {
      ++stats_.fallback_reads;
      return Forward(conn, rid, Kind::kGet, id, route_n);
    }
    Finish(conn, GetReply(rid, id, std::move(r)));
  });
}

int NodeCore::Rank(const ObjectId& id, uint32_t route_n) const {
  if (route_n == 0 || membership_ == nullptr) return 0;
  return PreferenceRank(membership_->table(), id, options_.node_id, route_n + kRouteSlack);
}

void NodeCore::Forward(ConnId conn, uint64_t rid, Kind kind, const ObjectId& id, uint32_t route_n) {
  auto targets = std::make_shared<std::vector<std::string>>();
  if (peers_ != nullptr) {
    for (const NodeEntry* e : PlaceReplicas(membership_->table(), id, route_n + kRouteSlack)) {
      if (e->node_id != options_.node_id && e->state != NodeState::kDown) targets->push_back(e->address);
    }
  }
  if (targets->empty()) {
    return Finish(conn, EncodeError(rid, Status::NotFound("not held here, and no live replica to ask")));
  }
  ++stats_.forwarded;
  ForwardTo(conn, rid, kind, id, std::move(targets), 0, Status::NotFound("not held by any node of its window"));
}

void NodeCore::ForwardTo(ConnId conn, uint64_t rid, Kind kind, const ObjectId& id,
                         std::shared_ptr<const std::vector<std::string>> targets, size_t i, Status miss) {
  if (i == targets->size()) return Finish(conn, EncodeError(rid, miss));
  const std::string& address = (*targets)[i];
  // The request goes on without route_n, so the node answers from its own store and never
  // forwards it again.
  peers_->Request(
      address, [kind, &id](uint64_t peer_rid) { return EncodeKeyRequest(kind, peer_rid, id); },
      options_.forward_timeout, [this, conn, rid, kind, id, targets, i, miss](Result<Frame> r) {
        const std::string& address = (*targets)[i];
        if (!r.ok()) {
          // Once a node could not answer, "nobody has it" can no longer be said.
          return ForwardTo(conn, rid, kind, id, targets, i + 1,
                           Status::Unavailable("forwarding to " + address + " failed: " + r.status().ToString()));
        }
        if (r->header.kind == static_cast<uint16_t>(Kind::kError)) {
          auto e = DecodeError(r->body);
          if (e.ok() && e->ToStatus().IsNotFound()) return ForwardTo(conn, rid, kind, id, targets, i + 1, miss);
        }
        // A record is relayed under the client's request id with the address of the node it
        // came from, so that a client counts that node once toward R however many nodes
        // relay it (docs/architecture.md §4.2). Any other reply (an ERROR) goes as it came.
        const Kind reply = kind == Kind::kGet ? Kind::kGetReply : Kind::kStatReply;
        if (r->header.kind == static_cast<uint16_t>(reply)) {
          auto record = DecodeRecordReply(reply, r->body);
          if (!record.ok()) return Finish(conn, EncodeError(rid, Status::FromCode(record.status().code(),
                                                                         "relayed from " + address + ": " +
                                                                             record.status().message())));
          if (reply == Kind::kGetReply) return Finish(conn, EncodeGetReply(rid, std::move(*record), address));
          return Finish(conn, EncodeRecordReply(reply, rid, *record, address));
        }
        std::string out(kFrameHeaderBytes, '\0');
        out += r->body;
        EncodeFrameHeader(r->header.kind, rid, std::string_view(out).substr(kFrameHeaderBytes), r->header.flags,
                          out.data());
        Finish(conn, std::move(out));
      });
}

SharedFrame NodeCore::GetReply(uint64_t rid, const ObjectId& id, Result<Record> r) {
  // Verified again here, so that no layer below can hand out bytes that fail their checksum.
  if (r.ok() && !r->Intact()) r = Status::Corruption("object " + id.Hex() + ": value checksum mismatch");
  if (!r.ok()) {
    if (r.status().IsCorruption()) {
      ++stats_.corruptions;
      log_->error("corrupt record: {}", r.status().message());
      if (repair_ != nullptr) repair_->ReportCorrupt(id);
    }
    ++stats_.errors_sent;
    return SharedFrame{EncodeError(rid, r.status()), nullptr, {}};
  }
  return EncodeGetReply(rid, std::move(*r));
}

void NodeCore::HandleStat(ConnId conn, const Frame& frame) {
  const uint64_t rid = frame.header.request_id;
  uint32_t route_n = 0;
  ObjectName name;
  auto id = DecodeKeyRequest(frame.body, &route_n, &name);
  if (!id.ok()) return SendError(conn, rid, id.status());
  if (Status allowed = AuthorizeRead(Identity(conn), *id, name); !allowed.ok()) return Deny(conn, rid, allowed);
  if (!Admit(conn, rid)) return;
  store_.Stat(*id, [this, conn, rid, route_n, id = *id](Result<RecordMeta> r) {
    if (r.status().IsNotFound() && !Mine(id, route_n)) return Forward(conn, rid, Kind::kStat, id, route_n);
    if (r.status().IsNotFound() && route_n > 0 && repair_ != nullptr && !repair_->synced()) {
      ++stats_.fallback_reads;
      return Forward(conn, rid, Kind::kStat, id, route_n);
    }
    if (!r.ok()) {
      if (r.status().IsCorruption()) {
        ++stats_.corruptions;
        log_->error("corrupt record header: object {}: {}", id.Hex(), r.status().message());
        if (repair_ != nullptr) repair_->ReportCorrupt(id);
      }
      ++stats_.errors_sent;
      return Finish(conn, EncodeError(rid, r.status()));
    }
    Finish(conn, EncodeRecordReply(Kind::kStatReply, rid, Record{*r, {}}));
  });
}

void NodeCore::HandleMembership(ConnId conn, const Frame& frame) {
  const uint64_t rid = frame.header.request_id;
  if (membership_ == nullptr) return SendError(conn, rid, Status::Unavailable("this node has no ring yet"));
  if (static_cast<Kind>(frame.header.kind) == Kind::kRouteTable) {
    transport_.Send(conn, EncodeGossip(Kind::kRouteTableReply, membership_->self().address, membership_->table(), rid));
    return;
  }
  if (Status s = membership_->OnFrame(frame); !s.ok()) SendError(conn, rid, s);
}

void NodeCore::HandleChannel(ConnId conn, Conn& c, const Frame& frame) {
  const uint64_t rid = frame.header.request_id;
  auto m = DecodeChannelMessage(frame.body);
  if (!m.ok()) return SendError(conn, rid, m.status());
  if (static_cast<Kind>(frame.header.kind) == Kind::kWatch) {
    if (std::find(c.watching.begin(), c.watching.end(), m->channel) == c.watching.end()) {
      if (c.watching.size() >= kMaxWatchesPerConn) return SendError(conn, rid, Status::Busy("too many watches on one connection"));
      auto it = watchers_.find(m->channel);
      if (it == watchers_.end() && watchers_.size() >= kMaxChannels) {
        return SendError(conn, rid, Status::Busy("too many watched channels on this node"));
      }
      watchers_[m->channel].push_back(conn);
      c.watching.push_back(m->channel);
    }
    return transport_.Send(conn, EncodeAck(rid, Ack{0}));
  }
  if (auto it = watchers_.find(m->channel); it != watchers_.end()) {
    const std::string event = EncodeChannelMessage(Kind::kEvent, 0, *m);
    for (ConnId w : it->second) {
      if (w != conn) transport_.Send(w, event);
    }
  }
  transport_.Send(conn, EncodeAck(rid, Ack{0}));
}

void NodeCore::Unwatch(ConnId conn, Conn& c) {
  for (const ObjectId& ch : c.watching) {
    auto it = watchers_.find(ch);
    if (it == watchers_.end()) continue;
    std::erase(it->second, conn);
    if (it->second.empty()) watchers_.erase(it);
  }
  c.watching.clear();
}

void NodeCore::Shutdown(std::function<void(Status)> done) {
  if (shutting_down_) return;
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  transport_.StopAccepting();
  log_->info("shutting down: {} request(s) in flight", stats_.in_flight);
  MaybeFinishShutdown();
}

void NodeCore::MaybeFinishShutdown() {
  if (!shutting_down_ || stats_.in_flight > 0 || !shutdown_done_) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  store_.Close([this, done = std::move(done)](Status s) {
    log_->info("store closed: {}", s.ToString());
    done(s);
  });
}

}  // namespace ringstore
