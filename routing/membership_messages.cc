#include "routing/membership_messages.h"

#include "dht/wire_codec.h"

namespace ringstore {

using namespace wire;  // NOLINT: the codec helpers

namespace {

void PackEntry(Packer& pk, const NodeEntry& e) {
  pk.pack_array(8);
  PackStr(pk, e.node_id);
  PackStr(pk, e.address);
  PackStr(pk, e.zone);
  pk.pack_uint8(static_cast<uint8_t>(e.state));
  pk.pack_uint64(e.incarnation);
  pk.pack_uint64(e.ring_seed);
  pk.pack_uint32(e.vnodes);
  pk.pack(e.leaving);
}

Status UnpackEntry(const msgpack::object& o, NodeEntry* e) {
  Fields f;
  uint64_t state = 0, vnodes = 0;
  RS_TRY(f.Wrap(o, 7, "node entry"));
  RS_TRY(f.Str(0, "node_id", &e->node_id));
  RS_TRY(f.Str(1, "address", &e->address));
  RS_TRY(f.Str(2, "zone", &e->zone));
  RS_TRY(f.U64(3, "state", &state));
  RS_TRY(f.U64(4, "incarnation", &e->incarnation));
  RS_TRY(f.U64(5, "ring_seed", &e->ring_seed));
  RS_TRY(f.U64(6, "vnodes", &vnodes));
  if (state < 1 || state > 4) return Status::ProtocolError("unknown node state " + std::to_string(state));
  if (vnodes == 0 || vnodes > kMaxVnodes) return Status::ProtocolError("vnodes out of range");
  if (e->node_id.empty() || e->address.empty()) return Status::ProtocolError("node entry without id or address");
  e->state = static_cast<NodeState>(state);
  e->vnodes = static_cast<uint32_t>(vnodes);
  e->leaving = false;
  if (f.size() > 7) {
    if (f.at(7).type != msgpack::type::BOOLEAN) return Status::ProtocolError("field leaving must be a boolean");
    e->leaving = f.at(7).via.boolean;
  }
  return Status::Ok();
}

}  // namespace

namespace {

// The entries go from wherever they are kept, without a copy: a vector or a table's map.
template <typename Each>
std::string EncodeGossipOf(Kind kind, std::string_view from, uint64_t digest, size_t count, uint64_t request_id,
                           Each&& each) {
  FrameWriter w(64 + count * 96);
  Packer pk(w);
  pk.pack_array(3);
  PackStr(pk, from);
  pk.pack_uint64(digest);
  const size_t n = std::min(count, kMaxGossipEntries);
  pk.pack_array(static_cast<uint32_t>(n));
  size_t i = 0;
  each([&](const NodeEntry& e) {
    if (i++ < n) PackEntry(pk, e);
  });
  return w.Finish(kind, request_id);
}

}  // namespace

std::string EncodeGossip(Kind kind, const GossipMessage& m, uint64_t request_id) {
  return EncodeGossipOf(kind, m.from, m.digest, m.entries.size(), request_id, [&](auto&& visit) {
    for (const NodeEntry& e : m.entries) visit(e);
  });
}

std::string EncodeGossip(Kind kind, std::string_view from, const RouteTable& table, uint64_t request_id) {
  return EncodeGossipOf(kind, from, table.Digest(), table.size(), request_id, [&](auto&& visit) {
    for (const auto& [id, e] : table.entries()) visit(e);
  });
}

Result<GossipMessage> DecodeGossip(std::string_view body) {
  Fields f;
  GossipMessage m;
  RS_TRY(f.Parse(body, 3));
  RS_TRY(f.Str(0, "from", &m.from));
  RS_TRY(f.U64(1, "digest", &m.digest));
  const msgpack::object& list = f.at(2);
  if (list.type != msgpack::type::ARRAY || list.via.array.size > kMaxGossipEntries) {
    return Status::ProtocolError("field 2 (entries) must be an array of at most 4096 entries");
  }
  m.entries.resize(list.via.array.size);
  for (uint32_t i = 0; i < list.via.array.size; ++i) RS_TRY(UnpackEntry(list.via.array.ptr[i], &m.entries[i]));
  return m;
}

std::string EncodeProbe(Kind kind, const ProbeMessage& m) {
  FrameWriter w(64);
  Packer pk(w);
  pk.pack_array(3);
  PackStr(pk, m.from);
  pk.pack_uint64(m.seq);
  PackStr(pk, m.target);
  return w.Finish(kind, 0);
}

Result<ProbeMessage> DecodeProbe(std::string_view body) {
  Fields f;
  ProbeMessage m;
  RS_TRY(f.Parse(body, 3));
  RS_TRY(f.Str(0, "from", &m.from));
  RS_TRY(f.U64(1, "seq", &m.seq));
  RS_TRY(f.Str(2, "target", &m.target));
  return m;
}

}  // namespace ringstore
