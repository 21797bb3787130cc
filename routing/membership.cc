#include "routing/membership.h"

#include <fmt/ranges.h>

#include <algorithm>

namespace ringstore {

Membership::Membership(MembershipOptions options, NodeEntry self, Clock& clock, Random& random,
                       MembershipSender& sender, std::shared_ptr<spdlog::logger> log)
    : options_(options), self_(std::move(self)), clock_(clock), random_(random), sender_(sender),
      log_(std::move(log)) {
  table_.Merge(self_);
}

Membership::~Membership() { Stop(); }

void Membership::Start(std::vector<std::string> seeds) {
  running_ = true;
  // Our own address is no seed.
  seeds.erase(std::remove(seeds.begin(), seeds.end(), self_.address), seeds.end());
  seeds_ = std::move(seeds);
  joined_ = seeds_.empty();
  join_backoff_ = options_.join_backoff_min;
  ArmGossip(Clock::Duration::zero());
  probe_timer_ = clock_.Schedule(options_.probe_interval, [this] { ProbeTick(); });
}

void Membership::Leave() {
  if (self_.leaving || self_.state == NodeState::kLeft) return;
  self_.leaving = true;
  ++self_.incarnation;
  if (on_incarnation_) on_incarnation_(self_.incarnation);
  log_->warn("decommissioning: this node leaves the ring (incarnation {}) and hands its data off", self_.incarnation);
  if (table_.Merge(self_) && on_change_) on_change_();
}

void Membership::Depart() {
  if (self_.state == NodeState::kLeft) return;
  self_.state = NodeState::kLeft;
  ++self_.incarnation;
  if (on_incarnation_) on_incarnation_(self_.incarnation);
  log_->warn("decommissioned: this node has left the cluster (incarnation {}); it can be stopped", self_.incarnation);
  if (table_.Merge(self_) && on_change_) on_change_();
}

void Membership::Stop() {
  if (!running_) return;
  running_ = false;
  clock_.Cancel(gossip_timer_);
  clock_.Cancel(probe_timer_);
  clock_.Cancel(indirect_timer_);
}

void Membership::ArmGossip(Clock::Duration delay) {
  gossip_timer_ = clock_.Schedule(delay, [this] { GossipTick(); });
}

const Membership::MemberView& Membership::Members() const {
  if (members_.version == table_.local_version()) return members_;
  members_.version = table_.local_version();
  members_.live.clear();
  members_.down.clear();
  members_.replaced.clear();
  const NodeEntry* me = table_.Find(self_.node_id);
  for (const auto& [id, e] : table_.entries()) {
    if (&e != me && e.state == NodeState::kLeft && !e.leaving) members_.replaced.push_back(&e);
    if (&e == me || e.state == NodeState::kLeft) continue;
    (e.state == NodeState::kDown ? members_.down : members_.live).push_back(&e);
  }
  return members_;
}

std::string Membership::GossipFrame(Kind kind, bool with_entries) const {
  if (with_entries) {
    // The whole table is encoded once per version of it: in a large cluster under faults it
    // goes out many times between changes. Another kind only takes a new header.
    if (table_frame_.empty() || table_frame_version_ != table_.local_version()) {
      table_frame_ = EncodeGossip(kind, self_.address, table_);
      table_frame_version_ = table_.local_version();
    } else if (table_frame_kind_ != kind) {
      EncodeFrameHeader(static_cast<uint16_t>(kind), 0, std::string_view(table_frame_).substr(kFrameHeaderBytes), 0,
                        table_frame_.data());
    }
    table_frame_kind_ = kind;
    return table_frame_;
  }
  GossipMessage m;
  m.from = self_.address;
  m.digest = table_.Digest();
  return EncodeGossip(kind, m);
}

void Membership::GossipTick() {
  if (!running_) return;
  // A joined member pushes its digest only; the table travels when the digests differ (see
  // OnGossip). A node that has not joined pushes its table, so that the seed learns of it.
  const std::string frame = GossipFrame(Kind::kGossip, /*with_entries=*/!joined_);
  if (!joined_) {
    // No member has answered yet: try the seeds in turn, backing off.
    const std::string& seed = seeds_[join_attempts_ % seeds_.size()];
    if (join_attempts_ > 0 && join_attempts_ % seeds_.size() == 0) {
      log_->warn("no seed has answered yet ({} attempts; seeds: {}); retrying in {} ms", join_attempts_,
                 fmt::join(seeds_, ", "),
                 std::chrono::duration_cast<std::chrono::milliseconds>(join_backoff_).count());
    }
    ++join_attempts_;
    sender_.SendTo(seed, frame);
    ArmGossip(join_backoff_);
    join_backoff_ = std::min(options_.join_backoff_max, join_backoff_ * 2);
    return;
  }
  const MemberView& m = Members();
  if (!m.live.empty()) {
    sender_.SendTo(m.live[random_.Uniform(m.live.size())]->address, frame);
  } else if (!seeds_.empty()) {
    sender_.SendTo(seeds_[random_.Uniform(seeds_.size())], frame);  // alone: look for the others
  }
  // Now and then, a member believed down: this is how a recovered node is noticed.
  if (!m.down.empty() && random_.NextDouble() < options_.gossip_to_down_probability) {
    sender_.SendTo(m.down[random_.Uniform(m.down.size())]->address, frame);
  }
  // And a member we replaced: if it was only cut off, it hears so, refutes and rejoins.
  // Without this, two sides of a partition that replaced each other never spoke again
  // (docs/repair.md §2).
  if (!m.replaced.empty() && random_.NextDouble() < options_.gossip_to_down_probability) {
    sender_.SendTo(m.replaced[random_.Uniform(m.replaced.size())]->address, frame);
  }
  ArmGossip(options_.gossip_interval);
}

void Membership::Merge(const std::vector<NodeEntry>& entries) {
  bool changed = false;
  for (const auto& e : entries) {
    if (e.node_id == self_.node_id) {
      // Someone believes something about us. If it is not "up at our incarnation", refute it
      // by moving to a higher incarnation, which overrides every older rumour.
      // A node declared Left (replaced after replace_after) while it was only cut off refutes
      // that too and rejoins; only a node that left by itself stays Left.
      if (e.incarnation > self_.incarnation || (e.incarnation == self_.incarnation && e.state != NodeState::kUp &&
                                                 self_.state != NodeState::kLeft)) {
        self_.incarnation = std::max(self_.incarnation, e.incarnation) + 1;
        log_->info("refuting a rumour that this node is {}: incarnation now {}", NodeStateName(e.state),
                   self_.incarnation);
        if (on_incarnation_) on_incarnation_(self_.incarnation);
        changed |= table_.Merge(self_);
      }
      continue;
    }
    std::optional<NodeState> before;
    if (table_.Merge(e, &before)) {
      changed = true;
      Track(suspects_, e.node_id, e.state == NodeState::kSuspect);
      Track(downs_, e.node_id, e.state == NodeState::kDown);
      const NodeState old_state = before.value_or(NodeState::kLeft);
      if (!before) {
        log_->info("member {} at {} joined (zone '{}', {} ring ids)", e.node_id.substr(0, 8), e.address, e.zone,
                   e.vnodes);
      } else if (old_state != e.state) {
        log_->info("member {} at {} is {} (incarnation {})", e.node_id.substr(0, 8), e.address,
                   NodeStateName(e.state), e.incarnation);
      }
      if (e.state != NodeState::kSuspect) suspect_since_.erase(e.node_id);
    }
  }
  if (changed && on_change_) on_change_();
}

void Membership::Track(std::set<std::string>& ids, const std::string& id, bool in) {
  if (in) {
    ids.insert(id);
  } else if (!ids.empty()) {
    ids.erase(id);
  }
}

void Membership::SetState(const std::string& node_id, NodeState state) {
  const NodeEntry* e = table_.Find(node_id);
  if (e == nullptr || e->state == state) return;
  NodeEntry copy = *e;
  copy.state = state;
  Merge({copy});
}

void Membership::OnGossip(Kind kind, const GossipMessage& m) {
  if (!joined_ && m.from != self_.address && running_) {
    joined_ = true;
    log_->info("joined the cluster through {} ({} members known)", m.from, m.entries.size());
    clock_.Cancel(gossip_timer_);  // the join retry; regular gossip takes over
    ArmGossip(options_.gossip_interval);
  }
  Merge(m.entries);
  if (table_.Digest() == m.digest) return;
  if (kind == Kind::kGossip) {
    // Pull half: answer a push whose sender's table differs from ours with our table.
    sender_.SendTo(m.from, GossipFrame(Kind::kGossipReply, true));
  } else if (!m.entries.empty()) {
    // Their table, merged, still differs from theirs: we know something they do not. Push
    // ours; they merge it and, holding the union, have nothing more to answer.
    sender_.SendTo(m.from, GossipFrame(Kind::kGossip, true));
  }
}

// ---- SWIM probes ------------------------------------------------------------------------

void Membership::ProbeTick() {
  if (!running_) return;
  // Judge the probe of the round that just ended.
  if (!probe_.acked) {
    const NodeEntry* e = table_.Find(probe_.node_id);
    if (e != nullptr && e->state == NodeState::kUp) {
      log_->warn("member {} at {} did not answer direct or indirect probes: suspect", probe_.node_id.substr(0, 8),
                 probe_.address);
      SetState(probe_.node_id, NodeState::kSuspect);
      suspect_since_[probe_.node_id] = clock_.Now();
    }
  }
  CheckSuspects();
  CheckReplacements();
  const auto now = clock_.Now();
  for (auto it = relays_.begin(); it != relays_.end();) it = it->second.expires <= now ? relays_.erase(it) : std::next(it);

  // The next member of a shuffled round (SWIM's round-robin keeps detection time bounded).
  if (probe_order_.empty()) {
    for (const auto* e : Members().live) probe_order_.push_back(e->node_id);
    for (size_t i = probe_order_.size(); i > 1; --i) std::swap(probe_order_[i - 1], probe_order_[random_.Uniform(i)]);
  }
  probe_ = Probe{};
  while (!probe_order_.empty()) {
    const std::string id = probe_order_.back();
    probe_order_.pop_back();
    const NodeEntry* e = table_.Find(id);
    if (e == nullptr || e->state == NodeState::kDown || e->state == NodeState::kLeft) continue;
    probe_ = Probe{id, e->address, next_seq_++, false};
    sender_.SendTo(e->address, EncodeProbe(Kind::kPing, ProbeMessage{self_.address, probe_.seq, ""}));
    indirect_timer_ = clock_.Schedule(options_.probe_timeout, [this, seq = probe_.seq] {
      if (running_ && probe_.seq == seq && !probe_.acked) SendIndirectProbes();
    });
    break;
  }
  probe_timer_ = clock_.Schedule(options_.probe_interval, [this] { ProbeTick(); });
}

void Membership::SendIndirectProbes() {
  std::vector<const NodeEntry*> helpers;
  for (const auto* e : Members().live) {
    if (e->node_id != probe_.node_id && e->state == NodeState::kUp) helpers.push_back(e);
  }
  for (uint32_t i = 0; i < options_.indirect_probes && !helpers.empty(); ++i) {
    const size_t pick = random_.Uniform(helpers.size());
    sender_.SendTo(helpers[pick]->address,
                   EncodeProbe(Kind::kPingReq, ProbeMessage{self_.address, probe_.seq, probe_.address}));
    helpers.erase(helpers.begin() + static_cast<long>(pick));
  }
}

void Membership::CheckReplacements() {
  if (options_.replace_after.count() <= 0) return;
  const auto now = clock_.Now();
  std::vector<std::string> replace;
  // Clocks run for the members that are down (downs_, kept by Merge), from the first tick
  // that sees them so.
  std::erase_if(down_since_, [&](const auto& d) { return downs_.count(d.first) == 0; });
  for (const std::string& id : downs_) {
    auto [it, fresh] = down_since_.emplace(id, now);
    if (!fresh && now - it->second >= options_.replace_after) replace.push_back(id);
  }
  // Only a node that sees a majority of the members alive replaces anyone. A node cut off
  // from the rest sees them all down; replacing them would make each side Left to the other,
  // and since no one gossips with Left members, neither would ever hear the other refute it
  // (the simulator found that split, seed 10443523362973261205). The majority replaces the
  // cut-off node; once the cut heals, that node hears it was replaced, refutes and rejoins.
  if (!replace.empty()) {
    size_t members = 0, alive = 0;
    for (const auto& [id, e] : table_.entries()) {
      if (e.state == NodeState::kLeft) continue;
      ++members;
      if (e.state == NodeState::kUp || e.state == NodeState::kSuspect) ++alive;
    }
    if (2 * alive <= members) {
      // The time without a majority does not count: after a heal, members get a gossip
      // round to refute before they are replaced.
      for (auto& [id, since] : down_since_) since = now;
      return;
    }
  }
  for (const std::string& id : replace) {
    down_since_.erase(id);
    const NodeEntry* e = table_.Find(id);
    log_->warn("member {} at {} has been down for {} s: replacing it (it leaves the ring; its replicas are rebuilt "
               "on the other nodes)",
               id.substr(0, 8), e->address,
               std::chrono::duration_cast<std::chrono::seconds>(options_.replace_after).count());
    SetState(id, NodeState::kLeft);
  }
}

void Membership::CheckSuspects() {
  const auto now = clock_.Now();
  for (auto it = suspect_since_.begin(); it != suspect_since_.end();) {
    const NodeEntry* e = table_.Find(it->first);
    if (e == nullptr || e->state != NodeState::kSuspect) {
      it = suspect_since_.erase(it);
      continue;
    }
    if (now - it->second >= options_.suspicion_timeout) {
      const std::string id = it->first;
      it = suspect_since_.erase(it);
      log_->warn("member {} at {} stayed suspect for {} ms: down", id.substr(0, 8), e->address,
                 std::chrono::duration_cast<std::chrono::milliseconds>(options_.suspicion_timeout).count());
      SetState(id, NodeState::kDown);
    } else {
      ++it;
    }
  }
  // Suspects we learned of by gossip also time out here: start their clocks.
  for (const std::string& id : suspects_) suspect_since_.try_emplace(id, now);
}

void Membership::OnPing(const ProbeMessage& m) {
  sender_.SendTo(m.from, EncodeProbe(Kind::kPingAck, ProbeMessage{self_.address, m.seq, self_.address}));
}

void Membership::OnPingReq(const ProbeMessage& m) {
  const uint64_t seq = next_seq_++;
  relays_[seq] = Relay{m.from, m.seq, clock_.Now() + options_.probe_interval};
  sender_.SendTo(m.target, EncodeProbe(Kind::kPing, ProbeMessage{self_.address, seq, ""}));
}

void Membership::OnPingAck(const ProbeMessage& m) {
  if (auto it = relays_.find(m.seq); it != relays_.end()) {
    // An ack for a ping we sent on someone's behalf: pass it on.
    sender_.SendTo(it->second.origin, EncodeProbe(Kind::kPingAck, ProbeMessage{self_.address, it->second.origin_seq, m.target}));
    relays_.erase(it);
    return;
  }
  if (m.seq == probe_.seq) probe_.acked = true;
}

Status Membership::OnFrame(const Frame& frame) {
  const auto kind = static_cast<Kind>(frame.header.kind);
  switch (kind) {
    case Kind::kGossip:
    case Kind::kGossipReply: {
      auto m = DecodeGossip(frame.body);
      if (!m.ok()) return m.status();
      OnGossip(kind, *m);
      return Status::Ok();
    }
    case Kind::kPing:
    case Kind::kPingReq:
    case Kind::kPingAck: {
      auto m = DecodeProbe(frame.body);
      if (!m.ok()) return m.status();
      if (kind == Kind::kPing) OnPing(*m);
      if (kind == Kind::kPingReq) OnPingReq(*m);
      if (kind == Kind::kPingAck) OnPingAck(*m);
      return Status::Ok();
    }
    default:
      return Status::ProtocolError(std::string("not a membership message: ") + KindName(frame.header.kind));
  }
}

}  // namespace ringstore
