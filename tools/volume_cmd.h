// `ringstore volume create|ls|rm|resize`: block volumes for ringstore-block (see
// blockgateway/volume.h for what a volume is in the DHT).
// Thread-safety: single-threaded.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "tools/session.h"

namespace ringstore {

struct VolumeArgs {
  std::string name, size, chunk_size = "256K";
  bool force = false;  // rm, resize: even while a gateway holds a lease
  double wait_s = 10;  // rm, resize: how long to wait for leases to go
  CLI::App* create = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* resize = nullptr;
};

// Adds the `volume` subcommand and its four subcommands to app.
CLI::App* AddVolumeCommands(CLI::App& app, VolumeArgs& args);

// Runs the parsed volume subcommand. quorum is the N/W/R a new volume keeps (fitted to the
// ring when the gateway opens it). Returns a process exit status.
int RunVolume(Session& session, const VolumeArgs& args, Quorum quorum);

}  // namespace ringstore
