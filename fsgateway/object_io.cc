#include "fsgateway/object_io.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <future>
#include <optional>

#include "dht/random.h"
#include "node/runtime/asio_clock.h"
#include "node/runtime/asio_transport.h"

namespace ringstore::fs {

int ErrnoOf(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kTooLarge: return EFBIG;
    case Code::kPermissionDenied: return EACCES;  // the gateway's certificate may not do it
    default: return EIO;
  }
}

int FirstErrno(const std::vector<IoResult>& results) {
  for (const IoResult& r : results) {
    if (!r.status.ok()) return ErrnoOf(r.status);
  }
  return 0;
}

// ---- PendingIo -------------------------------------------------------------------------

const std::vector<IoResult>& PendingIo::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  ++waiters_;
  cv_.wait(lock, [&] { return done_; });
  --waiters_;
  return results_;
}

std::vector<IoResult> PendingIo::Take() {
  std::unique_lock<std::mutex> lock(mu_);
  ++waiters_;
  cv_.wait(lock, [&] { return done_; });
  --waiters_;
  return std::move(results_);
}

size_t PendingIo::waiters() {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_;
}

bool PendingIo::done() {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void PendingIo::Finish(std::vector<IoResult> results) {
  std::lock_guard<std::mutex> lock(mu_);
  results_ = std::move(results);
  done_ = true;
  cv_.notify_all();
}

// ---- conveniences ---------------------------------------------------------------------

IoResult ObjectIo::Get(const ObjectKey& id, const Quorum& q) {
  std::vector<IoOp> ops(1);
  ops[0].kind = IoOp::kGet;
  ops[0].id = id;
  return std::move(Run(std::move(ops), q)[0]);
}

std::vector<std::vector<IoOp>> SplitOps(std::vector<IoOp> ops, size_t per) {
  std::vector<std::vector<IoOp>> batches;
  for (size_t i = 0; i < ops.size(); i += per) {
    const size_t end = std::min(ops.size(), i + per);
    batches.emplace_back(std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(i)),
                         std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(end)));
  }
  return batches;
}

int ObjectIo::RunAll(std::vector<IoOp> ops, const Quorum& q) {
  for (auto& batch : SplitOps(std::move(ops), kMaxOpsInFlight)) {
    if (int e = FirstErrno(Run(std::move(batch), q)); e != 0) return e;
  }
  return 0;
}

Status ObjectIo::Put(const ObjectKey& id, std::string value, const Quorum& q) {
  std::vector<IoOp> ops(1);
  ops[0].kind = IoOp::kPut;
  ops[0].id = id;
  ops[0].value = std::move(value);
  return Run(std::move(ops), q)[0].status;
}

Status ObjectIo::Merge(const ObjectKey& id, LwwMap entries, const Quorum& q) {
  std::vector<IoOp> ops(1);
  ops[0].kind = IoOp::kMerge;
  ops[0].id = id;
  ops[0].entries = std::move(entries);
  return Run(std::move(ops), q)[0].status;
}

Status ObjectIo::Del(const ObjectKey& id, const Quorum& q) {
  std::vector<IoOp> ops(1);
  ops[0].kind = IoOp::kDel;
  ops[0].id = id;
  return Run(std::move(ops), q)[0].status;
}

// ---- MemoryObjectIo -------------------------------------------------------------------

std::shared_ptr<PendingIo> MemoryObjectIo::Start(std::vector<IoOp> ops, const Quorum&, Done done) {
  auto pending = std::make_shared<PendingIo>();
  auto out = Apply(std::move(ops));
  if (done) done(out);
  pending->Finish(std::move(out));
  return pending;
}

std::vector<IoResult> MemoryObjectIo::Apply(std::vector<IoOp> ops) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<IoResult> out(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    IoOp& op = ops[i];
    if (!fail_.ok() && (!fail_only_ || *fail_only_ == op.kind)) {
      out[i].status = fail_;
      continue;
    }
    auto it = objects_.find(op.id.id);
    const Record* stored = it == objects_.end() ? nullptr : &it->second;
    switch (op.kind) {
      case IoOp::kGet:
        if (stored == nullptr || stored->meta.tombstone()) {
          out[i].status = Status::NotFound();
        } else {
          out[i].value = stored->value;
          out[i].is_map = IsMapRecord(stored->meta);
        }
        break;
      case IoOp::kPut: objects_[op.id.id] = MergeRecords(stored, Record::Value(++ts_, std::move(op.value))); break;
      case IoOp::kDel: objects_[op.id.id] = MergeRecords(stored, Record::Tombstone(++ts_)); break;
      case IoOp::kMerge: {
        auto rec = MapRecordFromWrite(EncodeLwwMap(op.entries), ++ts_);
        if (!rec.ok()) {
          out[i].status = rec.status();
          break;
        }
        objects_[op.id.id] = MergeRecords(stored, *rec);
        break;
      }
    }
  }
  return out;
}

