// A seeded random-mutation fuzz test of NbdSession (100,000 cases): mutated, truncated and
// spliced handshake and request streams and random bytes, fed in random pieces with hooks
// that answer at once or later. The session must never crash, hang or break an invariant.
#include "tests/blockgateway/nbd_reply_oracle.h"
#include "tests/blockgateway/nbd_test_support.h"

namespace ringstore::block::nbd {
namespace {

using namespace ringstore::block::nbd::testing;

// ---- fuzz ----------------------------------------------------------------------------

// One fuzz case: a session fed a (mutated) stream, with hooks answering at random.
class FuzzCase {
 public:
  explicit FuzzCase(uint64_t seed) : rng_(seed) {}

  // Returns an empty string when every invariant held, else what broke.
  std::string Run() {
    if (Chance(4)) {
      limits_.max_in_flight = 1 + static_cast<uint32_t>(rng_.Uniform(4));
      limits_.max_in_flight_bytes = 1 + rng_.Uniform(8192);
      limits_.max_output_bytes = 1 + rng_.Uniform(256);
    }
    defer_lookup_ = Chance(3);
    defer_requests_ = rng_.Uniform(3);  // 0 never, 1 sometimes, 2 always
    collect_often_ = !Chance(4);
    session_ = std::make_unique<NbdSession>(MakeHooks(), limits_);
    session_->Start();
    Collect();
    if (out_ != Greeting()) return Fail("output does not start with the greeting");

    input_ = MakeInput();
    size_t i = 0;
    while (i < input_.size() && failure_.empty()) {
      size_t n;
      switch (rng_.Uniform(4)) {
        case 0: n = 1; break;
        case 1: n = 1 + rng_.Uniform(8); break;
        case 2: n = 1 + rng_.Uniform(64); break;
        default: n = input_.size(); break;
      }
      n = std::min(n, input_.size() - i);
      fed_ += n;
      FeedChecked(input_.data() + i, n);
      i += n;
      Mingle();
    }
    // Wind down: answer everything until nothing is left (every answer may let buffered input
    // through, which is finite).
    for (int round = 0; round < 100000 && failure_.empty(); ++round) {
      Collect();
      if (lookups_.empty() && pending_.empty()) break;
      while (!lookups_.empty()) AnswerLookup(rng_.Uniform(lookups_.size()));
      while (!pending_.empty()) AnswerRequest(rng_.Uniform(pending_.size()));
    }
    if (!failure_.empty()) return failure_;
    if (!lookups_.empty() || !pending_.empty()) return Fail("wind-down did not finish");
    if (session_->in_flight() != 0) return Fail("in_flight not zero with nothing outstanding");
    CheckOutputFraming();
    if (!failure_.empty()) return failure_;

    // Once done, nothing more comes out, whatever is fed.
    if (session_->Done()) {
      const size_t before = out_.size();
      const size_t calls = hook_calls_;
      const std::string more = MakeValidStream().substr(0, 200) + input_.substr(0, 100);
      session_->Feed(more.data(), more.size());
      session_->Reply(rng_.Next(), kOk, "zz");
      Collect();
      if (out_.size() != before) return Fail("output after Done");
      if (hook_calls_ != calls) return Fail("hook called after Done");
      if (!session_->Done() || session_->WantsInput()) return Fail("Done did not stick");
    }
    // Sometimes leave a lookup unanswered and destroy the session first: a late answer is
    // ignored.
    if (Chance(20)) {
      Harmless();
    }
    return failure_;
  }

  const std::string& input() const { return input_; }
  // What the case reached, for the coverage check.
  bool transmitted() const { return transmitted_; }
  size_t requests() const { return requests_seen_; }
  size_t error_replies() const { return error_replies_; }
  size_t block_statuses() const { return block_statuses_; }
  bool closed() const { return session_ && !session_->close_reason().empty(); }
  bool disconnected() const { return session_ && session_->Done() && session_->close_reason().empty(); }

 private:
  struct Outstanding {
    uint64_t id;
    uint64_t handle;
    uint16_t type;
    uint32_t length;
    bool req_one;
  };

  bool Chance(uint64_t one_in) { return rng_.Uniform(one_in) == 0; }

  std::string Fail(const std::string& what) {
    if (failure_.empty()) failure_ = what;
    return failure_;
  }

  // Takes output until there is none: taking it makes room, which may let parsing go on.
  void Collect() {
    while (session_->HasOutput()) {
      for (auto& s : session_->TakeOutput()) out_ += s;
    }
  }

