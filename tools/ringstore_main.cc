// ringstore: the command-line client. Stores, reads, removes and describes objects, and
// measures a node with `bench`. Exit status: 0 success, 1 not found, 2 usage error,
// 3 cluster unreachable, 4 any other error (corruption, I/O, timeout mid-request).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "routing/placement.h"
#include "tools/exit_status.h"
#include "tools/bench.h"
#include "tools/cert_cmd.h"
#include "tools/ring_cmd.h"
#include "node/runtime/address.h"
#include "tools/session.h"
#include "tools/fs_cmd.h"
#include "tools/node_cmd.h"
#include "tools/volume_cmd.h"

using namespace ringstore;

namespace {


// An error from the cluster: 1 for not found, else 4 (a refusal by the node is not a
// usage error of this command line).
int Fail(const std::string& what, const Status& s) {
  std::cerr << "ringstore: " << what << ": " << s.ToString() << "\n";
  return s.IsNotFound() ? kExitNotFound : kExitError;
}

// An error in this command's own input (a file that cannot be opened, or too large): 2.
int BadInput(const std::string& what, const Status& s) {
  std::cerr << "ringstore: " << what << ": " << s.ToString() << "\n";
  return s.code() == Code::kIOError ? kExitError : kExitUsage;
}

// Reads FILE, or stdin for "-", refusing more than the largest object.
Result<std::string> ReadInput(const std::string& path) {
  std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::InvalidArgument("cannot open " + path + ": " + std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    data.append(buf, n);
    if (data.size() > kMaxValueBytes) {
      if (f != stdin) std::fclose(f);
      return Status::TooLarge(path + " is larger than the 64 MiB object limit");
    }
  }
  const bool err = std::ferror(f);
  if (f != stdin) std::fclose(f);
  if (err) return Status::IOError("cannot read " + path);
  return data;
}

// Writes to FILE atomically (temp file + rename), or to stdout for "-".
Status WriteOutput(const std::string& path, const std::string& data) {
  if (path == "-") {
    if (std::fwrite(data.data(), 1, data.size(), stdout) != data.size() || std::fflush(stdout) != 0) {
      return Status::IOError("cannot write to stdout");
    }
    return Status::Ok();
  }
  const std::string tmp = path + ".ringstore-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) return Status::IOError("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::Ok();
}

std::string Describe(const std::string& key, const ObjectId& id, const RecordMeta& m) {
  char line[512];
  std::snprintf(line, sizeof line,
                "key:       %s\nid:        %s\nsize:      %llu\nchecksum:  %016llx (xxh3-64)\n"
                "timestamp: %s\nstate:     %s\n",
                key.c_str(), id.Hex().c_str(), static_cast<unsigned long long>(m.size),
                static_cast<unsigned long long>(m.checksum), TimestampToString(m.ts).c_str(),
                m.tombstone() ? "deleted" : "live");
  return line;
}

}  // namespace