Status MemoryObjectIo::Capacity(uint64_t* total_bytes, uint64_t* free_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t used = 0;
  for (const auto& [id, r] : objects_) used += r.value.size();
  *total_bytes = 1ull << 30;
  *free_bytes = *total_bytes > used ? *total_bytes - used : 0;
  return fail_;
}

void MemoryObjectIo::Watch(const ObjectId& channel, std::function<void(std::string)> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.emplace_back(channel, std::move(handler));
}

void MemoryObjectIo::Notify(const ObjectId& channel, std::string payload) {
  std::vector<std::function<void(std::string)>> to_call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [ch, h] : watchers_) {
      if (ch == channel) to_call.push_back(h);
    }
  }
  for (auto& h : to_call) h(payload);
}

size_t MemoryObjectIo::objects() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, r] : objects_) n += r.meta.tombstone() ? 0 : 1;
  return n;
}

void MemoryObjectIo::FailAll(Status s, std::optional<IoOp::Kind> only) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_ = std::move(s);
  fail_only_ = only;
}

// ---- ClusterObjectIo ------------------------------------------------------------------

struct ClusterObjectIo::Impl {
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(io);
  AsioClock clock{io};
  SeededRandom random{OsRandomSeed()};
  ClusterIoOptions options;
  std::unique_ptr<ClusterClient> client;
  std::thread thread;
  std::mutex mu;
  bool stopped = false;

  // One batch: done when remaining reaches zero (on the io thread, so no lock is needed).
  struct Batch {
    size_t remaining = 0;
    std::vector<IoResult> results;
    ObjectIo::Done done;
    std::shared_ptr<PendingIo> pending;
  };

  static bool Retryable(const Status& s) {
    return s.code() == Code::kUnavailable || s.code() == Code::kTimeout || s.code() == Code::kBusy;
  }

  // Runs op (on the io thread), retrying while the failure is retryable and time is left.
  void Start(std::shared_ptr<Batch> batch, size_t i, std::shared_ptr<IoOp> op, Quorum q,
             Clock::Duration deadline, Clock::Duration backoff) {
    auto finish = [this, batch, i, op, q, deadline, backoff](IoResult r) {
      const Clock::Duration now = clock.Now();
      if (!r.status.ok() && Retryable(r.status) && now < deadline) {
        const Clock::Duration wait = std::min(backoff, deadline - now);
        const Clock::Duration next = std::min<Clock::Duration>(backoff * 2, std::chrono::seconds(2));
        clock.Schedule(wait, [this, batch, i, op, q, deadline, next] {
          client->Refresh([this, batch, i, op, q, deadline, next](Status) { Start(batch, i, op, q, deadline, next); });
        });
        return;
      }
      batch->results[i] = std::move(r);
      if (--batch->remaining == 0) {
        if (batch->done) batch->done(batch->results);
        batch->pending->Finish(std::move(batch->results));
      }
    };
    const Quorum fitted = FitToRing(q, client->table().ring_nodes());
    auto on_ack = [finish](Result<Ack> a) { finish(IoResult{a.ok() ? Status::Ok() : a.status(), {}, false}); };
    switch (op->kind) {
      case IoOp::kGet:
        client->Get(op->id, fitted, [finish](Result<Record> r) {
          IoResult out;
          if (!r.ok()) {
            out.status = r.status();
          } else if (r->meta.tombstone()) {
            out.status = Status::NotFound();
          } else {
            out.is_map = IsMapRecord(r->meta);
            out.value = std::move(r->value);
          }
          finish(std::move(out));
        });
        break;
      // The client takes values by copy here: a retry needs them again.
      case IoOp::kPut: client->Put(op->id, op->value, fitted, on_ack); break;
      case IoOp::kMerge: client->Merge(op->id, op->entries, fitted, on_ack); break;
      case IoOp::kDel: client->Del(op->id, fitted, on_ack); break;
    }
  }
};

