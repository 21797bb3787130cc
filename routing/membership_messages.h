// The membership messages nodes exchange: push-pull gossip of route-table entries and the
// SWIM probes. Each carries the sender's address, so a reply never depends on which
// connection a message came in on. Bodies are msgpack arrays, coded like dht/messages
// (positional fields, appended only, trailing unknown fields ignored, every length bounded).
// Thread-safety: pure functions over values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dht/messages.h"
#include "routing/route_table.h"

namespace ringstore {

constexpr size_t kMaxGossipEntries = 4096;

// kGossip (push) and kGossipReply (pull): the sender's table, or the entries it sends.
struct GossipMessage {
  std::string from;   // sender address
  uint64_t digest = 0;  // digest of the sender's whole table
  std::vector<NodeEntry> entries;
};

// kPing, kPingReq and kPingAck.
struct ProbeMessage {
  std::string from;    // who sent this message
  uint64_t seq = 0;    // the prober's sequence number, echoed in the ack
  std::string target;  // kPingReq: whom to ping; kPingAck: who answered; kPing: empty (a relay
                       // remembers the origin itself, by its own seq)
};

// kGossip, kGossipReply, or kRouteTableReply (with the request id it answers).
std::string EncodeGossip(Kind kind, const GossipMessage& m, uint64_t request_id = 0);
// The same message with the whole of table (its digest and every entry), encoded from it.
std::string EncodeGossip(Kind kind, std::string_view from, const RouteTable& table, uint64_t request_id = 0);
Result<GossipMessage> DecodeGossip(std::string_view body);
std::string EncodeProbe(Kind kind, const ProbeMessage& m);
Result<ProbeMessage> DecodeProbe(std::string_view body);

}  // namespace ringstore
