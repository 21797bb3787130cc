#include "storage/fault_injecting_store.h"

namespace ringstore {

bool FaultInjectingStore::Take(int& counter) {
  if (counter <= 0) return false;
  --counter;
  ++injected_;
  return true;
}

void FaultInjectingStore::Damage(Record& r) {
  if (r.value.empty()) {
    r.meta.checksum ^= 1;  // no bytes to flip: damage the checksum instead
  } else {
    r.value[r.value.size() / 2] ^= 0x10;
  }
}

void FaultInjectingStore::Get(const ObjectId& id, std::function<void(Result<Record>)> done) {
  const bool fail = Take(fail_reads_);
  const bool corrupt = !fail && Take(corrupt_reads_);
  base_.Get(id, [fail, corrupt, done = std::move(done)](Result<Record> r) {
    if (fail) return done(Status::IOError("injected read error"));
    if (corrupt && r.ok()) Damage(*r);
    done(std::move(r));
  });
}

std::optional<Result<Record>> FaultInjectingStore::GetIfCached(const ObjectId& id) {
  auto r = base_.GetIfCached(id);
  if (!r) return r;  // not cached: the fault, if armed, applies to the Get that follows
  if (Take(fail_reads_)) return Result<Record>(Status::IOError("injected read error"));
  if (Take(corrupt_reads_) && r->ok()) Damage(**r);
  return r;
}

void FaultInjectingStore::Stat(const ObjectId& id, std::function<void(Result<RecordMeta>)> done) {
  if (Take(fail_reads_)) {
    return base_.Stat(id, [done = std::move(done)](Result<RecordMeta>) {
      done(Status::IOError("injected read error"));
    });
  }
  base_.Stat(id, std::move(done));
}

void FaultInjectingStore::Apply(std::vector<WriteOp> ops, std::function<void(Status)> done) {
  if (Take(fail_writes_)) {
    // Go through the base with no ops so the completion still arrives on the strand.
    return base_.Apply({}, [done = std::move(done)](Status) {
      done(Status::IOError("injected write error"));
    });
  }
  base_.Apply(std::move(ops), std::move(done));
}

void FaultInjectingStore::Scan(const ObjectId& begin, const ObjectId& end, size_t limit,
                               bool with_values,
                               std::function<void(Result<std::vector<ScanEntry>>)> done) {
  base_.Scan(begin, end, limit, with_values, std::move(done));
}

}  // namespace ringstore
