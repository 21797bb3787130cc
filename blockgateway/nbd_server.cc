#include "blockgateway/nbd_server.h"

#include <boost/asio/write.hpp>

#include <unistd.h>

#include <cstdio>

#include "node/runtime/acceptor.h"
#include "node/runtime/asio_clock.h"  // OsRandomSeed
#include "node/runtime/tls_session.h"

namespace ringstore::block {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr size_t kReadBufferBytes = 256u << 10;
// Chunks one BLOCK_STATUS answer looks at (64 MiB of 256 KiB chunks): each unknown one
// costs a metadata read.
constexpr uint32_t kStatusChunks = 256, kStatusChunksOne = 16;

uint32_t ToNbdError(const Status& s) {
  switch (s.code()) {
    case Code::kOk:
      return nbd::kOk;
    case Code::kInvalidArgument:
      return nbd::kEinval;
    case Code::kShuttingDown:
      return nbd::kEshutdown;
    default:
      return nbd::kEio;
  }
}

}  // namespace

// One client connection: the socket, its NbdSession, and the volume it is attached to.
class NbdServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(NbdServer& server, tcp::socket socket, uint64_t id)
      : server_(server), socket_(std::move(socket)), id_(id), buf_(kReadBufferBytes) {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void Start() {
    nbd::NbdSession::Hooks hooks;
    std::weak_ptr<Connection> weak = weak_from_this();
    hooks.lookup = [this, weak](const std::string& name, std::function<void(Result<nbd::ExportInfo>)> done) {
      server_.Lookup(name, [this, weak, done](Result<std::shared_ptr<Volume>> v) {
        if (weak.expired()) {
          // The client left while the volume was opened: let the lease go if nobody else
          // uses the volume (after this callback drops its reference).
          if (v.ok()) server_.ReleaseLater((*v)->meta.name);
          return;
        }
        if (!v.ok()) {
          done(v.status());
        } else {
          // INFO then GO, or GO for another export: the volume looked up before is let go.
          if (volume_ && volume_ != *v) server_.ReleaseLater(volume_->meta.name);
          volume_ = *v;
          done(nbd::ExportInfo{volume_->meta.size, server_.options_.read_only || client_read_only_});
        }
        Drive();
      });
    };
    hooks.list = [this, weak](std::function<void(Result<std::vector<std::string>>)> done) {
      server_.List([this, weak, done](Result<std::vector<std::string>> names) {
        if (weak.expired()) return;
        done(std::move(names));
        Drive();
      });
    };
    hooks.request = [this](nbd::Request r) { Serve(std::move(r)); };
    session_ = std::make_unique<nbd::NbdSession>(std::move(hooks), server_.options_.session);
    session_->Start();
    server_.log_->debug("nbd connection {} from {}", id_, peer_);
    Drive();
  }

  // The volume it is attached to, if any.
  std::string volume() const { return volume_ ? volume_->meta.name : std::string(); }

  // Ends the connection at once (server shutdown).
  void Abort() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

 private:
  // Moves bytes: sends pending output, reads when the session wants input, closes when done.
  void Drive() {
    if (closed_) return;
    if (!writing_ && !tls_ && session_->StartTlsPending() && !session_->HasOutput()) BeginTls();
    const bool handshaking = tls_ && !tls_->established();
    if (!writing_ && (session_->HasOutput() || (tls_ && tls_->HasOutput()))) Write();
    if (!reading_ && !read_failed_ && (session_->WantsInput() || handshaking)) Read();
    if (!writing_ && !session_->HasOutput() && (session_->Done() || (read_failed_ && session_->in_flight() == 0))) {
      Finish();
    }
  }

  void Read() {
    reading_ = true;
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [this, self](boost::system::error_code ec, size_t n) {
      reading_ = false;
      if (closed_) return;
      if (ec) {
        read_failed_ = true;  // the client went away: finish what is in flight, then close
        if (tls_ && !tls_->established()) {
          session_->Fail("TLS handshake failed: the client hung up (did it refuse this gateway's certificate?)");
        }
      } else if (tls_) {
        FeedTls(buf_.data(), n);
      } else {
        session_->Feed(buf_.data(), n);
      }
      Drive();
    });
  }

  // STARTTLS was acknowledged and the reply sent: from here on the bytes are TLS.
  void BeginTls() {
    tls_ = std::make_unique<TlsSession>(server_.options_.tls->ssl_ctx(), TlsSession::Side::kServer);
    const std::string early = session_->BeginTls();
    if (!early.empty()) FeedTls(early.data(), early.size());
  }

  void FeedTls(const char* data, size_t n) {
    tls_->Feed(data, n);
    if (!tls_->established()) {
      if (Status s = tls_->Handshake(); !s.ok()) return session_->Fail("TLS handshake failed: " + s.message());
      if (!tls_->established()) return;
      auto id = server_.options_.tls->VerifiedPeer(tls_->native());
      if (!id.ok()) return session_->Fail("TLS: " + id.status().message());
      client_read_only_ = id->role == Role::kReadOnly;
      server_.log_->info("nbd connection {} from {}: TLS with {}{}", id_, peer_, id->Describe(),
                         client_read_only_ ? ", exports read-only" : "");
      session_->TlsEstablished();
    }
    bool closed = false;
    Status s = tls_->Drain([this](const char* p, size_t n) {
      session_->Feed(p, n);
      return true;
    }, &closed);
    if (!s.ok()) {
      read_failed_ = true;
      return session_->Fail("TLS: " + s.message());
    }
    if (closed) read_failed_ = true;
  }

  void Write() {
    writing_ = true;
    out_ = session_->TakeOutput();
    if (tls_) {
      // Encrypt the session's output (once the handshake is done) behind any handshake bytes.
      Status s;
      for (const auto& b : out_) {
        if (s.ok() && tls_->established()) s = tls_->Write(b.data(), b.size());
      }
      out_.assign(1, std::string());
      tls_->TakeOutput(&out_[0]);
      if (!s.ok()) session_->Fail("TLS: " + s.message());
    }
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(out_.size());
    for (const auto& s : out_) bufs.emplace_back(asio::buffer(s));
    auto self = shared_from_this();
    asio::async_write(socket_, bufs, [this, self](boost::system::error_code ec, size_t) {
      writing_ = false;
      out_.clear();
      if (closed_) return;
      if (ec) {
        read_failed_ = true;
        Abort();
      }
      Drive();
    });
  }

  void Finish() {
    if (closed_) return;
    closed_ = true;
    if (session_->tls_refusals() > 0) {
      server_.log_->info("nbd connection {} from {}: refused {} option(s) sent without TLS (this gateway requires "
                         "STARTTLS)", id_, peer_, session_->tls_refusals());
    }
    if (!session_->close_reason().empty()) {
      server_.log_->info("nbd connection {} from {} closed: {}", id_, peer_, session_->close_reason());
    } else {
      server_.log_->debug("nbd connection {} from {} ended", id_, peer_);
    }
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    server_.Closed(this);
  }

  void Serve(nbd::Request r) {
    VolumeCache& cache = *volume_->cache;
    std::weak_ptr<Connection> weak = weak_from_this();
    const uint64_t handle = r.id;  // what the session answers by
    auto answer = [this, weak, handle](Status s) {
      if (weak.expired()) return;
      if (!s.ok()) server_.log_->warn("nbd connection {}: request failed: {}", id_, s.ToString());
      session_->Reply(handle, ToNbdError(s));
      Drive();
    };
    if (volume_->lease && volume_->lease->lost()) {
      // Removed or shrunk under this connection (`--force`): its cached chunks are stale.
      return answer(Status::IOError("volume '" + volume_->meta.name + "' was removed or shrunk while attached"));
    }
    switch (r.type) {
      case nbd::kCmdRead:
        return cache.Read(r.offset, r.length, [this, weak, handle](Result<std::string> data) {
          if (weak.expired()) return;
          if (!data.ok()) {
            server_.log_->warn("nbd connection {}: read failed: {}", id_, data.status().ToString());
            session_->Reply(handle, ToNbdError(data.status()));
          } else {
            session_->Reply(handle, nbd::kOk, std::move(*data));
          }
          Drive();
        });
      case nbd::kCmdWrite:
        return cache.Write(r.offset, std::move(r.payload), r.fua(), answer);
      case nbd::kCmdTrim:
        return cache.Zero(r.offset, r.length, r.fua(), answer);
      case nbd::kCmdWriteZeroes:
        // NO_HOLE: the range must stay allocated, so no chunk of it becomes a hole.
        return cache.Zero(r.offset, r.length, r.fua(), (r.flags & nbd::kCmdFlagNoHole) != 0, answer);
      case nbd::kCmdFlush:
        return cache.Flush(answer);
      case nbd::kCmdBlockStatus: {
        // One extent per run of chunks that are holes, or not; at most kStatusChunks chunks
        // per answer (the client asks again from where it ends).
        const uint64_t offset = r.offset, end = r.offset + r.length, cs = cache.meta().chunk_size;
        // REQ_ONE sends one extent: fewer chunks tell it.
        const uint32_t chunks = r.req_one() ? kStatusChunksOne : kStatusChunks;
        return cache.Holes(r.offset, r.length, chunks, [this, weak, handle, offset, end, cs](std::vector<bool> holes) {
          if (weak.expired()) return;
          std::vector<nbd::Extent> extents;
          const uint64_t first = offset / cs;
          for (size_t k = 0; k < holes.size(); ++k) {
            const uint64_t from = std::max(offset, (first + k) * cs), to = std::min(end, (first + k + 1) * cs);
            const uint32_t flags = holes[k] ? nbd::kStateHole | nbd::kStateZero : 0;
            if (!extents.empty() && extents.back().flags == flags) extents.back().length += static_cast<uint32_t>(to - from);
            else extents.push_back(nbd::Extent{static_cast<uint32_t>(to - from), flags});
          }
          session_->ReplyExtents(handle, nbd::kOk, std::move(extents));
          Drive();
        });
      }
      default:
        return answer(Status::InvalidArgument("unexpected command"));
    }
  }

  NbdServer& server_;
  tcp::socket socket_;
  const uint64_t id_;
  std::string peer_;
  std::vector<char> buf_;
  std::vector<std::string> out_;
  std::unique_ptr<nbd::NbdSession> session_;
  std::shared_ptr<Volume> volume_;
  std::unique_ptr<TlsSession> tls_;  // after STARTTLS
  bool client_read_only_ = false;    // a read-only certificate: every export read-only
  bool reading_ = false, writing_ = false, read_failed_ = false, closed_ = false;
};

