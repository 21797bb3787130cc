#include "tools/bench.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

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
  cmd.add_option("--rate", o.rate,
                 "Requests per second, sent on a fixed schedule (open loop; --in-flight caps what is outstanding, "
                 "and a request's latency counts from when it was due). 0: closed loop, --in-flight always "
                 "outstanding")
      ->check([](const std::string& s) -> std::string {
        const double v = std::strtod(s.c_str(), nullptr);
        return v == 0 || (v >= 0.01 && v <= 1e7) ? "" : "must be 0 or from 0.01 to 10000000";
      })
      ->capture_default_str();
  cmd.add_option("--connections", o.connections, "TCP connections to each node")
      ->check(CLI::Range(size_t{1}, size_t{256}))
      ->capture_default_str();
  cmd.add_option("--bench-namespace", o.ns, "Namespace of the benchmark keys")->capture_default_str();
  cmd.add_option("--latency-log", o.latency_log,
                 "Write one line per request that succeeded to this file: seconds from the start when it was "
                 "sent (due, in open loop) and its latency in microseconds");
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

  // Runs until the time is up, or, with every_key, until every key was done once, or until
  // Stop. Returns with nothing of this Driver's left queued on the io_context.
  void Run(bool every_key) {
    every_key_ = every_key;
    start_ = s_.clock().Now();
    if (!o_.latency_log.empty()) {
      // So that a script can line the log up with its own clock (bench/rebalance_bench.sh).
      std::fprintf(stderr, "ringstore bench: latency log times count from unix time %.6f\n",
                   static_cast<double>(s_.clock().WallMicros()) / 1e6);
    }
    if (open_loop()) {
      next_due_ = start_;
      Pace();
    } else {
      for (size_t i = 0; i < o_.in_flight; ++i) Issue();
    }
    while (outstanding_ > 0 || pacing_ || posted_ > 0) s_.io().run_one();
    elapsed_ = s_.clock().Now() - start_;
  }

  // Ends the run early, as the end of the time would: no new requests, and the ones due or
  // in flight finish (bench/rebalance_bench.sh measures a window it cannot know in advance
  // this way, with a signal).
  void Stop() {
    stopped_ = true;
    if (pacing_) s_.clock().Cancel(pace_timer_);  // a slow --rate need not be waited out
    pacing_ = false;
    SendDue();
  }

  void Report(const char* label) const {
    std::vector<int64_t> lat = latencies_ns_;
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))] / 1000.0;
    };
    const double secs = std::chrono::duration<double>(elapsed_).count();
    const double ops = static_cast<double>(done_);
    std::printf("RESULT op=%s size=%zu in_flight=%zu connections=%zu rate=%.0f n=%u w=%u r=%u ops=%llu secs=%.3f "
                "ops_per_s=%.0f mb_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%llu\n",
                label, o_.value_bytes, o_.in_flight, o_.connections, open_loop() ? o_.rate : 0.0, q_.n, q_.w, q_.r,
                static_cast<unsigned long long>(done_), secs, ops / secs, ops * o_.value_bytes / secs / 1e6, pct(0.50),
                pct(0.99), static_cast<unsigned long long>(errors_));
    if (errors_ > 0) {
      std::fprintf(stderr, "ringstore bench: %llu errors, first: %s\n", static_cast<unsigned long long>(errors_),
                   first_error_.ToString().c_str());
    }
  }
  uint64_t errors() const { return errors_; }

  // --latency-log: false if the file could not be written.
  bool WriteLatencyLog() const {
    FILE* f = std::fopen(o_.latency_log.c_str(), "w");
    if (f == nullptr) return false;
    for (size_t i = 0; i < latencies_ns_.size(); ++i) {
      std::fprintf(f, "%.6f %.1f\n", sent_ns_[i] / 1e9, latencies_ns_[i] / 1e3);
    }
    return std::fclose(f) == 0;
  }

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

  bool open_loop() const { return o_.rate > 0 && !every_key_; }

  // Closed loop: the next request, now.
  void Issue() {
    if (stopped_ || (every_key_ ? next_key_ >= o_.keys : s_.clock().Now() >= end_)) return;
    Send(s_.clock().Now());
  }

  // Open loop: queues the requests that are due (one every 1/rate s), sends what --in-flight
  // allows, and sleeps until the next is due. A request that waits for a slot keeps its due
  // time, so a slow cluster shows in the latencies rather than in fewer requests.
  void Pace() {
    pacing_ = false;
    const auto now = s_.clock().Now();
    const auto interval = std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(1.0 / o_.rate));
    while (!stopped_ && next_due_ <= now && next_due_ < end_) {
      due_.push_back(next_due_);
      next_due_ += interval;
    }
    SendDue();
    if (stopped_ || next_due_ >= end_) return;
    pacing_ = true;
    pace_timer_ = s_.clock().Schedule(next_due_ - now, [this] { Pace(); });
  }
  void SendDue() {
    while (!due_.empty() && outstanding_ < o_.in_flight) {
      const auto t0 = due_.front();
      due_.pop_front();
      Send(t0);
    }
  }
  // What comes after a request finished: another (closed loop) or the next due one.
  void Next() { open_loop() ? SendDue() : Issue(); }

  // Sends one request; its latency counts from t0.
  void Send(Clock::Duration t0) {
    const size_t k = every_key_ ? next_key_++ : static_cast<size_t>(rng_.Uniform(o_.keys));
    ++outstanding_;
    auto finish = [this, t0](const Status& st) {
      --outstanding_;
      if (st.ok()) {
        ++done_;
        latencies_ns_.push_back((s_.clock().Now() - t0).count());
        if (!o_.latency_log.empty()) sent_ns_.push_back((t0 - start_).count());
      } else if (errors_++ == 0) {
        first_error_ = st;
      }
      if (st.ok()) return Next();
      // A failure may have come back at once, inside Send: go on from the loop instead of
      // recursing deeper (Run waits for it).
      ++posted_;
      boost::asio::post(s_.io(), [this] {
        --posted_;
        Next();
      });
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
  bool stopped_ = false;  // by Stop
  bool pacing_ = false;   // open loop: the timer for the next due request is set
  Clock::TimerId pace_timer_ = 0;
  Clock::Duration next_due_{};
  std::deque<Clock::Duration> due_;  // open loop: due, waiting for an --in-flight slot
  size_t next_key_ = 0, outstanding_ = 0;
  size_t posted_ = 0;  // Next calls posted after a failure, not yet run
  uint64_t done_ = 0, errors_ = 0;
  Status first_error_;
  std::vector<int64_t> latencies_ns_;
  std::vector<int64_t> sent_ns_;  // with --latency-log: when each of latencies_ns_ was sent
  std::vector<ObjectKey> ids_;
};

}  // namespace

