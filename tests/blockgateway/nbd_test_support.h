// Test support for NbdSession: client-side message builders (big-endian NBD options and
// requests) and Harness, a session with fake hooks plus a reader over everything it sent.
// Shared by the handshake, transmission and fuzz tests.
// Thread-safety: single-threaded.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <set>

#include "blockgateway/nbd_protocol.h"
#include "dht/endian.h"
#include "dht/random.h"

namespace ringstore::block::nbd::testing {

// ---- message builders (client side) --------------------------------------------------

inline std::string Be(uint64_t v, int n) {
  std::string s(static_cast<size_t>(n), '\0');
  PutBE(s.data(), v, n);
  return s;
}

inline std::string ClientFlags(uint32_t flags) { return Be(flags, 4); }

inline std::string Opt(uint32_t option, const std::string& data = {}) {
  return Be(kOptMagic, 8) + Be(option, 4) + Be(data.size(), 4) + data;
}

inline std::string InfoData(const std::string& name, const std::vector<uint16_t>& infos = {}) {
  std::string d = Be(name.size(), 4) + name + Be(infos.size(), 2);
  for (uint16_t i : infos) d += Be(i, 2);
  return d;
}

inline std::string Req(uint16_t type, uint64_t handle, uint64_t offset, uint32_t length, uint16_t flags = 0,
                const std::string& payload = {}) {
  return Be(kRequestMagic, 4) + Be(flags, 2) + Be(type, 2) + Be(handle, 8) + Be(offset, 8) + Be(length, 4) + payload;
}

inline std::string Write(uint64_t handle, uint64_t offset, const std::string& payload, uint16_t flags = 0) {
  return Req(kCmdWrite, handle, offset, static_cast<uint32_t>(payload.size()), flags, payload);
}

inline std::string Greeting() { return Be(kNbdMagic, 8) + Be(kOptMagic, 8) + Be(kFlagFixedNewstyle | kFlagNoZeroes, 2); }

constexpr uint16_t kRwFlags = kHasFlags | kSendFlush | kSendFua | kSendTrim | kSendWriteZeroes | kCanMultiConn;
constexpr uint16_t kRoFlags = kHasFlags | kReadOnly | kSendFlush | kSendFua | kCanMultiConn;

struct OptRep {
  uint64_t magic = 0;
  uint32_t option = 0, type = 0;
  std::string data;
};
struct SimpleRep {
  uint32_t magic = 0, error = 0;
  uint64_t handle = 0;
};
struct ChunkRep {
  uint32_t magic = 0;
  uint16_t flags = 0, type = 0;
  uint64_t handle = 0;
  std::string payload;
};

// A META_CONTEXT option's data: export name, then queries.
inline std::string MetaData(const std::string& name, const std::vector<std::string>& queries) {
  std::string d = Be(name.size(), 4) + name + Be(queries.size(), 4);
  for (const auto& q : queries) d += Be(q.size(), 4) + q;
  return d;
}

// ---- the harness: a session with fake hooks, and a reader over everything it sent ----

class Harness {
 public:
  explicit Harness(SessionLimits limits = {}) : session(MakeHooks(), limits) { session.Start(); }

  std::map<std::string, ExportInfo> exports{
      {"disk", {1u << 20, false}}, {"ro", {64u << 10, true}}, {"big", {1ull << 40, false}}};
  bool defer_lookups = false;
  bool auto_reply = false;  // answer requests inside the hook: reads with 'r' bytes, others OK
  Status list_error;        // LIST fails with this when not OK
  std::vector<std::string> looked_up;
  std::deque<std::function<void()>> pending_lookups;
  std::vector<Request> requests;  // every request handed to the hook, in order
  std::set<uint64_t> answered;    // their ids, once answered through Reply
  NbdSession session;