NbdServer::NbdServer(asio::io_context& io, ClusterClient& client, Clock& clock, std::shared_ptr<spdlog::logger> log,
                     ServerOptions options)
    : io_(io),
      client_(client),
      clock_(clock),
      log_(std::move(log)),
      options_(options),
      catalog_(client, options.meta_quorum, clock),
      acceptor_(io) {}

NbdServer::~NbdServer() {
  for (auto& [p, c] : connections_) c->Abort();
}

Status NbdServer::Listen(const std::string& address) {
  auto l = OpenAcceptor(io_, address);
  if (!l.ok()) return l.status();
  acceptor_ = std::move(*l->acceptor);
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown-host");
  // The process gets a name of its own: two gateways on hosts of one name (cloned machines)
  // must not let go of each other's leases.
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(OsRandomSeed()));
  holder_ = std::string(host) + "/" + local_address() + "/" + id;
  Accept();
  return Status::Ok();
}

std::string NbdServer::local_address() const {
  boost::system::error_code ec;
  auto ep = acceptor_.local_endpoint(ec);
  if (ec) return "";
  const std::string host = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

void NbdServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted && !stopping_) {
        log_->warn("accept failed: {}", ec.message());
        Accept();
      }
      return;
    }
    if (stopping_) return;
    auto c = std::make_shared<Connection>(*this, std::move(socket), next_conn_id_++);
    connections_.emplace(c.get(), c);
    c->Start();
    Accept();
  });
}

