// `ringstore fs create|ls|rm`: filesystems for ringstore-fs (see fsgateway/fs_layout.h for
// what a filesystem is in the DHT).
// Thread-safety: single-threaded.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "dht/cluster_client.h"
#include "fsgateway/fs_layout.h"
#include "node/runtime/tls.h"

namespace ringstore {

struct FsArgs {
  std::string name, chunk_size = "256K";
  uint32_t dir_buckets = fs::kDefaultDirBuckets;
  CLI::App* create = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* rm = nullptr;
};

// Adds the `fs` subcommand and its subcommands to app.
CLI::App* AddFsCommands(CLI::App& app, FsArgs& args);

// Runs the parsed fs subcommand against the cluster at seeds. quorum is the N/W/R a new
// filesystem keeps. Returns a process exit status.
int RunFs(const std::vector<std::string>& seeds, const std::string& cluster_id, double timeout_s, const FsArgs& args,
          Quorum quorum, std::shared_ptr<TlsContext> tls);

}  // namespace ringstore
