#include "blockgateway/volume.h"

#include <msgpack.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <memory>

#include "blockgateway/volume_lease.h"
#include "dht/admin_name.h"
#include "dht/endian.h"
#include "dht/lww_map.h"

namespace ringstore::block {

namespace {

constexpr uint32_t kMetaFormat = 1;
constexpr uint64_t kDeleteWindow = 64;  // chunk deletes in flight during remove/shrink

ObjectKey CatalogId() { return ObjectKey::Of(reserved::kVolumeCatalog, "all"); }

template <typename F>
Status Unpack(std::string_view bytes, F&& read) {
  // msgpack allocates a declared array or map before reading its elements: without a bound,
  // five corrupt bytes ask for 128 GiB.
  static const msgpack::unpack_limit kLimits(/*array=*/kMaxVolumes + 16, /*map=*/16, /*str=*/1u << 20,
                                             /*bin=*/1u << 20, /*ext=*/0, /*depth=*/8);
  try {
    msgpack::object_handle oh = msgpack::unpack(bytes.data(), bytes.size(), nullptr, nullptr, kLimits);
    return read(oh.get());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("undecodable volume object: ") + e.what());
  }
}

}  // namespace

ObjectKey VolumeMeta::ChunkId(uint64_t index) const {
  std::string key = uuid;
  char le[8];
  PutLE(le, index, 8);
  key.append(le, sizeof le);
  return ObjectKey::Of(reserved::kVolumeChunk, key);
}

Status ValidateVolumeName(const std::string& name) { return ValidateAdminName(name, "volume"); }

Result<uint64_t> ParseSize(const std::string& text) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return Status::InvalidArgument("size too large: " + text);
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return Status::InvalidArgument("not a size: '" + text + "' (try 10G, 512M or a byte count)");
  std::string suffix = text.substr(i);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // "G", "GB" and "GiB" are one unit; "B" alone is bytes. Nothing else is stripped, so
  // "10iB" or "10BB" are refused.
  if (suffix.size() == 3 && suffix[1] == 'I' && suffix[2] == 'B') suffix.resize(1);
  else if (suffix.size() == 2 && suffix[1] == 'B') suffix.resize(1);
  else if (suffix == "B") suffix.clear();
  int shift = 0;
  if (suffix.empty()) shift = 0;
  else if (suffix == "K") shift = 10;
  else if (suffix == "M") shift = 20;
  else if (suffix == "G") shift = 30;
  else if (suffix == "T") shift = 40;
  else if (suffix == "P") shift = 50;
  else return Status::InvalidArgument("unknown size suffix in '" + text + "' (use K, M, G, T or P)");
  if (shift > 0 && v > (UINT64_MAX >> shift)) return Status::InvalidArgument("size too large: " + text);
  return v << shift;
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  uint64_t v = bytes;
  while (u < 5 && v >= 1024 && v % 1024 == 0) {
    v /= 1024;
    ++u;
  }
  return std::to_string(v) + " " + kUnits[u];
}

std::string FormatDate(uint64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string DescribeHold(const VolumeMeta& m) {
  return "volume '" + m.name + "' is being removed or resized (`ringstore " + m.hold.command + "`, begun " +
         FormatDate(m.hold.begun_us / 1000) + "): wait for that command, or run it again if it was interrupted";
}

Status ValidateGeometry(uint64_t size, uint64_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize || (chunk_size & (chunk_size - 1)) != 0) {
    return Status::InvalidArgument("the chunk size must be a power of two from 4 KiB to 16 MiB");
  }
  if (size == 0 || size % kSectorSize != 0) {
    return Status::InvalidArgument("the volume size must be a positive multiple of 512 bytes");
  }
  if (size > kMaxVolumeSize) return Status::InvalidArgument("the volume size is limited to 1 PiB");
  return Status::Ok();
}

bool SameVolume(const VolumeMeta& a, const VolumeMeta& b) {
  return a.uuid == b.uuid && a.size == b.size && a.generation == b.generation;
}

ObjectKey VolumeMetaId(const std::string& name) { return ObjectKey::Of(reserved::kVolume, name); }