  void FeedChecked(const char* p, size_t n) {
    const bool was_done = session_->Done();
    if (was_done) Collect();  // what was sent before it ended
    const size_t before = out_.size();
    const size_t calls = hook_calls_;
    session_->Feed(p, n);
    if (was_done) {
      Collect();
      if (out_.size() != before) Fail("Feed after Done produced output");
      if (hook_calls_ != calls) Fail("Feed after Done called a hook");
      if (!session_->Done()) Fail("Done did not stick");
    }
    if (collect_often_ || Chance(3)) Collect();
    Check();
  }

  void Check() {
    if (session_->in_flight() != pending_.size()) Fail("in_flight disagrees with the hook's count");
    // Each hook call consumed a header at least.
    if (requests_seen_ * 28 + lookups_seen_ * 16 > fed_ + 64) Fail("more hook calls than the input allows");
    // Output beyond read payloads is bounded by the input.
    if (out_.size() > 18 + 8 * (fed_ + 64) + read_payload_bytes_) Fail("output out of proportion to input");
  }

  // Between feeds: answer some deferred lookups and requests, in random order.
  void Mingle() {
    while (!lookups_.empty() && Chance(2)) AnswerLookup(rng_.Uniform(lookups_.size()));
    while (!pending_.empty() && Chance(2)) AnswerRequest(rng_.Uniform(pending_.size()));
    if (Chance(2)) Collect();
    Check();
  }

  void AnswerLookup(size_t i) {
    auto fn = std::move(lookups_[i]);
    lookups_.erase(lookups_.begin() + static_cast<ptrdiff_t>(i));
    fn();
    Check();
  }

  void AnswerRequest(size_t i) {
    const Outstanding o = pending_[i];
    pending_.erase(pending_.begin() + static_cast<ptrdiff_t>(i));
    Answer(o);
    Check();
  }

  void Answer(const Outstanding& o) {
    uint32_t error = kOk;
    if (Chance(8)) error = Chance(2) ? kEio : kEnospc;
    std::string data;
    if (o.type == kCmdRead && error == kOk) data.assign(o.length, 'r');
    const bool done = session_->Done();
    if (!done) {
      // The session answers at once and in call order; remember it to check the framing.
      ours_.push_back({o.handle, error, data.size(), o.type, o.length, o.req_one});
      if (error == kOk) read_payload_bytes_ += data.size();
    }
    if (o.type == kCmdBlockStatus) {
      std::vector<Extent> extents;
      for (uint64_t n = 1 + rng_.Uniform(3); n > 0; --n) {
        extents.push_back(Extent{1 + static_cast<uint32_t>(rng_.Uniform(o.length + 100)), Chance(2) ? kStateHole | kStateZero : 0u});
      }
      return session_->ReplyExtents(o.id, error, std::move(extents));
    }
    session_->Reply(o.id, error, std::move(data));
  }

  NbdSession::Hooks MakeHooks() {
    NbdSession::Hooks h;
    h.lookup = [this](const std::string& name, std::function<void(Result<ExportInfo>)> done) {
      ++hook_calls_;
      ++lookups_seen_;
      if (session_ && session_->Done()) Fail("lookup after Done");
      auto answer = [this, name, done] {
        if (name == "disk") return done(ExportInfo{64u << 10, false});
        if (name == "ro") return done(ExportInfo{8u << 10, true});
        if (name == "odd") return done(ExportInfo{1001, false});
        if (name == "down") return done(Status::Unavailable("cluster down"));
        done(Status::NotFound("no such export"));
      };
      if (defer_lookup_) lookups_.push_back(answer);
      else answer();
    };
    h.list = [this](std::function<void(Result<std::vector<std::string>>)> done) {
      ++hook_calls_;
      ++lookups_seen_;
      if (Chance(5)) return done(Status::Unavailable("cluster down"));
      auto answer = [done] { done(std::vector<std::string>{"disk", "ro", "odd"}); };
      if (defer_lookup_) lookups_.push_back(answer);
      else answer();
    };
    h.request = [this](Request r) {
      ++hook_calls_;
      ++requests_seen_;
      CheckRequest(r);
      const Outstanding o{r.id, r.handle, r.type, r.length, r.req_one()};
      if (defer_requests_ == 2 || (defer_requests_ == 1 && Chance(2))) {
        pending_.push_back(o);
      } else {
        Answer(o);
      }
    };
    return h;
  }

