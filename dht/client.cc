#include "dht/client.h"

#include <optional>

namespace ringstore {

namespace {

// A reply as its frame, or as a Status: the transport's failure, the ERROR the node sent, or
// a protocol error when the frame is not of the kind the request expects (any kind if none).
Result<Frame> ReplyOf(Result<Frame> r, std::optional<Kind> want) {
  if (!r.ok()) return r;
  if (r->header.kind == static_cast<uint16_t>(Kind::kError)) {
    auto e = DecodeError(r->body);
    return e.ok() ? e->ToStatus() : e.status();
  }
  if (want && r->header.kind != static_cast<uint16_t>(*want)) {
    return Status::ProtocolError(std::string("expected ") + KindName(static_cast<uint16_t>(*want)) + ", got " +
                                 KindName(r->header.kind));
  }
  return r;
}

}  // namespace

Client::Client(ClientOptions options, Clock& clock, Transport& transport, Random& random)
    : options_(std::move(options)), clock_(clock), transport_(transport), random_(random), hlc_(clock) {
  transport_.SetHandler(this);
}

Client::~Client() {
  if (sweep_armed_) clock_.Cancel(sweep_timer_);
  transport_.SetHandler(nullptr);
  if (have_conn_) transport_.Close(conn_);
}

void Client::Connect(const std::string& address, std::function<void(Status)> done) {
  address_ = address;
  conn_ = transport_.Connect(address);
  have_conn_ = true;
  Hello hello;
  hello.cluster_id = options_.cluster_id;
  hello.features = {"txn", "pipelining"};
  const uint64_t rid = next_rid_++;
  Call(EncodeHello(Kind::kHello, rid, hello), rid, options_.connect_timeout,
       [this, done = std::move(done)](Result<Frame> r) {
         // A failed handshake closes the connection, so nothing else is sent on it.
         auto fail = [&](Status s) {
           if (have_conn_) transport_.Close(conn_);
           done(std::move(s));
         };
         r = ReplyOf(std::move(r), Kind::kHelloReply);
         if (!r.ok()) return fail(r.status());
         auto hello = DecodeHello(r->body);
         if (!hello.ok()) return fail(hello.status());
         if (hello->cluster_id != options_.cluster_id) {
           return fail(Status::Refused("node " + address_ + " belongs to cluster '" +
                                       hello->cluster_id + "', not '" + options_.cluster_id + "'"));
         }
         if (hello->version != kProtocolVersion) {
           return fail(Status::Refused("node " + address_ + " speaks protocol version " +
                                       std::to_string(hello->version)));
         }
         server_node_id_ = hello->node_id;
         ready_ = true;
         done(Status::Ok());
       });
}

void Client::Call(SharedFrame frame, uint64_t rid, Clock::Duration timeout, ReplyHandler handler) {
  pending_.emplace(rid, Pending{clock_.Now() + timeout, std::move(handler)});
  transport_.SendShared(conn_, std::move(frame.head), std::move(frame.value), std::move(frame.tail));
  if (!sweep_armed_) {
    sweep_armed_ = true;
    sweep_timer_ = clock_.Schedule(options_.sweep_interval, [this] {
      sweep_armed_ = false;
      Sweep();
    });
  }
}

void Client::Sweep() {
  const auto now = clock_.Now();
  std::vector<ReplyHandler> expired;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second.handler));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& h : expired) h(Status::Timeout("no reply from " + address_ + " in time"));
  if (!pending_.empty() && !sweep_armed_) {
    sweep_armed_ = true;
    sweep_timer_ = clock_.Schedule(options_.sweep_interval, [this] {
      sweep_armed_ = false;
      Sweep();
    });
  }
}

bool Client::Reserve(const std::function<void(Status)>& fail) {
  if (!ready_) {
    fail(Status::Unavailable(have_conn_ ? "handshake with " + address_ + " not finished"
                                        : "not connected"));
    return false;
  }
  if (pending_.size() >= options_.max_in_flight) {
    fail(Status::Busy("too many requests in flight"));
    return false;
  }
  return true;
}

