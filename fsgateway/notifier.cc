#include "fsgateway/notifier.h"

#include <msgpack.hpp>

#include <tuple>

namespace ringstore::fs {

namespace {

// Bounds one payload well under kMaxEventPayload: 9 bytes per inode, at most ~270 per entry.
constexpr size_t kMaxInodesPerEvent = 1000;
constexpr size_t kMaxEntriesPerEvent = 150;
// Events waiting to be applied; more are dropped (the TTLs still bound staleness).
constexpr size_t kMaxIncoming = 4096;

}  // namespace

Notifier::Notifier(ObjectIo& io, const FsMeta& fs, FsCore& core, uint64_t mount_id, NotifierCallbacks callbacks,
                   std::chrono::milliseconds batch_interval)
    : io_(io),
      channel_(ObjectId::Of(reserved::kFsEvents, fs.uuid)),
      core_(core),
      mount_id_(mount_id),
      callbacks_(std::move(callbacks)),
      interval_(batch_interval) {}

Notifier::~Notifier() { Stop(); }

void Notifier::Start() {
  io_.Watch(channel_, [this](std::string payload) {
    std::lock_guard<std::mutex> lock(mu_);
    if (incoming_.size() < kMaxIncoming) incoming_.push_back(std::move(payload));
    cv_.notify_one();
  });
  worker_ = std::thread([this] { Run(); });
}

void Notifier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();
}

void Notifier::Note(const FsCore::Change& change) {
  std::lock_guard<std::mutex> lock(mu_);
  if (change.name.empty()) {
    out_inodes_.insert(change.ino);
  } else {
    out_entries_[{change.ino, change.name}] = change.entry;  // the latest change of a name wins
  }
}

uint64_t Notifier::events_received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

void Notifier::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait_for(lock, interval_, [&] { return stopping_ || !incoming_.empty(); });
    auto incoming = std::move(incoming_);
    incoming_.clear();
    std::set<uint64_t> inodes;
    Entries entries;
    inodes.swap(out_inodes_);
    entries.swap(out_entries_);
    const bool stop = stopping_;
    // Counted before they are applied: whoever sees an event's effect sees it counted.
    received_ += incoming.size();
    lock.unlock();
    for (const auto& payload : incoming) Apply(payload);
    if (!inodes.empty() || !entries.empty()) Publish(std::move(inodes), std::move(entries));
    lock.lock();
    if (stop) return;
  }
}

void Notifier::Publish(std::set<uint64_t> inodes, Entries entries) {
  auto ino_it = inodes.begin();
  auto ent_it = entries.begin();
  while (ino_it != inodes.end() || ent_it != entries.end()) {
    std::vector<uint64_t> batch_inodes;
    std::vector<Entries::const_iterator> batch_entries;
    for (; ino_it != inodes.end() && batch_inodes.size() < kMaxInodesPerEvent; ++ino_it) batch_inodes.push_back(*ino_it);
    for (; ent_it != entries.end() && batch_entries.size() < kMaxEntriesPerEvent; ++ent_it) batch_entries.push_back(ent_it);
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(3);
    pk.pack(mount_id_);
    pk.pack(batch_inodes);
    pk.pack_array(static_cast<uint32_t>(batch_entries.size()));
    for (const auto& it : batch_entries) {
      const auto& [dir, name] = it->first;
      pk.pack_array(4);
      pk.pack(dir);
      pk.pack_bin(static_cast<uint32_t>(name.size()));
      pk.pack_bin_body(name.data(), static_cast<uint32_t>(name.size()));
      pk.pack(it->second ? it->second->ino : uint64_t{0});
      pk.pack(it->second ? it->second->type : uint32_t{0});
    }
    io_.Notify(channel_, std::string(buf.data(), buf.size()));
  }
}

void Notifier::Apply(const std::string& payload) {
  std::vector<uint64_t> inodes;
  std::vector<std::tuple<uint64_t, std::string, std::optional<DirEntry>>> entries;
  try {
    static const msgpack::unpack_limit kLimits(/*array=*/kMaxInodesPerEvent + 8, /*map=*/0, /*str=*/4096,
                                               /*bin=*/4096, /*ext=*/0, /*depth=*/4);
    msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size(), nullptr, nullptr, kLimits);
    const msgpack::object& o = oh.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 3) return;
    if (o.via.array.ptr[0].as<uint64_t>() == mount_id_) return;  // our own change
    inodes = o.via.array.ptr[1].as<std::vector<uint64_t>>();
    const msgpack::object& list = o.via.array.ptr[2];
    if (list.type != msgpack::type::ARRAY) return;
    for (uint32_t i = 0; i < list.via.array.size; ++i) {
      const msgpack::object& e = list.via.array.ptr[i];
      if (e.type != msgpack::type::ARRAY || e.via.array.size < 4 || e.via.array.ptr[1].type != msgpack::type::BIN) continue;
      const msgpack::object* f = e.via.array.ptr;
      const uint64_t child = f[2].as<uint64_t>();
      std::optional<DirEntry> entry;
      if (child != 0) entry = DirEntry{child, f[3].as<uint32_t>()};
      entries.emplace_back(f[0].as<uint64_t>(), std::string(f[1].via.bin.ptr, f[1].via.bin.size), entry);
    }
  } catch (const std::exception&) {
    return;  // not ours to trust: ignore
  }
  for (uint64_t ino : inodes) {
    core_.Invalidate(ino);
    if (callbacks_.inval_inode) callbacks_.inval_inode(ino);
  }
  for (const auto& [dir, name, entry] : entries) {
    core_.ApplyEntry(dir, name, entry);
    if (callbacks_.inval_entry) callbacks_.inval_entry(dir, name);
  }
}

}  // namespace ringstore::fs