ClusterObjectIo::ClusterObjectIo(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClusterObjectIo::~ClusterObjectIo() { Stop(); }

Result<std::unique_ptr<ClusterObjectIo>> ClusterObjectIo::Connect(const std::vector<std::string>& seeds,
                                                                   ClusterIoOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ClusterClientOptions cco;
  cco.connection.cluster_id = options.cluster_id;
  cco.connection.request_timeout = options.request_timeout;
  cco.connection.connect_timeout = std::chrono::seconds(3);
  cco.connections_per_node = options.connections_per_node;
  Impl* raw = impl.get();
  impl->client = std::make_unique<ClusterClient>(cco, impl->clock, impl->random,
                                                 [raw] {
    AsioTransportOptions t;
    t.tls = raw->options.tls;
    return std::make_unique<AsioTransport>(raw->io, t);
  });
  std::optional<Status> connected;
  impl->client->Connect(seeds, [&](Status s) { connected = s; });
  while (!connected) impl->io.run_one();
  if (!connected->ok()) return *connected;
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<ClusterObjectIo>(new ClusterObjectIo(std::move(impl)));
}

std::shared_ptr<PendingIo> ClusterObjectIo::Start(std::vector<IoOp> ops, const Quorum& q, Done done) {
  auto batch = std::make_shared<Impl::Batch>();
  batch->results.resize(ops.size());
  batch->remaining = ops.size();
  batch->done = std::move(done);
  batch->pending = std::make_shared<PendingIo>();
  auto pending = batch->pending;
  bool stopped;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    stopped = impl_->stopped;
  }
  if (ops.empty() || stopped) {
    for (auto& r : batch->results) r.status = Status::ShuttingDown("gateway stopping");
    if (batch->done) batch->done(batch->results);
    pending->Finish(std::move(batch->results));
    return pending;
  }
  auto shared = std::make_shared<std::vector<IoOp>>(std::move(ops));
  Impl* impl = impl_.get();
  boost::asio::post(impl->io, [impl, batch, shared, q] {
    const Clock::Duration deadline = impl->clock.Now() + impl->options.io_timeout;
    for (size_t i = 0; i < shared->size(); ++i) {
      impl->Start(batch, i, std::make_shared<IoOp>(std::move((*shared)[i])), q, deadline, std::chrono::milliseconds(100));
    }
  });
  return pending;
}

size_t ClusterObjectIo::RingNodes() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return 0;
  }
  std::promise<size_t> p;
  auto f = p.get_future();
  Impl* impl = impl_.get();
  boost::asio::post(impl->io, [impl, &p] { p.set_value(impl->client->table().ring_nodes()); });
  return f.get();
}

Status ClusterObjectIo::Capacity(uint64_t* total_bytes, uint64_t* free_bytes) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return Status::ShuttingDown("gateway stopping");
  }
  std::promise<Result<std::vector<DiskUsage>>> p;
  auto f = p.get_future();
  Impl* impl = impl_.get();
  boost::asio::post(impl->io, [impl, &p] {
    impl->client->DiskUsages([&p](Result<std::vector<DiskUsage>> r) { p.set_value(std::move(r)); });
  });
  auto disks = f.get();
  if (!disks.ok()) return disks.status();
  *total_bytes = *free_bytes = 0;
  for (const DiskUsage& d : *disks) {
    *total_bytes += d.capacity_bytes;
    *free_bytes += d.free_bytes;
  }
  return Status::Ok();
}

void ClusterObjectIo::Watch(const ObjectId& channel, std::function<void(std::string)> handler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->stopped) return;
  Impl* impl = impl_.get();
  boost::asio::post(impl->io, [impl, channel, handler = std::move(handler)]() mutable {
    if (impl->client) impl->client->Watch(channel, std::move(handler));
  });
}

void ClusterObjectIo::Notify(const ObjectId& channel, std::string payload) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->stopped) return;
  Impl* impl = impl_.get();
  boost::asio::post(impl->io, [impl, channel, payload = std::move(payload)]() mutable {
    if (impl->client) impl->client->Notify(channel, std::move(payload));
  });
}

void ClusterObjectIo::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  Impl* impl = impl_.get();
  // The client is destroyed on its own thread, then the loop ends.
  boost::asio::post(impl->io, [impl] {
    impl->client.reset();
    impl->work.reset();
    impl->io.stop();
  });
  if (impl->thread.joinable()) impl->thread.join();
}

}  // namespace ringstore::fs
