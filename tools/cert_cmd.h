// `ringstore cert`: the cluster's certificate authority, with the OpenSSL API.
//  - init-ca DIR writes DIR/ca.crt and DIR/ca.key: a self-signed CA for --cluster-id.
//  - issue node NAME and issue client NAME --role ROLE write OUT/ca.crt, OUT/tls.crt and
//    OUT/tls.key: a --tls-dir for that party (node/runtime/tls.h), signed by the CA in --ca.
//  - show DIR|FILE prints a certificate's identity and validity.
// Keys are ECDSA P-256; certificates are signed with SHA-256. Every file is written with
// mode 0600, and no existing file is overwritten unless --force is given.
// Thread-safety: single-threaded.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace ringstore {

struct CertArgs {
  std::string dir;      // init-ca: where the CA goes; show: a --tls-dir or a certificate file
  std::string ca_dir;   // issue: the CA's directory
  std::string out_dir;  // issue: the party's --tls-dir
  std::string name;     // issue: the node's or client's name
  std::string role;     // issue client: read-only, read-write or admin
  std::string ns;       // issue client: the one namespace it may use; empty: any
  std::vector<std::string> hosts;  // issue: DNS names or IP addresses this party serves TLS as
  int days = 0;         // validity; 0: 3650 for a CA, 825 for a party
  int backdate_days = 0;
  bool force = false;
  CLI::App* init_ca = nullptr;
  CLI::App* issue_node = nullptr;
  CLI::App* issue_client = nullptr;
  CLI::App* show = nullptr;
  enum Command { kInitCa, kIssueNode, kIssueClient, kShow };
  Command command = kShow;  // which one was given (set by the caller after parsing)
};

// Defined in tools/ringstore_main.cc, the file that includes CLI11.
CLI::App* AddCertCommands(CLI::App& app, CertArgs& args);

// Runs the parsed subcommand; returns a process exit status (0, 2 for bad input, 4 for
// other errors), with one clear line on stderr on failure.
int RunCert(const CertArgs& args, const std::string& cluster_id);

}  // namespace ringstore
