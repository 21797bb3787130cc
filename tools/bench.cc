#include "tools/bench.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include <boost/asio/post.hpp>

#include "tools/session.h"

namespace ringstore {

void AddBenchOptions(CLI::App& cmd, BenchOptions& o) {
  cmd.add_option("--op", o.op, "put, get, fill (write each key once) or check (read each key once and verify it)")
      ->check(CLI::IsMember({"put", "get", "fill", "check"}))
      ->capture_default_str();
  cmd.add_option("--size", o.value_bytes, "Value size in bytes")
      ->check(CLI::Range(size_t{8}, kMaxValueBytes))
      ->capture_default_str();
  cmd.add_option("--keys", o.keys, "Distinct keys")->check(CLI::Range(size_t{1}, size_t{100000000}))->capture_default_str();
  cmd.add_option("--duration", o.duration_s, "Seconds to run (put and get)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  cmd.add_option("--in-flight", o.in_flight, "Requests outstanding in total")
      ->check(CLI::Range(size_t{1}, size_t{65536}))
      ->capture_default_str();
  cmd.add_option("--connections", o.connections, "TCP connections to each node")
      ->check(CLI::Range(size_t{1}, size_t{256}))
      ->capture_default_str();
  cmd.add_option("--bench-namespace", o.ns, "Namespace of the benchmark keys")->capture_default_str();
  cmd.add_flag("!--no-prefill", o.prefill, "For get: do not write the keys first");
}

namespace {

class Driver {
 public:
  Driver(Session& s, const BenchOptions& o, Quorum q, bool is_put, Clock::Duration run_for)
      : s_(s), o_(o), q_(q), is_put_(is_put), value_(o.value_bytes, 'x') {
    for (size_t i = 0; i < value_.size(); ++i) value_[i] = static_cast<char>('a' + (i * 7) % 26);
    end_ = s.clock().Now() + run_for;
    ids_.reserve(o.keys);
    for (size_t k = 0; k < o.keys; ++k) ids_.push_back(ObjectKey::Of(o.ns, "key-" + std::to_string(k)));
    latencies_ns_.reserve(1 << 20);
  }

  // Runs until the time is up, or, with every_key, until every key was done once.
  void Run(bool every_key) {
    every_key_ = every_key;
    start_ = s_.clock().Now();
    for (size_t i = 0; i < o_.in_flight; ++i) Issue();
    while (outstanding_ > 0) s_.io().run_one();
    elapsed_ = s_.clock().Now() - start_;
  }

  void Report(const char* label) const {
    std::vector<int64_t> lat = latencies_ns_;
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))] / 1000.0;
    };
    const double secs = std::chrono::duration<double>(elapsed_).count();
    const double ops = static_cast<double>(done_);
    std::printf("RESULT op=%s size=%zu in_flight=%zu connections=%zu n=%u w=%u r=%u ops=%llu secs=%.3f "
                "ops_per_s=%.0f mb_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%llu\n",
                label, o_.value_bytes, o_.in_flight, o_.connections, q_.n, q_.w, q_.r,
                static_cast<unsigned long long>(done_), secs, ops / secs, ops * o_.value_bytes / secs / 1e6, pct(0.50),
                pct(0.99), static_cast<unsigned long long>(errors_));
    if (errors_ > 0) {
      std::fprintf(stderr, "ringstore bench: %llu errors, first: %s\n", static_cast<unsigned long long>(errors_),
                   first_error_.ToString().c_str());
    }
  }
  uint64_t errors() const { return errors_; }

 private:
  // The value of key k: the pattern with k in its first 8 bytes, so a reader can check it.
  std::string ValueOf(size_t k) const {
    std::string v = value_;
    std::memcpy(v.data(), &k, sizeof k);
    return v;
  }
  // Whether v is ValueOf(k), without building it (a 1 MiB copy per read would be the
  // benchmark's own cost, not the cluster's).
  bool IsValueOf(size_t k, const std::string& v) const {
    if (v.size() != value_.size()) return false;
    const size_t head = std::min(sizeof k, v.size());
    return std::memcmp(v.data(), &k, head) == 0 &&
           std::memcmp(v.data() + head, value_.data() + head, v.size() - head) == 0;
  }

  void Issue() {
    if (every_key_ ? next_key_ >= o_.keys : s_.clock().Now() >= end_) return;
    const size_t k = every_key_ ? next_key_++ : static_cast<size_t>(rng_.Uniform(o_.keys));
    const auto t0 = s_.clock().Now();
    ++outstanding_;
    auto finish = [this, t0](const Status& st) {
      --outstanding_;
      if (st.ok()) {
        ++done_;
        latencies_ns_.push_back((s_.clock().Now() - t0).count());
      } else if (errors_++ == 0) {
        first_error_ = st;
      }
      if (st.ok()) return Issue();
      // A failure may have come back at once, inside Issue: go on from the loop instead of
      // recursing deeper.
      boost::asio::post(s_.io(), [this] { Issue(); });
    };
    if (is_put_) {
      s_.cluster().Put(ids_[k], ValueOf(k), q_, [finish](Result<Ack> r) { finish(r.ok() ? Status::Ok() : r.status()); });
    } else {
      s_.cluster().Get(ids_[k], q_, [this, k, finish](Result<Record> r) {
        if (r.ok() && !IsValueOf(k, r->value)) {
          return finish(Status::Corruption("key-" + std::to_string(k) + " came back with other bytes"));
        }
        finish(r.ok() ? Status::Ok() : r.status());
      });
    }
  }

  Session& s_;
  const BenchOptions& o_;
  const Quorum q_;
  const bool is_put_;
  std::string value_;
  Clock::Duration start_{}, end_{}, elapsed_{};
  SeededRandom rng_{42};
  bool every_key_ = false;
  size_t next_key_ = 0, outstanding_ = 0;
  uint64_t done_ = 0, errors_ = 0;
  Status first_error_;
  std::vector<int64_t> latencies_ns_;
  std::vector<ObjectKey> ids_;
};

}  // namespace