  // Everything handed to the hook was validated.
  void CheckRequest(const Request& r) {
    if (!session_->transmitting()) return void(Fail("request outside transmission"));
    if (session_->Done()) return void(Fail("request after Done"));
    ExportInfo e;
    const std::string& name = session_->export_name();
    if (name == "disk") e = {64u << 10, false};
    else if (name == "ro") e = {8u << 10, true};
    else if (name == "odd") e = {1001, false};
    else return void(Fail("request on unknown export '" + name + "'"));
    const uint16_t allowed = kCmdFlagFua | kCmdFlagNoHole | (r.type == kCmdBlockStatus ? kCmdFlagReqOne : 0);
    if ((r.flags & ~allowed) != 0) return void(Fail("unvalidated flags"));
    switch (r.type) {
      case kCmdWrite:
        if (r.payload.size() != r.length) return void(Fail("payload size differs from length"));
        [[fallthrough]];
      case kCmdTrim:
      case kCmdWriteZeroes:
        if (e.read_only) return void(Fail("write on a read-only export"));
        [[fallthrough]];
      case kCmdBlockStatus:
        if (r.type == kCmdBlockStatus && (!session_->structured() || !session_->allocation_context())) {
          return void(Fail("block status without a context"));
        }
        if (r.type == kCmdBlockStatus && r.length == 0) return void(Fail("empty block status"));
        [[fallthrough]];
      case kCmdRead:
        if (r.offset + r.length < r.offset || r.offset + r.length > e.size) return void(Fail("request out of range"));
        if (r.length > kMaxPayload) return void(Fail("request over max payload"));
        break;
      case kCmdFlush:
        break;
      default:
        return void(Fail("unvalidated command " + std::to_string(r.type)));
    }
    if (r.type != kCmdWrite && !r.payload.empty()) Fail("payload on a non-write");
    if (session_->in_flight() > limits_.max_in_flight) Fail("more requests in flight than the limit");
  }

  // The framing of everything the session sent (nbd_reply_oracle.h).
  void CheckOutputFraming() {
    const ReplyStream r = CheckReplyStream(out_, input_, session_->structured(), ours_);
    transmitted_ = transmitted_ || r.transmitted;
    error_replies_ += r.error_replies;
    block_statuses_ += r.block_statuses;
    if (!r.failure.empty()) Fail(r.failure);
  }

  void Harmless() {
    // A session with a lookup pending is destroyed; the late answer must do nothing.
    std::vector<std::function<void()>> late;
    NbdSession::Hooks h;
    h.lookup = [&late](const std::string&, std::function<void(Result<ExportInfo>)> done) {
      late.push_back([done] { done(ExportInfo{4096, false}); });
    };
    h.list = [](auto) {};
    h.request = [](Request) {};
    auto s = std::make_unique<NbdSession>(std::move(h));
    s->Start();
    const std::string stream = ClientFlags(1) + Opt(kOptGo, InfoData("x"));
    s->Feed(stream.data(), stream.size());
    s.reset();
    for (auto& fn : late) fn();
  }

  // ---- input generation ----

  std::string RandomName() {
    static const char* kNames[] = {"disk", "ro", "odd", "down", "nope", ""};
    return kNames[rng_.Uniform(6)];
  }

  // An option before the final GO or EXPORT_NAME; a few of them end the session.
  std::string RandomOption() {
    const uint64_t k = rng_.Uniform(24);
    if (k < 8) {
      std::vector<uint16_t> infos;
      for (uint64_t i = rng_.Uniform(4); i > 0; --i) infos.push_back(static_cast<uint16_t>(rng_.Uniform(5)));
      return Opt(Chance(2) ? kOptGo : kOptInfo, InfoData(RandomName(), infos));
    }
    if (k < 11) return Opt(kOptList);
    if (k < 12) return Opt(kOptList, "junk");
    if (k < 15) return Opt(static_cast<uint32_t>(rng_.Uniform(12)), std::string(rng_.Uniform(20), 'o'));
    if (k < 16) return Opt(kOptAbort);
    if (k < 18) {
      // Oversized: just over the limit, rarely (it costs 16 KiB of input).
      if (Chance(40)) return Opt(Chance(2) ? kOptInfo : kOptExportName, std::string(kMaxOptionBytes + 1, 'b'));
      return Opt(kOptStructuredReply);
    }
    if (k < 19) return Opt(kOptGo, RandomBytes(rng_.Uniform(12)));  // malformed
    if (k < 20) return Opt(kOptExportName, RandomName());
    if (k < 22) return Opt(kOptSetMetaContext, MetaData(RandomName(), {Chance(2) ? kAllocationContext : "base:"}));
    if (k < 23) return Opt(kOptListMetaContext, MetaData(RandomName(), {}));
    return Opt(Chance(2) ? kOptSetMetaContext : kOptListMetaContext, RandomBytes(rng_.Uniform(24)));  // malformed
  }

  std::string RandomBytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng_.Next());
    return s;
  }

