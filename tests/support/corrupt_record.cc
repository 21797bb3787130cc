// ringstore-corrupt-for-test: damages or checks one record in a stopped node's RocksDB store,
// for the corruption tests (issue 5). Test-only: it is built with the tests, never installed.
//   ringstore-corrupt-for-test corrupt DB_DIR NAMESPACE KEY   flips a bit of the stored value
//   ringstore-corrupt-for-test check DB_DIR NAMESPACE KEY     exit 0 if the record is intact
// Exit status: 0 done/intact, 1 damaged or missing, 2 usage or I/O error.
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "storage/record_format.h"
#include "storage/rocksdb_store.h"

using namespace ringstore;

namespace {

// Runs the store's completions on this thread.
class Loop {
 public:
  Executor executor() {
    return [this](std::function<void()> fn) {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(fn));
      cv_.notify_one();
    };
  }
  template <typename T>
  T Await(const std::function<void(std::function<void(T)>)>& start) {
    std::optional<T> out;
    start([&](T v) { out.emplace(std::move(v)); });
    while (!out) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !tasks_.empty(); });
      auto fn = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      fn();
    }
    return std::move(*out);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (std::string(argv[1]) != "corrupt" && std::string(argv[1]) != "check")) {
    std::fprintf(stderr, "usage: %s corrupt|check DB_DIR NAMESPACE KEY\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const ObjectId id = ObjectId::Of(argv[3], argv[4]);
  Loop loop;
  RocksDbOptions o;
  o.path = argv[2];
  auto store = RocksDbStore::Open(o, loop.executor());
  if (!store.ok()) {
    std::fprintf(stderr, "cannot open %s: %s\n", argv[2], store.status().ToString().c_str());
    return 2;
  }
  auto rec = loop.Await<Result<Record>>([&](auto cb) { (*store)->Get(id, cb); });
  int rc = 0;
  if (mode == "check") {
    std::printf("%s: %s\n", id.Hex().c_str(), rec.ok() ? "intact" : rec.status().ToString().c_str());
    rc = rec.ok() ? 0 : 1;
  } else if (!rec.ok() || rec->value.empty()) {
    std::fprintf(stderr, "%s: nothing to corrupt: %s\n", id.Hex().c_str(),
                 rec.ok() ? "empty value" : rec.status().ToString().c_str());
    rc = 1;
  } else {
    std::string raw = EncodeStoredRecord(*rec);
    raw[raw.size() - 1] ^= 0x04;  // a bit of the value; the header (and its checksum) stay
    Status s = (*store)->RawPutForTest(id, raw);
    std::printf("%s: %s\n", id.Hex().c_str(), s.ok() ? "corrupted" : s.ToString().c_str());
    rc = s.ok() ? 0 : 2;
  }
  (void)loop.Await<Status>([&](auto cb) { (*store)->Close(cb); });
  return rc;
}
