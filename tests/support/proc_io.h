// This process's I/O counters from /proc/self/io, for tests that check how much a component
// wrote, or in how many calls, without wrapping its system calls. The counters cover every
// thread of the process, so a test reads them around work no other thread does meanwhile.
// Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace ringstore::testing {

// The counter named key ("wchar:", bytes passed to write calls; "syscw:", write calls), or -1
// where /proc/self/io cannot be read.
inline int64_t ProcIo(const std::string& key) {
  std::ifstream io("/proc/self/io");
  std::string k;
  int64_t value = 0;
  while (io >> k >> value) {
    if (k == key) return value;
  }
  return -1;
}

}  // namespace ringstore::testing
