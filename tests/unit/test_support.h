#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace codecell::testing {

// Tests that need root or a kernel feature: under CI (CI=true) a missing requirement is a failure,
// elsewhere the test is skipped with the reason printed.
#define REQUIRE_OR_SKIP(condition, reason)                                \
  do {                                                                    \
    if (!(condition)) {                                                   \
      const char* ci = std::getenv("CI");                                 \
      if (ci != nullptr && std::string(ci) == "true") FAIL() << (reason); \
      GTEST_SKIP() << (reason);                                           \
    }                                                                     \
  } while (0)

#define REQUIRE_ROOT() REQUIRE_OR_SKIP(::geteuid() == 0, "needs root")

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "codecell-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace codecell::testing