  std::string RandomRequest() {
    const uint64_t handle = rng_.Uniform(8);  // duplicates happen
    const uint64_t size = 64u << 10;
    auto off = [&] { return Chance(8) ? rng_.Next() : rng_.Uniform(size + 100); };
    auto len = [&] { return static_cast<uint32_t>(Chance(16) ? rng_.Next() : rng_.Uniform(3000)); };
    uint16_t flags = 0;
    if (Chance(4)) flags |= kCmdFlagFua;
    if (Chance(10)) flags |= kCmdFlagNoHole;
    if (Chance(20)) flags |= static_cast<uint16_t>(1u << rng_.Uniform(16));
    switch (rng_.Uniform(13)) {
      case 0:
      case 1:
      case 2: return Req(kCmdRead, handle, off(), len(), flags);
      case 11: return Req(kCmdBlockStatus, handle, off(), len(), Chance(2) ? flags | kCmdFlagReqOne : flags);
      case 3:
      case 4:
      case 5: {
        const std::string payload(rng_.Uniform(600), 'w');
        if (Chance(30)) return Req(kCmdWrite, handle, off(), kMaxPayload + 1 + static_cast<uint32_t>(rng_.Uniform(3)), flags);
        return Req(kCmdWrite, handle, off(), static_cast<uint32_t>(payload.size()), flags, payload);
      }
      case 6: return Req(kCmdFlush, handle, 0, 0, flags);
      case 7: return Req(kCmdTrim, handle, off(), len(), flags);
      case 8: return Req(kCmdWriteZeroes, handle, off(), len(), flags);
      case 9: return Chance(4) ? Req(kCmdDisc, handle, 0, 0) : Req(kCmdFlush, handle, 0, 0);
      case 10: return Req(static_cast<uint16_t>(rng_.Uniform(12)), handle, off(), len(), flags);
      default: return Req(kCmdRead, handle, rng_.Uniform(size), 1 + static_cast<uint32_t>(rng_.Uniform(64)));
    }
  }

  std::string MakeValidStream() {
    std::string s = ClientFlags(static_cast<uint32_t>(rng_.Uniform(4)));
    for (uint64_t i = rng_.Uniform(4); i > 0; --i) s += RandomOption();
    static const char* kGood[] = {"disk", "ro", "odd"};
    const std::string name = kGood[rng_.Uniform(3)];
    if (Chance(3)) s += Opt(kOptStructuredReply) + Opt(kOptSetMetaContext, MetaData(name, {kAllocationContext}));
    s += Chance(3) ? Opt(kOptExportName, name) : Opt(kOptGo, InfoData(name));
    handshake_bytes_ = s.size();
    for (uint64_t i = 1 + rng_.Uniform(16); i > 0; --i) s += RandomRequest();
    return s;
  }

  std::string MakeInput() {
    switch (rng_.Uniform(8)) {
      case 0: {  // pure random bytes
        std::string s(rng_.Uniform(200), '\0');
        for (auto& c : s) c = static_cast<char>(rng_.Next());
        return s;
      }
      case 1: {  // a valid prefix, then random bytes
        std::string s = MakeValidStream();
        s.resize(rng_.Uniform(s.size() + 1));
        for (uint64_t i = rng_.Uniform(200); i > 0; --i) s += static_cast<char>(rng_.Next());
        return s;
      }
      case 2:  // valid as is
        return MakeValidStream();
      case 3:
      case 4: {  // mutated after the handshake
        std::string s = MakeValidStream();
        const size_t keep = std::min(handshake_bytes_, s.size());
        std::string tail = s.substr(keep);
        for (uint64_t m = 1 + rng_.Uniform(3); m > 0; --m) Mutate(tail);
        return s.substr(0, keep) + tail;
      }
      default: {  // mutated anywhere
        std::string s = MakeValidStream();
        for (uint64_t m = 1 + rng_.Uniform(3); m > 0; --m) Mutate(s);
        return s;
      }
    }
  }