namespace ringstore {

CLI::App* AddNodeCommands(CLI::App& app, NodeArgs& args) {
  auto* node = app.add_subcommand("node", "Per-node administration: verify replication, decommission a node");
  node->require_subcommand(1);
  args.verify = node->add_subcommand(
      "verify",
      "List every node's records and check that each object has N copies of its newest version on its placement "
      "nodes. Exit status 0 when all do, 1 when some do not (or a node could not be listed)");
  args.verify->add_option("--n", args.replicas, "N: the copies each object should have")
      ->check(CLI::Range(1u, kMaxReplicas))
      ->capture_default_str();
  args.decommission = node->add_subcommand(
      "decommission",
      "Take NODE off the ring: it hands its records to their new owners, then leaves the cluster for good. Progress "
      "is printed until it has left; interrupting the command does not stop it, and running it again follows it");
  args.decommission->add_option("NODE", args.node, "Node id (or its first digits) or HOST:PORT")->required();
  args.decommission->add_flag("--no-wait", args.no_wait, "Ask for the decommission and return");
  args.decommission->add_option("--poll", args.poll_s, "Seconds between progress lines")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return node;
}

CLI::App* AddCertCommands(CLI::App& app, CertArgs& a) {
  auto* cert = app.add_subcommand(
      "cert", "The cluster's certificate authority: make the CA, and issue node and client certificates for --tls-dir");
  cert->require_subcommand(1);
  a.init_ca = cert->add_subcommand("init-ca", "Create the CA of --cluster-id in DIR: ca.crt and ca.key (mode 0600)");
  a.init_ca->add_option("DIR", a.dir, "Directory for the CA")->required();
  auto* issue = cert->add_subcommand("issue", "Issue a certificate signed by the CA into --out (ca.crt, tls.crt, tls.key)");
  issue->require_subcommand(1);
  a.issue_node = issue->add_subcommand("node", "A node's certificate (node-to-node and client-to-node links)");
  a.issue_client = issue->add_subcommand("client", "A client's certificate, with the role the nodes enforce");
  for (CLI::App* sub : {a.issue_node, a.issue_client}) {
    sub->add_option("NAME", a.name, "The party's name (letters, digits, '.', '_', '-')")->required();
    sub->add_option("--ca", a.ca_dir, "The CA's directory (from init-ca)")->required();
    sub->add_option("--out", a.out_dir, "Directory to write: use it as the party's --tls-dir")->required();
    sub->add_option("--host", a.hosts,
                    "A DNS name or IP address the party serves TLS as (repeatable), for clients that check it, "
                    "such as NBD clients of ringstore-block");
  }
  a.issue_client->add_option("--role", a.role, "read-only: GET/STAT; read-write: also PUT/DEL/TXN; admin: also "
                                               "decommission, scans, and creating, resizing and removing volumes "
                                               "and filesystems")
      ->required()
      ->check(CLI::IsMember({"read-only", "read-write", "admin"}));
  a.issue_client->add_option("--namespace", a.ns,
                             "Restrict the client to objects of this namespace (read-only and read-write roles; "
                             "such a client cannot mount filesystems or serve volumes)");
  for (CLI::App* sub : {a.init_ca, a.issue_node, a.issue_client}) {
    sub->add_option("--days", a.days, "Days of validity (default 3650 for the CA, 825 for a party)")
        ->check(CLI::Range(1, 36500));
    sub->add_option("--backdate", a.backdate_days, "Start the validity this many days in the past")
        ->check(CLI::Range(0, 36500));
    sub->add_flag("--force", a.force, "Replace existing key and certificate files");
  }
  a.show = cert->add_subcommand("show", "Print the identity and validity of a certificate (or DIR/tls.crt)");
  a.show->add_option("PATH", a.dir, "A --tls-dir or a certificate file")->required();
  return cert;
}

}  // namespace ringstore