std::string EncodeVolumeMeta(const VolumeMeta& m) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(13);
  pk.pack(kMetaFormat);
  pk.pack(m.name);
  pk.pack(m.size);
  pk.pack(m.chunk_size);
  pk.pack_bin(static_cast<uint32_t>(m.uuid.size()));
  pk.pack_bin_body(m.uuid.data(), static_cast<uint32_t>(m.uuid.size()));
  pk.pack(m.quorum.n);
  pk.pack(m.quorum.w);
  pk.pack(m.quorum.r);
  pk.pack(m.created_ms);
  pk.pack(m.generation);
  pk.pack(m.hold.command);
  pk.pack(m.hold.forced);
  pk.pack(m.hold.begun_us);
  return std::string(buf.data(), buf.size());
}

Result<VolumeMeta> DecodeVolumeMeta(std::string_view bytes) {
  VolumeMeta m;
  Status s = Unpack(bytes, [&](const msgpack::object& o) -> Status {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 9) return Status::Corruption("volume metadata is not a 9-field array");
    const msgpack::object* f = o.via.array.ptr;
    if (f[0].as<uint32_t>() != kMetaFormat) return Status::Corruption("unknown volume metadata format");
    m.name = f[1].as<std::string>();
    m.size = f[2].as<uint64_t>();
    m.chunk_size = f[3].as<uint64_t>();
    if (f[4].type != msgpack::type::BIN || f[4].via.bin.size != 16) return Status::Corruption("bad volume uuid");
    m.uuid.assign(f[4].via.bin.ptr, f[4].via.bin.size);
    m.quorum.n = f[5].as<uint32_t>();
    m.quorum.w = f[6].as<uint32_t>();
    m.quorum.r = f[7].as<uint32_t>();
    m.created_ms = f[8].as<uint64_t>();
    if (o.via.array.size >= 10) m.generation = f[9].as<uint64_t>();  // 0 before resizes counted
    if (o.via.array.size >= 11) m.hold.command = f[10].as<std::string>();  // none before leases
    if (o.via.array.size >= 12) m.hold.forced = f[11].as<bool>();
    if (o.via.array.size >= 13) m.hold.begun_us = f[12].as<uint64_t>();
    if (Status g = ValidateGeometry(m.size, m.chunk_size); !g.ok()) return Status::Corruption(g.message());
    if (m.quorum.n == 0 || m.quorum.w == 0 || m.quorum.r == 0 || m.quorum.w > m.quorum.n || m.quorum.r > m.quorum.n) {
      return Status::Corruption("bad quorum in volume metadata");
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return m;
}

std::string EncodeCatalog(const std::vector<std::string>& names) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, names);
  return std::string(buf.data(), buf.size());
}