  void Mutate(std::string& s) {
    if (s.empty()) s = MakeValidStream();
    switch (rng_.Uniform(8)) {
      case 0:  // flip bits
        for (uint64_t i = 1 + rng_.Uniform(4); i > 0; --i) s[rng_.Uniform(s.size())] ^= static_cast<char>(1u << rng_.Uniform(8));
        break;
      case 1:  // random byte
        s[rng_.Uniform(s.size())] = static_cast<char>(rng_.Next());
        break;
      case 2:  // truncate
        s.resize(rng_.Uniform(s.size() + 1));
        break;
      case 3: {  // splice in a piece of another stream
        const std::string other = MakeValidStream();
        const size_t from = rng_.Uniform(other.size()), n = rng_.Uniform(other.size() - from + 1);
        s.insert(rng_.Uniform(s.size() + 1), other, from, n);
        break;
      }
      case 4: {  // cut a piece out
        const size_t at = rng_.Uniform(s.size()), n = rng_.Uniform(std::min<size_t>(64, s.size() - at) + 1);
        s.erase(at, n);
        break;
      }
      case 5: {  // duplicate a piece
        const size_t at = rng_.Uniform(s.size()), n = rng_.Uniform(std::min<size_t>(64, s.size() - at) + 1);
        s.insert(at, s.substr(at, n));
        break;
      }
      case 6: {  // an interesting 32-bit value somewhere (lengths, flags)
        static const uint32_t kValues[] = {0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu, kMaxPayload, kMaxPayload + 1,
                                           kMaxOptionBytes, kMaxOptionBytes + 1, kMaxNameBytes + 1, 28, 16};
        if (s.size() < 4) break;
        PutBE(s.data() + rng_.Uniform(s.size() - 3), kValues[rng_.Uniform(std::size(kValues))], 4);
        break;
      }
      default:  // insert random bytes
        for (uint64_t i = 1 + rng_.Uniform(8); i > 0; --i) s.insert(s.begin() + static_cast<ptrdiff_t>(rng_.Uniform(s.size() + 1)), static_cast<char>(rng_.Next()));
        break;
    }
  }

  SeededRandom rng_;
  std::unique_ptr<NbdSession> session_;
  bool defer_lookup_ = false;
  uint64_t defer_requests_ = 0;
  bool collect_often_ = true;
  bool transmitted_ = false;
  size_t error_replies_ = 0;
  size_t block_statuses_ = 0;
  size_t handshake_bytes_ = 0;  // of the last stream MakeValidStream made
  std::string input_;
  std::string out_;
  std::string failure_;
  size_t fed_ = 0;
  size_t hook_calls_ = 0, requests_seen_ = 0, lookups_seen_ = 0;
  uint64_t read_payload_bytes_ = 0;
  SessionLimits limits_;
  std::vector<std::function<void()>> lookups_;
  std::vector<Outstanding> pending_;
  std::vector<OurReply> ours_;
};

std::string Hex(const std::string& s, size_t max = 256) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    h += d[static_cast<uint8_t>(s[i]) >> 4];
    h += d[static_cast<uint8_t>(s[i]) & 15];
  }
  if (s.size() > max) h += "...";
  return h;
}

TEST(NbdFuzzTest, RandomMutationsNeverBreakTheSession) {
  constexpr uint64_t kSeed = 0x5eed'0b10c'6a7e;
  constexpr uint64_t kCases = 100000;
  const auto start = std::chrono::steady_clock::now();
  uint64_t transmitted = 0, requests = 0, errors = 0, closed = 0, disconnected = 0, block_statuses = 0;
  for (uint64_t i = 0; i < kCases; ++i) {
    const uint64_t seed = kSeed + i;
    FuzzCase c(seed);
    const std::string failure = c.Run();
    ASSERT_TRUE(failure.empty()) << "fuzz case " << i << " (seed " << seed << ", base seed " << kSeed
                                 << ") failed: " << failure << "\ninput " << c.input().size()
                                 << " bytes: " << Hex(c.input());
    transmitted += c.transmitted();
    requests += c.requests();
    errors += c.error_replies();
    block_statuses += c.block_statuses();
    closed += c.closed();
    disconnected += c.disconnected();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("nbd fuzz: %llu cases in %.2f s (seed %llu): %llu reached transmission, %llu requests handed out, "
              "%llu error replies, %llu block status answers, %llu closed on bad input, %llu disconnected cleanly\n",
              static_cast<unsigned long long>(kCases), secs, static_cast<unsigned long long>(kSeed),
              static_cast<unsigned long long>(transmitted), static_cast<unsigned long long>(requests),
              static_cast<unsigned long long>(errors), static_cast<unsigned long long>(block_statuses),
              static_cast<unsigned long long>(closed),
              static_cast<unsigned long long>(disconnected));
  // The cases must reach every phase, or the invariants above prove little.
  EXPECT_GT(transmitted, kCases / 3);
  EXPECT_GT(requests, kCases / 2);
  EXPECT_GT(errors, kCases / 2);
  EXPECT_GT(block_statuses, kCases / 200);
  EXPECT_GT(closed, kCases / 10);
  EXPECT_GT(disconnected, kCases / 50);
}


}  // namespace
}  // namespace ringstore::block::nbd
