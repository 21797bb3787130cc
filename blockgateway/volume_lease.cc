#include "blockgateway/volume_lease.h"

#include "dht/endian.h"

namespace ringstore::block {

namespace {

constexpr char kTermsFormat = 1;
constexpr size_t kTermsBytes = 17;  // format, LE64 expires_ms, LE64 drain_ms
// A failed renewal is tried again after this long (the lease may lapse meanwhile).
constexpr Clock::Duration kRetryRenewal = std::chrono::seconds(1);

std::string Hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

uint64_t WallMs(const Clock& clock) { return static_cast<uint64_t>(clock.WallMicros() / 1000); }

}  // namespace

ObjectKey VolumeLeaseId(std::string_view uuid) { return ObjectKey::Of(reserved::kVolumeLease, Hex(uuid)); }

std::string EncodeLeaseTerms(const LeaseTerms& t) {
  std::string out(kTermsBytes, '\0');
  out[0] = kTermsFormat;
  PutLE(out.data() + 1, t.expires_ms, 8);
  PutLE(out.data() + 9, t.drain_ms, 8);
  return out;
}

Result<LeaseTerms> DecodeLeaseTerms(std::string_view bytes) {
  if (bytes.size() != kTermsBytes || bytes[0] != kTermsFormat) return Status::Corruption("unknown lease format");
  LeaseTerms t;
  t.expires_ms = GetLE(bytes.data() + 1, 8);
  t.drain_ms = GetLE(bytes.data() + 9, 8);
  return t;
}

uint64_t LiveUntil(const LeaseTerms& t) {
  // Saturating: a corrupt or hostile expiry near 2^64 counts as live, never wraps to dead.
  uint64_t until = t.expires_ms;
  for (uint64_t add : {t.drain_ms, kLeaseSkewAllowanceMs}) until = until > UINT64_MAX - add ? UINT64_MAX : until + add;
  return until;
}

std::vector<LeaseHolder> LiveHolders(const LwwMap& leases, uint64_t now_ms) {
  std::vector<LeaseHolder> live;
  for (const auto& [name, e] : leases) {
    if (e.deleted) continue;
    auto t = DecodeLeaseTerms(e.payload);
    if (!t.ok()) {
      live.push_back(LeaseHolder{name, {}, false});
      continue;
    }
    if (LiveUntil(*t) > now_ms) live.push_back(LeaseHolder{name, *t, true});
  }
  return live;
}

std::string DescribeHolders(const std::vector<LeaseHolder>& holders) {
  std::string out;
  for (const auto& h : holders) {
    if (!out.empty()) out += ", ";
    out += "gateway " + h.holder;
    out += h.readable ? " (held until " + FormatDate(LiveUntil(h.terms)) + " unless renewed)"
                      : " (a lease this release cannot read)";
  }
  return out;
}

void ReadLeases(ClusterClient& client, const VolumeMeta& meta, Quorum q, std::function<void(Result<LwwMap>)> done) {
  client.Get(VolumeLeaseId(meta.uuid), q, [done](Result<Record> r) {
    if (!r.ok() && r.status().IsNotFound()) return done(LwwMap{});
    if (!r.ok()) return done(r.status());
    if (r->meta.tombstone()) return done(LwwMap{});
    if (!IsMapRecord(r->meta)) return done(Status::Corruption("the volume's lease record is not a map"));
    auto map = DecodeLwwMap(r->value);
    if (!map.ok()) return done(Status::Corruption("the volume's lease record: " + map.status().message()));
    done(std::move(*map));
  });
}

// ---- VolumeLease ----------------------------------------------------------------------

VolumeLease::VolumeLease(ClusterClient& client, Clock& clock, VolumeCatalog& catalog, VolumeMeta meta,
                         LeaseOptions options)
    : client_(client), clock_(clock), catalog_(catalog), meta_(std::move(meta)), options_(std::move(options)) {}

VolumeLease::~VolumeLease() {
  *alive_ = false;
  if (timer_ != 0) clock_.Cancel(timer_);
}

Quorum VolumeLease::quorum() const { return FitToRing(options_.quorum, client_.table().ring_nodes()); }

void VolumeLease::WriteEntry(bool deleted, std::function<void(Status)> done) {
  MapEntry e;
  e.deleted = deleted;
  if (!deleted) {
    const auto term = std::chrono::duration_cast<std::chrono::milliseconds>(options_.term).count();
    const auto drain = std::chrono::duration_cast<std::chrono::milliseconds>(options_.drain).count();
    e.payload = EncodeLeaseTerms(LeaseTerms{WallMs(clock_) + static_cast<uint64_t>(term), static_cast<uint64_t>(drain)});
  }
  LwwMap change;
  change[options_.holder] = std::move(e);
  client_.Merge(VolumeLeaseId(meta_.uuid), change, quorum(),
                [done = std::move(done)](Result<Ack> a) { done(a.ok() ? Status::Ok() : a.status()); });
}

void VolumeLease::ReadMeta(std::function<void(Result<VolumeMeta>)> done) {
  std::weak_ptr<bool> alive = alive_;
  catalog_.Open(meta_.name, [alive, done = std::move(done)](Result<VolumeMeta> m) {
    if (!alive.expired()) done(std::move(m));
  });
}

void VolumeLease::Acquire(std::function<void(Status)> done) {
  std::weak_ptr<bool> alive = alive_;
  const Clock::Duration sent = clock_.Now();
  WriteEntry(false, [this, alive, sent, done = std::move(done)](Status s) {
    if (alive.expired()) return;
    if (!s.ok()) {
      lost_ = true;
      WriteEntry(true, [](Status) {});  // it may have reached a replica
      return done(Status::FromCode(s.code(), "cannot write the volume's lease: " + s.message()));
    }
    ReadMeta([this, sent, done](Result<VolumeMeta> m) {
      Status c;
      if (!m.ok()) c = m.status();
      else if (!SameVolume(meta_, *m)) c = Status::Refused("volume '" + meta_.name + "' was removed, created again or resized");
      else if (!m->hold.empty()) c = Status::Busy(DescribeHold(*m));
      if (!c.ok()) {
        lost_ = true;
        WriteEntry(true, [](Status) {});
        return done(c);
      }
      valid_until_ = sent + options_.term;
      Schedule(options_.term / 3);
      done(Status::Ok());
    });
  });
}

Status VolumeLease::WriteGate() const {
  if (lost_) return Status::IOError("volume '" + meta_.name + "' was removed or resized under this gateway");
  if (released_) return Status::IOError("volume '" + meta_.name + "': the gateway gave up its lease");
  if (clock_.Now() >= valid_until_) {
    return Status::Unavailable("volume '" + meta_.name + "': the gateway's lease has lapsed (renewals fail)");
  }
  return Status::Ok();
}

void VolumeLease::Schedule(Clock::Duration delay) {
  std::weak_ptr<bool> alive = alive_;
  timer_ = clock_.Schedule(delay, [this, alive] {
    if (alive.expired()) return;
    timer_ = 0;
    Renew();
  });
}

void VolumeLease::Renew() {
  if (lost_ || released_) return;
  if (on_renewal) on_renewal();
  std::weak_ptr<bool> alive = alive_;
  const Clock::Duration sent = clock_.Now();
  const bool was_valid = sent < valid_until_;
  WriteEntry(false, [this, alive, sent, was_valid](Status s) {
    if (alive.expired() || lost_ || released_) return;
    if (!s.ok()) return Schedule(kRetryRenewal);
    // The entry landed before the answer came. If the lease was still valid when it was sent
    // and the answer took less than the drain, an admin command that saw the old entry run
    // out (expiry plus drain) read the leases after this one landed, and saw it: no remove
    // or shrink went on without --force. Otherwise one may have (say the gateway was cut
    // off), and only the metadata can tell, as in Acquire.
    const bool in_time = was_valid && clock_.Now() - sent < options_.drain;
    ReadMeta([this, sent, in_time](Result<VolumeMeta> m) {
      if (lost_ || released_) return;
      bool changed = false;
      if (!m.ok()) {
        changed = m.status().IsNotFound();
      } else if (m->uuid != meta_.uuid || m->size < meta_.size || (!m->hold.empty() && m->hold.forced)) {
        changed = true;  // removed and created again, shrunk, or being so with --force
      } else if (m->generation != generation_) {
        // A grow while the lease held; otherwise perhaps a shrink and a grow back.
        if (in_time) generation_ = m->generation;
        else changed = true;
      }
      if (changed) {
        // Asked twice before giving up the volume for good: one read can miss it.
        if (++suspect_ < 2) return Schedule(kRetryRenewal);
        // Removed, created again or shrunk: forced, or while the lease had lapsed. This
        // gateway's chunks of it are stale; nothing more is written.
        lost_ = true;
        return WriteEntry(true, [](Status) {});
      }
      suspect_ = 0;
      // A hold may belong to an admin command that saw this lease and will clear it; an
      // unreadable volume may be readable later.
      if ((!m.ok() || !m->hold.empty()) && !in_time) return Schedule(kRetryRenewal);
      valid_until_ = sent + options_.term;
      Schedule(options_.term / 3);
    });
  });
}

void VolumeLease::Release(std::function<void(Status)> done) {
  released_ = true;
  if (timer_ != 0) clock_.Cancel(timer_);
  timer_ = 0;
  WriteEntry(true, std::move(done));
}

}  // namespace ringstore::block
