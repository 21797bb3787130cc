// Notifier: the coherence of several mounts of one filesystem, the POHMELFS idea over the
// cluster. Each mount watches the filesystem's channel, H("ringstore.fs-events", UUID), on
// the channel's home node (ObjectIo::Watch). What the mount changes (FsCore's change
// listener: inodes, directory entries with what they now name) is batched for up to
// batch_interval and published on the channel; what the other mounts publish invalidates this
// mount's cached inodes (FsCore::Invalidate), updates its cached listings in place
// (FsCore::ApplyEntry, so that a directory both mounts fill is not read again after every
// create) and invalidates the kernel's caches (the callbacks, which the FUSE glue maps to
// fuse_lowlevel_notify_inval_inode/_entry).
//
// Delivery is best effort (an event published while the channel's home moves is lost); the
// attribute TTLs bound staleness then. A payload is msgpack
// [mount id, [ino, ...], [[dir ino, name, child ino (0: removed), type], ...]], at most
// kMaxEventPayload bytes.
//
// Thread-safety: Note may be called from any thread (it only queues). The worker thread
// publishes and applies events; the callbacks run on it, with no lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "fsgateway/fs_core.h"
#include "fsgateway/object_io.h"

namespace ringstore::fs {

struct NotifierCallbacks {
  std::function<void(uint64_t ino)> inval_inode;
  std::function<void(uint64_t dir, const std::string& name)> inval_entry;
};

class Notifier {
 public:
  Notifier(ObjectIo& io, const FsMeta& fs, FsCore& core, uint64_t mount_id, NotifierCallbacks callbacks,
           std::chrono::milliseconds batch_interval = std::chrono::milliseconds(20));
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Watches the channel and starts the worker.
  void Start();
  // Publishes what is queued, then stops the worker.
  void Stop();
  // A change this mount made (FsCore's listener).
  void Note(const FsCore::Change& change);

  uint64_t events_received() const;

 private:
  void Run();
  using Entries = std::map<std::pair<uint64_t, std::string>, std::optional<DirEntry>>;
  void Publish(std::set<uint64_t> inodes, Entries entries);
  void Apply(const std::string& payload);

  ObjectIo& io_;
  const ObjectId channel_;
  FsCore& core_;
  const uint64_t mount_id_;
  const NotifierCallbacks callbacks_;
  const std::chrono::milliseconds interval_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::set<uint64_t> out_inodes_;
  std::map<std::pair<uint64_t, std::string>, std::optional<DirEntry>> out_entries_;
  std::deque<std::string> incoming_;
  uint64_t received_ = 0;
  std::thread worker_;
};

}  // namespace ringstore::fs