  void Feed(const std::string& bytes) {
    session.Feed(bytes.data(), bytes.size());
    Collect();
  }
  void FeedBytewise(const std::string& bytes) {
    for (char c : bytes) {
      session.Feed(&c, 1);
      Collect();
    }
  }
  // Answers the oldest unanswered request with this handle (0 if there is none, which the
  // session ignores).
  uint64_t IdOf(uint64_t handle) {
    for (const Request& r : requests) {
      if (r.handle == handle && answered.insert(r.id).second) return r.id;
    }
    return 0;
  }
  void Reply(uint64_t handle, uint32_t error, std::string data = {}) {
    session.Reply(IdOf(handle), error, std::move(data));
    Collect();
  }
  void ReplyExtents(uint64_t handle, uint32_t error, std::vector<Extent> extents) {
    session.ReplyExtents(IdOf(handle), error, std::move(extents));
    Collect();
  }
  void AnswerLookup() {
    ASSERT_FALSE(pending_lookups.empty());
    auto fn = std::move(pending_lookups.front());
    pending_lookups.pop_front();
    fn();
    Collect();
  }
  // Takes output until there is none: taking it makes room, which may let parsing go on.
  void Collect() {
    while (session.HasOutput()) {
      for (auto& s : session.TakeOutput()) out += s;
    }
  }

  size_t Unread() const { return out.size() - pos; }
  std::string Bytes(size_t n) {
    if (Unread() < n) {
      ADD_FAILURE() << "wanted " << n << " more output bytes, have " << Unread();
      pos = out.size();
      return std::string(std::min<size_t>(n, 64), '\xee');  // a garbled length may be huge
    }
    std::string s = out.substr(pos, n);
    pos += n;
    return s;
  }
  uint64_t Num(int n) {
    const std::string s = Bytes(static_cast<size_t>(n));
    return GetBE(s.data(), n);
  }
  OptRep ReadOpt() {
    OptRep r;
    r.magic = Num(8);
    r.option = static_cast<uint32_t>(Num(4));
    r.type = static_cast<uint32_t>(Num(4));
    r.data = Bytes(static_cast<size_t>(Num(4)));
    EXPECT_EQ(r.magic, kOptReplyMagic);
    return r;
  }
  SimpleRep ReadSimple() {
    SimpleRep r;
    r.magic = static_cast<uint32_t>(Num(4));
    r.error = static_cast<uint32_t>(Num(4));
    r.handle = Num(8);
    EXPECT_EQ(r.magic, kSimpleReplyMagic);
    return r;
  }
  ChunkRep ReadChunk() {
    ChunkRep r;
    r.magic = static_cast<uint32_t>(Num(4));
    r.flags = static_cast<uint16_t>(Num(2));
    r.type = static_cast<uint16_t>(Num(2));
    r.handle = Num(8);
    r.payload = Bytes(static_cast<size_t>(Num(4)));
    EXPECT_EQ(r.magic, kStructuredReplyMagic);
    return r;
  }
  void SkipGreeting() { EXPECT_EQ(Bytes(18), Greeting()); }

  // Greeting, client flags and a GO for name that succeeds; leaves the reader past the ACK.
  void Attach(const std::string& name, uint32_t client_flags = kClientFixedNewstyle | kClientNoZeroes) {
    Feed(ClientFlags(client_flags) + Opt(kOptGo, InfoData(name)));
    SkipGreeting();
    for (int i = 0; i < 3; ++i) ReadOpt();  // INFO_EXPORT, INFO_BLOCK_SIZE, ACK
    ASSERT_TRUE(session.transmitting());
    ASSERT_EQ(Unread(), 0u);
  }

  std::string out;
  size_t pos = 0;

 private:
  NbdSession::Hooks MakeHooks() {
    NbdSession::Hooks h;
    h.lookup = [this](const std::string& name, std::function<void(Result<ExportInfo>)> done) {
      looked_up.push_back(name);
      auto answer = [this, name, done] {
        auto it = exports.find(name);
        if (it == exports.end()) return done(Status::NotFound("no export " + name));
        done(it->second);
      };
      if (defer_lookups) pending_lookups.push_back(answer);
      else answer();
    };
    h.list = [this](std::function<void(Result<std::vector<std::string>>)> done) {
      if (!list_error.ok()) return done(list_error);
      std::vector<std::string> names;
      for (const auto& [n, e] : exports) names.push_back(n);
      done(names);
    };
    h.request = [this](Request r) {
      requests.push_back(r);
      if (!auto_reply) return;
      answered.insert(r.id);
      if (r.type == kCmdRead) session.Reply(r.id, kOk, std::string(r.length, 'r'));
      else session.Reply(r.id, kOk);
    };
    return h;
  }
};


}  // namespace ringstore::block::nbd::testing
