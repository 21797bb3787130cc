// ClusterClientTest: a ClusterClient connected to a 5-node ring in one process (real
// NodeCores, MemoryStores, PeerLinks and Membership over the fake network, one fake clock),
// with helpers to run a call to its end and to look into the nodes' stores. Shared by the
// cluster client's test files. Thread-safety: single-threaded, like the fake ring.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dht/cluster_client.h"
#include "routing/placement.h"
#include "tests/support/fake_ring.h"

namespace ringstore::testing {

class ClusterClientTest : public ::testing::Test {
 protected:
  ClusterClientTest()
      : ring_(5, 3),
        client_(ClusterClientOptions{}, ring_.clock, random_,
                [this] { return std::make_unique<FakeTransport>(ring_.net, ""); }) {}

  void SetUp() override {
    ring_.Pump(std::chrono::seconds(3));
    ASSERT_TRUE(ring_.Converged());
    std::optional<Status> s;
    client_.Connect({"node1:7400"}, [&](Status st) { s = st; });
    ring_.Pump(std::chrono::milliseconds(50));
    ASSERT_TRUE(s.has_value() && s->ok()) << (s ? s->ToString() : "no answer");
    ASSERT_EQ(client_.table().size(), 5u);
  }
  template <typename T>
  Result<T> Call(const std::function<void(std::function<void(Result<T>)>)>& start) {
    std::optional<Result<T>> out;
    start([&](Result<T> r) { out.emplace(std::move(r)); });
    for (int i = 0; i < 400 && !out; ++i) ring_.Pump(std::chrono::milliseconds(50));
    if (!out) return Status::Timeout("no result in 20 s of virtual time");
    return std::move(*out);
  }
  // How many nodes' stores hold the record of id with this value.
  int Copies(const ObjectId& id, const std::string& value) {
    int n = 0;
    for (auto& node : ring_.nodes) {
      if (Record* r = node->store->MutableRecordForTest(id); r && r->value == value) ++n;
    }
    return n;
  }

  // Writes "old" to id's replicas, then gives the third replica alone a newer "new" (as if
  // the others had missed that write).
  void OldEverywhereNewOnTheThirdReplica(const ObjectId& id) {
    ASSERT_TRUE(Call<Ack>([&](auto cb) { client_.Put(id, "old", q_, cb); }).ok());
    ring_.Pump(std::chrono::milliseconds(100));
    auto placed = PlaceReplicas(client_.table(), id, 3);
    Ring::Node* lone = ring_.ByAddress(placed[2]->address);
    std::optional<Status> applied;
    const Timestamp newer = MakeTimestamp(static_cast<uint64_t>(ring_.clock.WallMicros() / 1000) + 10, 0);
    lone->store->Apply({WriteOp{id, Record::Value(newer, "new")}}, [&](Status s) { applied = s; });
    ring_.net.RunUntilIdle();
    ASSERT_TRUE(applied && applied->ok());
  }

  // A GET and a STAT of id, each with route_n = 1, through c: both find value.
  void ExpectReadWithRoute(Client& c, const ObjectId& id, const std::string& value) {
    auto got = Call<Record>([&](auto cb) { c.Get(id, cb, /*route_n=*/1); });
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->value, value);
    auto meta = Call<RecordMeta>([&](auto cb) { c.Stat(id, cb, /*route_n=*/1); });
    ASSERT_TRUE(meta.ok()) << meta.status().ToString();
    EXPECT_EQ(meta->size, value.size());
  }

  // A single-connection Client straight to one node, not through the routing client.
  struct Direct {
    Direct(Ring& ring) : transport(ring.net, ""), random(5), client(ClientOptions{}, ring.clock, transport, random) {}
    FakeTransport transport;
    SeededRandom random;
    Client client;
  };
  std::unique_ptr<Direct> ConnectDirect(const std::string& address) {
    auto d = std::make_unique<Direct>(ring_);
    std::optional<Status> connected;
    d->client.Connect(address, [&](Status s) { connected = s; });
    ring_.Pump(std::chrono::milliseconds(50));
    if (!connected || !connected->ok()) return nullptr;
    return d;
  }

  SeededRandom random_{77};
  Ring ring_;
  ClusterClient client_;
  const Quorum q_{3, 2, 2};
};

}  // namespace ringstore::testing
