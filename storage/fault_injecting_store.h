// FaultInjectingStore: wraps any Store and injects faults, as LevelDB's fault-injection Env
// does: failed writes, failed reads, and reads whose bytes were flipped on the way up (which
// the wrapper reports as the corruption a checksum would catch, and counts).
// It owns nothing but its counters; the wrapped store must outlive it.
// Thread-safety: strand-confined, like every Store.
#pragma once

#include <cstdint>

#include "storage/store.h"

namespace ringstore {

class FaultInjectingStore final : public Store {
 public:
  explicit FaultInjectingStore(Store& base) : base_(base) {}

  // The next n Apply calls fail with IOError and write nothing.
  void FailNextWrites(int n) { fail_writes_ = n; }
  // The next n Get/Stat calls fail with IOError.
  void FailNextReads(int n) { fail_reads_ = n; }
  // The next n Get calls return the stored record with one bit of its value flipped.
  void CorruptNextReads(int n) { corrupt_reads_ = n; }
  uint64_t injected() const { return injected_; }

  void Get(const ObjectId& id, std::function<void(Result<Record>)> done) override;
  std::optional<Result<Record>> GetIfCached(const ObjectId& id) override;
  void Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) override;
  void Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) override;
  void Scan(const ObjectId& begin, const ObjectId& end, size_t limit, bool with_values,
            std::function<void(Result<std::vector<ScanEntry>>)> done) override;
  void Hints(const ObjectId& begin, size_t limit, std::function<void(Result<std::vector<StoredHint>>)> done) override {
    base_.Hints(begin, limit, std::move(done));
  }
  void ForgetHints(std::vector<StoredHint> hints, std::function<void(Status)> done) override {
    base_.ForgetHints(std::move(hints), std::move(done));
  }
  void Close(std::function<void(Status)> done) override { base_.Close(std::move(done)); }

 private:
  bool Take(int& counter);
  static void Damage(Record& r);
  Store& base_;
  int fail_writes_ = 0;
  int fail_reads_ = 0;
  int corrupt_reads_ = 0;
  uint64_t injected_ = 0;
};

}  // namespace ringstore