int RunBench(const std::vector<std::string>& seeds, const ClientOptions& client_options, Quorum quorum,
             const BenchOptions& o, std::shared_ptr<TlsContext> tls) {
  ClusterClientOptions cco;
  cco.connections_per_node = static_cast<uint32_t>(o.connections);
  // A SIGINT or SIGTERM stops the Driver that runs (and skips the rest). The flag and the
  // pointer outlive the session, whose destructor may still run a queued signal completion.
  bool interrupted = false;
  Driver* running = nullptr;
  Session session(client_options, cco, std::move(tls));
  boost::asio::signal_set signals(session.io(), SIGINT, SIGTERM);
  signals.async_wait([&interrupted, &running](const boost::system::error_code& ec, int) {
    if (ec) return;
    interrupted = true;
    if (running != nullptr) running->Stop();
  });
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
    running = &fill;
    fill.Run(/*every_key=*/true);
    running = nullptr;
    if (interrupted) {
      std::fprintf(stderr, "ringstore bench: interrupted while writing the keys\n");
      return 4;
    }
    if (fill.errors() > 0) {
      fill.Report("prefill");
      return 4;
    }
  }
  if (every_key) {
    std::fprintf(stderr, "ringstore bench: %s %zu keys, %zu in flight, N=%u W=%u R=%u\n", o.op.c_str(), o.keys,
                 o.in_flight, q.n, q.w, q.r);
  } else {
    char pace[64] = "";
    if (o.rate > 0) std::snprintf(pace, sizeof pace, "at %g/s, at most ", o.rate);
    std::fprintf(stderr, "ringstore bench: %s for %.1f s, %s%zu in flight, %zu connection(s) per node, N=%u W=%u R=%u\n",
                 o.op.c_str(), o.duration_s, pace, o.in_flight, o.connections, q.n, q.w, q.r);
  }
  Driver d(session, o, q, is_put,
           std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(o.duration_s)));
  if (interrupted) {
    std::fprintf(stderr, "ringstore bench: interrupted before the run\n");
    return 4;
  }
  running = &d;
  d.Run(every_key);
  running = nullptr;
  d.Report(o.op.c_str());
  if (!o.latency_log.empty() && !d.WriteLatencyLog()) {
    std::cerr << "ringstore bench: could not write " << o.latency_log << ": " << std::strerror(errno) << "\n";
    return 4;
  }
  return d.errors() > 0 ? 4 : 0;
}

}  // namespace ringstore