int main(int argc, char** argv) {
  CLI::App app{"ringstore: command-line client for a ringstore cluster."};
  app.footer(
      "Exit status: 0 success, 1 not found, 2 usage error, 3 cluster unreachable,\n"
      "4 other error (corruption, I/O error, timeout).\n"
      "Objects are addressed by SHA-256(namespace \\0 key) and may be up to 64 MiB.");
  app.require_subcommand(1);
  std::string cluster, ns = "default", cluster_id = "ringstore";
  double timeout_s = 30;
  app.add_option("--cluster", cluster, "Any node(s) of the cluster, HOST:PORT[,HOST:PORT...]")
      ->envname("RINGSTORE_CLUSTER");
  Quorum quorum;
  auto* n_opt = app.add_option("--replicas", quorum.n, "N: copies of each object")
                    ->check(CLI::Range(1u, kMaxReplicas))
                    ->capture_default_str();
  auto* w_opt = app.add_option("--w", quorum.w, "W: copies that must acknowledge a write")
                    ->check(CLI::Range(1u, kMaxReplicas))
                    ->capture_default_str();
  auto* r_opt = app.add_option("--r", quorum.r, "R: copies a read asks (the newest answer wins)")
                    ->check(CLI::Range(1u, kMaxReplicas))
                    ->capture_default_str();
  app.fallthrough();  // the quorum flags may follow the subcommand too
  app.add_option("--namespace", ns, "Namespace the keys live in")->capture_default_str();
  app.add_option("--cluster-id", cluster_id, "Cluster id to expect")
      ->envname("RINGSTORE_CLUSTER_ID")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s, "Seconds to wait for each request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  std::string tls_dir;
  app.add_option("--tls-dir", tls_dir,
                 "Connect with TLS: DIR holds ca.crt and this client's tls.crt and tls.key (`ringstore cert issue "
                 "client`)")
      ->envname("RINGSTORE_TLS_DIR");

  std::string key, file;
  auto* put = app.add_subcommand("put", "Store FILE (or stdin) as the value of KEY");
  put->add_option("KEY", key, "Object key")->required();
  put->add_option("FILE", file, "Input file, - for stdin")->default_val("-");
  auto* get = app.add_subcommand("get", "Write the value of KEY to FILE (or stdout)");
  get->add_option("KEY", key, "Object key")->required();
  get->add_option("FILE", file, "Output file, - for stdout; written atomically")->default_val("-");
  auto* rm = app.add_subcommand("rm", "Delete KEY (exit 1 if it does not exist)");
  rm->add_option("KEY", key, "Object key")->required();
  auto* stat = app.add_subcommand("stat", "Show KEY's id, size, checksum, timestamp and state");
  stat->add_option("KEY", key, "Object key")->required();
  uint32_t ring_replicas = 3;
  auto* ring = app.add_subcommand("ring", "Show every node: state, zone, address, share of the ring and of the replicas");
  ring->add_option("--replicas", ring_replicas, "Replicas per object, for the replica share")
      ->check(CLI::Range(1u, kMaxReplicas))
      ->capture_default_str();
  auto* status = app.add_subcommand("status", "Show the cluster's health: every member's state, reachability and view");
  BenchOptions bench_opts;
  auto* bench = app.add_subcommand("bench", "Measure throughput and latency against a node");
  AddBenchOptions(*bench, bench_opts);
  VolumeArgs volume_args;
  auto* volume = AddVolumeCommands(app, volume_args);
  FsArgs fs_args;
  auto* fs_cmd = AddFsCommands(app, fs_args);
  NodeArgs node_args;
  auto* node_cmd = AddNodeCommands(app, node_args);
  CertArgs cert_args;
  auto* cert = AddCertCommands(app, cert_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (cert->parsed()) {
    cert_args.command = cert_args.init_ca->parsed()        ? CertArgs::kInitCa
                        : cert_args.issue_node->parsed()   ? CertArgs::kIssueNode
                        : cert_args.issue_client->parsed() ? CertArgs::kIssueClient
                                                           : CertArgs::kShow;
    return RunCert(cert_args, cluster_id);
  }
  std::shared_ptr<TlsContext> tls;
  if (!tls_dir.empty()) {
    auto t = TlsContext::Load(tls_dir, cluster_id);
    if (!t.ok()) {
      std::cerr << "ringstore: " << t.status().message() << "\n";
      return kExitUsage;
    }
    tls = std::move(*t);
  }
  if (cluster.empty()) {
    std::cerr << "ringstore: no cluster given: use --cluster HOST:PORT or set RINGSTORE_CLUSTER\n";
    return kExitUsage;
  }
  auto seed_list = SplitAddresses(cluster);
  if (!seed_list.ok()) {
    std::cerr << "ringstore: " << seed_list.status().message() << "\n";
    return kExitUsage;
  }
  const std::vector<std::string> seeds = std::move(*seed_list);
  if (seeds.empty()) {
    std::cerr << "ringstore: --cluster names no node\n";
    return kExitUsage;
  }
  // W and R that were not given follow a smaller N down.
  if (w_opt->count() == 0) quorum.w = std::min(quorum.w, quorum.n);
  if (r_opt->count() == 0) quorum.r = std::min(quorum.r, quorum.n);
  if (!ring->parsed() && !status->parsed() && !node_cmd->parsed() && (quorum.w > quorum.n || quorum.r > quorum.n)) {
    std::cerr << "ringstore: need W <= N and R <= N (got N=" << quorum.n << " W=" << quorum.w << " R=" << quorum.r
              << ")\n";
    return kExitUsage;
  }

  ClientOptions co;
  co.cluster_id = cluster_id;
  co.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  co.connect_timeout = std::min<Clock::Duration>(co.request_timeout, std::chrono::seconds(5));

  if (bench->parsed()) return RunBench(seeds, co, quorum, bench_opts, tls);
  if (fs_cmd->parsed()) return RunFs(seeds, cluster_id, timeout_s, fs_args, quorum, tls);

  // Read the input before connecting, so that a bad file is a usage error.
  std::string value;
  if (put->parsed()) {
    auto in = ReadInput(file);
    if (!in.ok()) return BadInput("put " + key, in.status());
    value = std::move(*in);
  }

  Session session(co, {}, tls);
  if (ring->parsed() || status->parsed() || node_cmd->parsed()) {
    if (Status s = session.AddClient(seeds.front()); !s.ok()) {
      std::cerr << "ringstore: cluster unreachable at " << seeds.front() << ": " << s.ToString() << "\n";
      return kExitUnreachable;
    }
    if (node_cmd->parsed()) {
      node_args.run_verify = node_args.verify->parsed();
      return RunNode(session, node_args);
    }
    return ring->parsed() ? RunRing(session, ring_replicas) : RunStatus(session);
  }
  if (Status s = session.ConnectCluster(seeds); !s.ok()) {
    std::cerr << "ringstore: cluster unreachable at " << cluster << ": " << s.ToString() << "\n";
    return kExitUnreachable;
  }
  if (volume->parsed()) return RunVolume(session, volume_args, quorum);
  ClusterClient& client = session.cluster();
  const Quorum q = FitQuorum(quorum, client.table().ring_nodes(),
                             n_opt->count() > 0 || w_opt->count() > 0 || r_opt->count() > 0);
  const ObjectKey id = ObjectKey::Of(ns, key);

  if (put->parsed()) {
    const size_t size = value.size();
    auto r = session.Wait<Ack>([&](auto cb) { client.Put(id, std::move(value), q, std::move(cb)); });
    if (!r.ok()) return Fail("put " + key, r.status());
    std::cout << "stored " << key << " (" << size << " bytes, id " << id.id.Hex().substr(0, 16) << ")\n";
    return kExitOk;
  }
  if (get->parsed()) {
    auto r = session.Wait<Record>([&](auto cb) { client.Get(id, q, std::move(cb)); });
    session.DrainRepairs();
    if (!r.ok()) return Fail("get " + key, r.status());
    if (r->meta.tombstone()) return Fail("get " + key, Status::NotFound("deleted"));
    if (Status s = WriteOutput(file, r->value); !s.ok()) return Fail("get " + key, s);
    return kExitOk;
  }
  if (rm->parsed()) {
    auto st = session.Wait<RecordMeta>([&](auto cb) { client.Stat(id, q, std::move(cb)); });
    if (!st.ok()) return Fail("rm " + key, st.status());
    if (st->tombstone()) return Fail("rm " + key, Status::NotFound("already deleted"));
    auto r = session.Wait<Ack>([&](auto cb) { client.Del(id, q, std::move(cb)); });
    if (!r.ok()) return Fail("rm " + key, r.status());
    std::cout << "removed " << key << "\n";
    return kExitOk;
  }
  if (stat->parsed()) {
    auto r = session.Wait<RecordMeta>([&](auto cb) { client.Stat(id, q, std::move(cb)); });
    if (!r.ok()) return Fail("stat " + key, r.status());
    std::cout << Describe(key, id.id, *r);
    return r->tombstone() ? kExitNotFound : kExitOk;
  }
  return kExitUsage;
}
