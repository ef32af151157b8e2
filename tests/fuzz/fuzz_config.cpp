// The TOML config file: whatever it holds, LoadServiceConfig answers a config or a message naming
// the problem, never a crash or an exception.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "api/config.h"
#include "fuzz_check.h"
#include "sandbox/file_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char dir[] = "/tmp/codecell-fuzz-config-XXXXXX";
    codecell::fuzz::Check(::mkdtemp(dir) != nullptr, "a temporary directory");
    return std::string(dir) + "/config.toml";
  }();
  codecell::fuzz::Check(
      codecell::sandbox::WriteStringToFile(path, codecell::fuzz::Bytes(data, size)).ok(),
      "the config file is written");
  codecell::api::ConfigOverrides flags;
  flags.config_file = path;
  auto config = codecell::api::LoadServiceConfig(flags);
  codecell::fuzz::Check(config.ok() || !config.error().empty(), "a failure says why");
  return 0;
}