Result<std::vector<std::string>> DecodeCatalog(std::string_view bytes) {
  std::vector<std::string> names;
  Status s = Unpack(bytes, [&](const msgpack::object& o) -> Status {
    if (o.type != msgpack::type::ARRAY || o.via.array.size > kMaxVolumes) return Status::Corruption("bad volume catalog");
    names = o.as<std::vector<std::string>>();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return names;
}

// ---- VolumeCatalog -------------------------------------------------------------------

Quorum VolumeCatalog::ChunkQuorum(const VolumeMeta& m) const {
  return FitToRing(m.quorum, client_.table().ring_nodes());
}

void VolumeCatalog::Create(VolumeMeta meta, std::function<void(Status)> done) {
  if (Status s = ValidateVolumeName(meta.name); !s.ok()) return done(s);
  if (Status s = ValidateGeometry(meta.size, meta.chunk_size); !s.ok()) return done(s);
  if (meta.uuid.size() != 16) return done(Status::InvalidArgument("a volume needs a 16-byte uuid"));
  const ObjectKey id = VolumeMetaId(meta.name);
  client_.Get(id, Q(), [this, meta, id, done](Result<Record> r) {
    if (r.ok() && !r->meta.tombstone()) return done(Status::InvalidArgument("volume '" + meta.name + "' exists"));
    if (!r.ok() && !r.status().IsNotFound()) return done(r.status());
    client_.Put(id, EncodeVolumeMeta(meta), Q(), [this, meta, done](Result<Ack> a) {
      if (!a.ok()) return done(a.status());
      EditCatalog(meta.name, true, done);
    });
  });
}

void VolumeCatalog::Open(const std::string& name, std::function<void(Result<VolumeMeta>)> done) {
  if (Status s = ValidateVolumeName(name); !s.ok()) return done(s);
  client_.Get(VolumeMetaId(name), Q(), [name, done](Result<Record> r) {
    if (!r.ok()) {
      if (r.status().IsNotFound()) return done(Status::NotFound("no volume named '" + name + "'"));
      return done(r.status());
    }
    if (r->meta.tombstone()) return done(Status::NotFound("no volume named '" + name + "'"));
    auto m = DecodeVolumeMeta(r->value);
    if (m.ok() && m->name != name) return done(Status::Corruption("volume metadata names another volume"));
    done(std::move(m));
  });
}

void VolumeCatalog::ReadCatalog(std::function<void(Result<std::vector<std::string>>, bool legacy)> done) {
  client_.Get(CatalogId(), Q(), [done](Result<Record> r) {
    if (!r.ok() && r.status().IsNotFound()) return done(std::vector<std::string>{}, false);
    if (!r.ok()) return done(r.status(), false);
    if (r->meta.tombstone()) return done(std::vector<std::string>{}, false);
    if (!IsMapRecord(r->meta)) return done(DecodeCatalog(r->value), true);
    auto map = DecodeLwwMap(r->value);
    if (!map.ok()) return done(Status::Corruption("the volume catalog is not a map: " + map.status().message()), false);
    std::vector<std::string> names;
    for (const auto& [name, e] : *map) {
      if (!e.deleted) names.push_back(name);  // in name order: the map is sorted
    }
    done(std::move(names), false);
  });
}

void VolumeCatalog::EditCatalog(std::string name, bool add, std::function<void(Status)> done) {
  ReadCatalog([this, name, add, done](Result<std::vector<std::string>> r, bool legacy) {
    if (!r.ok()) return done(r.status());
    const bool present = std::binary_search(r->begin(), r->end(), name);
    if (present == add && !legacy) return done(Status::Ok());
    if (add && !present && r->size() >= kMaxVolumes) {
      return done(Status::TooLarge("the catalog holds at most 10000 volumes"));
    }
    LwwMap change;
    if (legacy) {
      for (const auto& n : *r) change[n] = MapEntry{0, false, {}};  // carried into the map
    }
    change[name] = MapEntry{0, !add, {}};
    client_.Merge(CatalogId(), change, Q(), [done](Result<Ack> a) { done(a.ok() ? Status::Ok() : a.status()); });
  });
}

void VolumeCatalog::List(std::function<void(Result<std::vector<VolumeMeta>>)> done) {
  ReadCatalog([this, done](Result<std::vector<std::string>> names, bool) {
    if (!names.ok()) return done(names.status());
    struct State {
      std::vector<VolumeMeta> out;
      size_t pending = 0;
      Status failed;
    };
    auto st = std::make_shared<State>();
    st->pending = names->size();
    if (st->pending == 0) return done(std::move(st->out));
    for (const auto& n : *names) {
      Open(n, [st, done](Result<VolumeMeta> m) {
        if (m.ok()) st->out.push_back(std::move(*m));
        else if (!m.status().IsNotFound() && st->failed.ok()) st->failed = m.status();
        if (--st->pending > 0) return;
        if (!st->failed.ok()) return done(st->failed);
        std::sort(st->out.begin(), st->out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
        done(std::move(st->out));
      });
    }
  });
}

void VolumeCatalog::DeleteChunks(std::shared_ptr<VolumeMeta> meta, uint64_t from, uint64_t to, Progress progress,
                                 std::function<void(Status)> done) {
  struct State {
    uint64_t next, end, finished = 0, in_flight = 0;
    Status failed;
    std::function<void()> pump;
  };
  auto st = std::make_shared<State>();
  st->next = from;
  st->end = to;
  const Quorum q = ChunkQuorum(*meta);
  const uint64_t total = to > from ? to - from : 0;
  st->pump = [this, st, meta, q, total, progress, done] {
    while (st->failed.ok() && st->next < st->end && st->in_flight < kDeleteWindow) {
      const uint64_t idx = st->next++;
      ++st->in_flight;
      client_.Del(meta->ChunkId(idx), q, [st, total, progress, done](Result<Ack> a) {
        --st->in_flight;
        ++st->finished;
        if (!a.ok() && st->failed.ok()) st->failed = a.status();
        if (progress && (st->finished % 256 == 0 || st->finished == total)) progress(st->finished, total);
        if (st->in_flight == 0 && (!st->failed.ok() || st->next >= st->end)) {
          auto fn = std::move(st->pump);  // break the cycle
          return done(st->failed);
        }
        st->pump();
      });
    }
  };
  if (total == 0) return done(Status::Ok());
  st->pump();
}

void VolumeCatalog::Remove(const std::string& name, bool force, Progress progress, std::function<void(Status)> done) {
  Open(name, [this, name, force, progress, done](Result<VolumeMeta> m) {
    if (!m.ok()) {
      // Not there: make sure the catalog does not list it either.
      if (m.status().IsNotFound()) {
        return EditCatalog(name, false, [m, done](Status) { done(m.status()); });
      }
      return done(m.status());
    }
    auto meta = std::make_shared<VolumeMeta>(std::move(*m));
    Claim("volume rm " + meta->name, [this, meta, force, progress, done](Status claimed) {
      if (!claimed.ok()) return done(claimed);
      Fence(meta, "volume rm " + meta->name, force, [this, meta, progress, done](Status fenced) {
        if (!fenced.ok()) return done(fenced);
        DeleteChunks(meta, 0, meta->chunks(), progress, [this, meta, done](Status s) {
          if (!s.ok()) return done(s);
          client_.Del(VolumeMetaId(meta->name), Q(), [this, meta, done](Result<Ack> a) {
            if (!a.ok()) return done(a.status());
            // The lease record goes after the metadata: a remove interrupted between the two
            // leaves it behind (small, and named by nothing).
            client_.Del(VolumeLeaseId(meta->uuid), Q(), [this, meta, done](Result<Ack> l) {
              if (!l.ok()) return done(l.status());
              EditCatalog(meta->name, false, done);
            });
          });
        });
      });
    });
  });
}

void VolumeCatalog::WriteMeta(const VolumeMeta& m, std::function<void(Status)> done) {
  client_.Put(VolumeMetaId(m.name), EncodeVolumeMeta(m), Q(),
              [done = std::move(done)](Result<Ack> a) { done(a.ok() ? Status::Ok() : a.status()); });
}

void VolumeCatalog::Fence(std::shared_ptr<VolumeMeta> meta, std::string what, bool force,
                          std::function<void(Status)> done) {
  meta->hold = VolumeMeta::Hold{what + (force ? " --force" : ""), static_cast<uint64_t>(clock_.WallMicros()), force};
  WriteMeta(*meta, [this, meta, force, done](Status s) {
    if (!s.ok()) return done(s);
    AwaitLeases(meta, force, clock_.Now() + lease_wait_, done);
  });
}

void VolumeCatalog::AwaitLeases(std::shared_ptr<VolumeMeta> meta, bool force, Clock::Duration deadline,
                                std::function<void(Status)> done) {
  // Which leases are live is judged at the time the read was sent: one the replicas showed
  // live then may not be taken for dead because this process was slow to see the answer.
  const uint64_t now_ms = static_cast<uint64_t>(clock_.WallMicros() / 1000);
  ReadLeases(client_, *meta, Q(), [this, meta, force, deadline, done, now_ms](Result<LwwMap> leases) {
    // Unreadable leases count as held: nothing may be deleted under a gateway we cannot see.
    std::string holders;
    if (!leases.ok()) {
      holders = "a gateway, perhaps (the volume's leases could not be read: " + leases.status().message() + ")";
    } else {
      holders = DescribeHolders(LiveHolders(*leases, now_ms));
    }
    if (holders.empty() || force) return done(Status::Ok());
    if (clock_.Now() < deadline) {
      clock_.Schedule(std::chrono::milliseconds(500), [this, meta, force, deadline, done] {
        AwaitLeases(meta, force, deadline, done);
      });
      return;
    }
    const Status busy = Status::Busy(
        "volume '" + meta->name + "' is attached to " + holders +
        "; disconnect its clients (the gateway lets go once nothing is left to write back), or pass --force if that "
        "gateway is gone for good (a lease nobody renews runs out about 100 s after its last renewal)");
    // Take the hold back, unless another command's has replaced it meanwhile.
    Open(meta->name, [this, meta, busy, done](Result<VolumeMeta> now) {
      if (!now.ok() || now->hold != meta->hold) return done(busy);
      now->hold = {};
      WriteMeta(*now, [busy, done](Status) { done(busy); });
    });
  });
}

void VolumeCatalog::Claim(const std::string& what, std::function<void(Status)> done) {
  client_.Put(ObjectKey::Of(reserved::kVolumeCatalog, reserved::kLastAdminOpKey), what, Q(),
              [done](Result<Ack> a) { done(a.ok() ? Status::Ok() : a.status()); });
}

void VolumeCatalog::Resize(const std::string& name, uint64_t new_size, bool force, Progress progress,
                           std::function<void(Status)> done) {
  Open(name, [this, new_size, force, progress, done](Result<VolumeMeta> m) {
    if (!m.ok()) return done(m.status());
    auto meta = std::make_shared<VolumeMeta>(std::move(*m));
    if (Status s = ValidateGeometry(new_size, meta->chunk_size); !s.ok()) return done(s);
    auto write_meta = [this, meta, new_size, done](Status s) {
      if (!s.ok()) return done(s);
      VolumeMeta next = *meta;
      next.size = new_size;
      next.hold = {};
      ++next.generation;
      WriteMeta(next, done);
    };
    if (new_size >= meta->size) {
      // A grow deletes nothing, but must not finish half of an interrupted remove or shrink.
      if (!meta->hold.empty()) {
        return done(Status::Busy(DescribeHold(*meta)));
      }
      return write_meta(Status::Ok());
    }
    // Shrink: zero the tail of the new last chunk, then drop the chunks past it.
    const uint64_t keep = (new_size + meta->chunk_size - 1) / meta->chunk_size;
    const uint64_t tail = new_size % meta->chunk_size;
    auto drop = [this, meta, keep, progress, write_meta](Status s) {
      if (!s.ok()) return write_meta(s);
      DeleteChunks(meta, keep, meta->chunks(), progress, write_meta);
    };
    // The admin check first: a client without the admin role is refused before any chunk goes.
    const std::string what = "volume resize " + meta->name + " " + std::to_string(new_size);
    Claim(what, [this, meta, what, force, keep, tail, drop](Status claimed) {
      if (!claimed.ok()) return drop(claimed);
      Fence(meta, what, force, [this, meta, keep, tail, drop](Status fenced) {
        if (!fenced.ok()) return drop(fenced);
        if (tail == 0) return drop(Status::Ok());
        const Quorum q = ChunkQuorum(*meta);
        const ObjectKey last = meta->ChunkId(keep - 1);
        client_.Get(last, q, [this, last, q, tail, drop](Result<Record> r) {
          if (!r.ok() && r.status().IsNotFound()) return drop(Status::Ok());
          if (!r.ok()) return drop(r.status());
          if (r->meta.tombstone()) return drop(Status::Ok());
          std::string data = std::move(r->value);
          if (data.size() > tail) std::memset(data.data() + tail, 0, data.size() - tail);
          client_.Put(last, std::move(data), q, [drop](Result<Ack> a) { drop(a.ok() ? Status::Ok() : a.status()); });
        });
      });
    });
  });
}

}  // namespace ringstore::block