void NbdServer::Closed(Connection* c) {
  // Destroyed after the current handler: its callbacks are still on the stack.
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  auto keep = std::move(it->second);
  connections_.erase(it);
  const std::string name = keep->volume();
  asio::post(io_, [this, keep = std::move(keep), name]() mutable {
    keep.reset();
    if (!name.empty()) MaybeRelease(name);
  });
}

void NbdServer::ReleaseLater(const std::string& name) {
  asio::post(io_, [this, name] { MaybeRelease(name); });
}

void NbdServer::MaybeRelease(const std::string& name) {
  if (stopping_) return;
  auto it = volumes_.find(name);
  if (it == volumes_.end() || it->second.use_count() != 1 || !it->second->ready) return;
  const bool lost = it->second->lease && it->second->lease->lost();
  if (lost && it->second->cache->Quiet()) {
    log_->error("volume '{}' was removed or shrunk while attached here: {} of unwritten data dropped", name,
                FormatSize(it->second->cache->dirty_bytes()));
    volumes_.erase(it);
    return;
  }
  if (!it->second->cache->Idle()) {
    // Nobody is connected, but chunks are still being written back: look again soon, so that
    // an admin command waiting for the lease (kDefaultLeaseWait) sees it go. One look at a
    // time, however many connections came and went.
    if (it->second->release_check_armed) return;
    it->second->release_check_armed = true;
    std::weak_ptr<Volume> weak = it->second;
    clock_.Schedule(std::chrono::milliseconds(200), [this, name, weak] {
      auto v = weak.lock();
      if (!v) return;
      v->release_check_armed = false;
      auto it = volumes_.find(name);
      const bool current = it != volumes_.end() && it->second == v;
      v.reset();
      if (current) MaybeRelease(name);
    });
    return;
  }
  auto v = std::move(volumes_[name]);
  volumes_.erase(name);
  if (!v->lease) return;
  log_->info("volume '{}': no connection and nothing to write back; letting go of its lease", name);
  v->lease->Release([v](Status) {});  // v kept until the entry's delete is answered
}