void Client::SendWrite(SharedFrame frame, uint64_t rid, Callback<Ack> done) {
  Call(std::move(frame), rid, options_.request_timeout, [this, done = std::move(done)](Result<Frame> r) {
    r = ReplyOf(std::move(r), Kind::kAck);
    if (!r.ok()) return done(r.status());
    auto ack = DecodeAck(r->body);
    if (ack.ok()) hlc_.Observe(ack->ts);
    done(std::move(ack));
  });
}

void Client::Put(const ObjectKey& key, std::string value, Callback<Ack> done) {
  if (!Reserve([&](Status s) { done(s); })) return;
  if (value.size() > kMaxValueBytes) return done(Status::TooLarge("value larger than 64 MiB"));
  const uint64_t rid = next_rid_++;
  SendWrite(EncodePut(rid, key, value, hlc_.Now(), random_.Next()), rid, std::move(done));
}

void Client::Del(const ObjectKey& key, Callback<Ack> done) {
  if (!Reserve([&](Status s) { done(s); })) return;
  const uint64_t rid = next_rid_++;
  SendWrite(EncodeDel(rid, key, hlc_.Now(), random_.Next()), rid, std::move(done));
}

void Client::Commit(const Txn& txn, Callback<Ack> done) {
  if (!Reserve([&](Status s) { done(s); })) return;
  if (txn.ops.empty() || txn.ops.size() > kMaxTxnOps) {
    return done(Status::InvalidArgument("a transaction needs 1 to 1024 ops"));
  }
  if (txn.txn_id == 0 || txn.ts == 0) {  // stamped here, on a copy
    Txn stamped = txn;
    if (stamped.txn_id == 0) stamped.txn_id = random_.Next();
    if (stamped.ts == 0) stamped.ts = hlc_.Now();
    const uint64_t rid = next_rid_++;
    return SendWrite(EncodeTxn(rid, stamped), rid, std::move(done));
  }
  const uint64_t rid = next_rid_++;
  SendWrite(EncodeTxn(rid, txn), rid, std::move(done));
}

void Client::Commit(std::shared_ptr<const Txn> txn, Callback<Ack> done) {
  if (txn->txn_id == 0 || txn->ts == 0 || txn->ops.empty() || txn->ops.size() > kMaxTxnOps) {
    return Commit(*txn, std::move(done));  // stamps a copy, or refuses it
  }
  if (!Reserve([&](Status s) { done(s); })) return;
  const uint64_t rid = next_rid_++;
  SendWrite(EncodeTxnShared(rid, std::move(txn)), rid, std::move(done));
}

void Client::Get(const ObjectKey& key, Callback<Record> done, uint32_t route_n) {
  Read(key, true, route_n, [done = std::move(done)](Result<SourcedRecord> r) {
    if (!r.ok()) return done(r.status());
    done(std::move(r->record));
  });
}

void Client::Stat(const ObjectKey& key, Callback<RecordMeta> done, uint32_t route_n) {
  Read(key, false, route_n, [done = std::move(done)](Result<SourcedRecord> r) {
    if (!r.ok()) return done(r.status());
    done(r->record.meta);
  });
}

void Client::Read(const ObjectKey& key, bool with_value, uint32_t route_n, Callback<SourcedRecord> done) {
  if (!Reserve([&](Status s) { done(s); })) return;
  const uint64_t rid = next_rid_++;
  const Kind kind = with_value ? Kind::kGet : Kind::kStat;
  const Kind reply = with_value ? Kind::kGetReply : Kind::kStatReply;
  Call(EncodeKeyRequest(kind, rid, key, route_n), rid, options_.request_timeout,
       [this, reply, done = std::move(done)](Result<Frame> r) {
         r = ReplyOf(std::move(r), reply);
         if (!r.ok()) return done(r.status());
         SourcedRecord out;
         auto rec = DecodeRecordReply(reply, r->body, &out.from);
         if (!rec.ok()) return done(rec.status());
         if (reply == Kind::kGetReply) hlc_.Observe(rec->meta.ts);
         out.record = std::move(*rec);
         done(std::move(out));
       });
}