int RunBench(const std::vector<std::string>& seeds, const ClientOptions& client_options, Quorum quorum,
             const BenchOptions& o, std::shared_ptr<TlsContext> tls) {
  ClusterClientOptions cco;
  cco.connections_per_node = static_cast<uint32_t>(o.connections);
  Session session(client_options, cco, std::move(tls));
  if (Status s = session.ConnectCluster(seeds); !s.ok()) {
    std::cerr << "ringstore bench: cluster unreachable: " << s.ToString() << "\n";
    return 3;
  }
  const Quorum q = FitQuorum(quorum, session.cluster().table().ring_nodes(), /*warn=*/false);
  const bool is_put = o.op == "put" || o.op == "fill";
  const bool every_key = o.op == "fill" || o.op == "check";
  if (o.op == "get" && o.prefill) {
    std::fprintf(stderr, "ringstore bench: writing %zu keys of %zu bytes first\n", o.keys, o.value_bytes);
    Driver fill(session, o, q, /*is_put=*/true, std::chrono::hours(24));
    fill.Run(/*every_key=*/true);
    if (fill.errors() > 0) {
      fill.Report("prefill");
      return 4;
    }
  }
  if (every_key) {
    std::fprintf(stderr, "ringstore bench: %s %zu keys, %zu in flight, N=%u W=%u R=%u\n", o.op.c_str(), o.keys,
                 o.in_flight, q.n, q.w, q.r);
  } else {
    std::fprintf(stderr, "ringstore bench: %s for %.1f s, %zu in flight, %zu connection(s) per node, N=%u W=%u R=%u\n",
                 o.op.c_str(), o.duration_s, o.in_flight, o.connections, q.n, q.w, q.r);
  }
  Driver d(session, o, q, is_put,
           std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(o.duration_s)));
  d.Run(every_key);
  d.Report(o.op.c_str());
  return d.errors() > 0 ? 4 : 0;
}

}  // namespace ringstore
