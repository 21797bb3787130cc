// The disk under a directory, as a node reports it (DISK_USAGE): statvfs sizes, and an id
// made of the host name and the filesystem id, so that nodes sharing a disk count it once.
// Thread-safety: pure function (one statvfs call).
#pragma once

#include <string>

#include "dht/messages.h"

namespace ringstore {

DiskUsage DiskUsageOfDir(const std::string& dir);

}  // namespace ringstore