void Client::Request(Kind kind, std::string body, Callback<Frame> done) {
  if (!Reserve([&](Status s) { done(s); })) return;
  const uint64_t rid = next_rid_++;
  Call(EncodeFrame(static_cast<uint16_t>(kind), rid, body), rid, options_.request_timeout,
       [done = std::move(done)](Result<Frame> r) { done(ReplyOf(std::move(r), std::nullopt)); });
}

void Client::DiskUsageOf(Callback<DiskUsage> done) {
  // An empty msgpack array is the request body.
  Request(Kind::kDiskUsage, std::string(1, '\x90'), [done = std::move(done)](Result<Frame> r) {
    if (!r.ok()) return done(r.status());
    if (r->header.kind != static_cast<uint16_t>(Kind::kDiskUsageReply)) {
      return done(Status::ProtocolError(std::string("expected DISK_USAGE_REPLY, got ") + KindName(r->header.kind)));
    }
    done(DecodeDiskUsage(r->body));
  });
}

void Client::Watch(const ObjectId& channel, Callback<Ack> done) {
  if (!Reserve([&](Status s) { done(s); })) return;
  const uint64_t rid = next_rid_++;
  Call(EncodeChannelMessage(Kind::kWatch, rid, ChannelMessage{channel, {}}), rid, options_.request_timeout,
       [done = std::move(done)](Result<Frame> r) {
         r = ReplyOf(std::move(r), Kind::kAck);
         if (!r.ok()) return done(r.status());
         done(DecodeAck(r->body));
       });
}

void Client::Notify(const ObjectId& channel, std::string payload, Callback<Ack> done) {
  if (payload.size() > kMaxEventPayload) return done(Status::TooLarge("event payload over 64 KiB"));
  if (!Reserve([&](Status s) { done(s); })) return;
  const uint64_t rid = next_rid_++;
  Call(EncodeChannelMessage(Kind::kNotify, rid, ChannelMessage{channel, std::move(payload)}), rid,
       options_.request_timeout, [done = std::move(done)](Result<Frame> r) {
         r = ReplyOf(std::move(r), Kind::kAck);
         if (!r.ok()) return done(r.status());
         done(DecodeAck(r->body));
       });
}

void Client::OnFrame(ConnId conn, Frame frame) {
  if (conn != conn_) return;
  if (frame.header.request_id == 0 && frame.header.kind == static_cast<uint16_t>(Kind::kEvent)) {
    auto m = DecodeChannelMessage(frame.body);
    if (m.ok() && on_event_) on_event_(m->channel, std::move(m->payload));
    return;
  }
  auto it = pending_.find(frame.header.request_id);
  if (it == pending_.end()) {
    // A connection-level error (request id 0) ends every request on this connection.
    if (frame.header.kind == static_cast<uint16_t>(Kind::kError) && frame.header.request_id == 0) {
      auto e = DecodeError(frame.body);
      FailAll(e.ok() ? e->ToStatus() : e.status());
    }
    return;  // a late reply to a request that timed out
  }
  ReplyHandler h = std::move(it->second.handler);
  pending_.erase(it);
  h(std::move(frame));
}

void Client::OnStreamError(ConnId conn, const Status& status) {
  if (conn == conn_) FailAll(status);
}

void Client::OnClosed(ConnId conn, const Status& why) {
  if (conn != conn_) return;
  have_conn_ = false;
  ready_ = false;
  FailAll(why.ok() ? Status::Unavailable("connection to " + address_ + " closed") : why);
}

void Client::FailAll(const Status& why) {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [rid, p] : pending) p.handler(why);
}

}  // namespace ringstore
