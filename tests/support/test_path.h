// A temporary path of the running test's own: PREFIX-PID-TESTNAME under the system's temp
// directory (a parameterized test's '/' becomes '_'), so that tests running at once, in
// one binary or several, never share files.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace ringstore::testing {

inline std::filesystem::path TestPath(std::string_view prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (auto& c : name) {
    if (c == '/') c = '_';
  }
  return std::filesystem::temp_directory_path() /
         (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + name);
}

}  // namespace ringstore::testing