void NbdServer::Lookup(const std::string& name, std::function<void(Result<std::shared_ptr<Volume>>)> done) {
  catalog_.Open(name, [this, name, done](Result<VolumeMeta> m) {
    // After Shutdown has let go of the leases, none is taken.
    if (stopping_) return done(Status::ShuttingDown("the gateway is stopping"));
    if (!m.ok()) return done(m.status());
    if (!m->hold.empty()) return done(Status::Busy(DescribeHold(*m)));
    auto& slot = volumes_[name];
    if (slot && !SameVolume(slot->meta, *m)) {
      // Removed and created again, or resized: start afresh once nobody uses the old cache.
      // Until then a new connection is refused: the old cache would write under the old uuid
      // (lost with it) or serve chunks a shrink deleted.
      if (slot.use_count() == 1 && slot->ready && slot->cache->Idle()) {
        if (slot->lease) slot->lease->Release([old = slot](Status) {});
        slot.reset();
      } else {
        log_->warn("volume '{}' changed while attached; new connections are refused until the others close", name);
        return done(Status::Busy("volume '" + name +
                                 "' was removed, created again or resized while attached here; connect again once "
                                 "its other connections have closed"));
      }
    }
    if (slot) {
      if (slot->ready) return done(slot);
      slot->waiting.push_back([slot = slot, done](Status s) {
        if (s.ok()) done(slot);
        else done(s);
      });
      return;
    }
    auto v = std::make_shared<Volume>();
    v->meta = *m;
    v->store = std::make_unique<ClusterChunkStore>(*m, client_, clock_, options_.retry);
    v->cache = std::make_unique<VolumeCache>(*m, *v->store, clock_, options_.cache);
    slot = v;
    if (options_.read_only) {
      v->ready = true;
      return Opened(name, v, done);
    }
    LeaseOptions lo;
    lo.holder = holder_;
    lo.term = options_.lease_term;
    lo.drain = options_.lease_drain;
    lo.quorum = options_.meta_quorum;
    v->lease = std::make_unique<VolumeLease>(client_, clock_, catalog_, *m, lo);
    VolumeLease* lease = v->lease.get();
    v->store->SetWriteGate([lease] { return lease->WriteGate(); });
    std::weak_ptr<Volume> weak = v;
    // A volume left with no connection and nothing to write back is let go of (if no closing
    // connection did it already).
    lease->on_renewal = [this, name] { ReleaseLater(name); };
    lease->Acquire([this, name, weak, done](Status s) {
      auto v = weak.lock();
      if (!v) return;
      v->ready = s.ok();
      auto waiting = std::move(v->waiting);
      if (!s.ok()) {
        log_->warn("volume '{}': not served: {}", name, s.message());
        auto it = volumes_.find(name);
        if (it != volumes_.end() && it->second == v) volumes_.erase(it);
        done(s);
      } else {
        Opened(name, v, done);
      }
      for (auto& w : waiting) w(s);
    });
  });
}

void NbdServer::Opened(const std::string& name, std::shared_ptr<Volume> v,
                       std::function<void(Result<std::shared_ptr<Volume>>)> done) {
  log_->info("volume '{}': {} in chunks of {}, N={} W={} R={}{}", name, FormatSize(v->meta.size),
             FormatSize(v->meta.chunk_size), v->store->quorum().n, v->store->quorum().w, v->store->quorum().r,
             v->lease ? ", leased as " + holder_ : "");
  done(std::move(v));
}

void NbdServer::List(std::function<void(Result<std::vector<std::string>>)> done) {
  catalog_.List([done](Result<std::vector<VolumeMeta>> vols) {
    if (!vols.ok()) return done(vols.status());
    std::vector<std::string> names;
    for (const auto& v : *vols) names.push_back(v.name);
    done(std::move(names));
  });
}

void NbdServer::Shutdown(std::function<void(Status)> done) {
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto& [p, c] : connections_) c->Abort();
  auto state = std::make_shared<std::pair<size_t, Status>>(volumes_.size() + 1, Status::Ok());
  auto finish = [state, done](Status s) {
    if (!s.ok() && state->second.ok()) state->second = s;
    if (--state->first == 0) done(state->second);
  };
  for (auto& [name, v] : volumes_) {
    log_->info("volume '{}': writing back {} dirty", name, FormatSize(v->cache->dirty_bytes()));
    std::shared_ptr<Volume> vol = v;
    v->cache->Flush([vol, finish](Status s) {
      if (!vol->lease) return finish(s);
      // Once written back, let the admin commands go on at once rather than at the lease's end.
      vol->lease->Release([finish, s](Status) { finish(s); });
    });
  }
  finish(Status::Ok());
}

}  // namespace ringstore::block
