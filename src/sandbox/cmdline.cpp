#include "sandbox/cmdline.h"

#include <algorithm>
#include <cstring>

namespace codecell::sandbox {
namespace {

char* args_begin = nullptr;
char* args_end = nullptr;
char* env_begin = nullptr;
char* env_end = nullptr;

}  // namespace

void RegisterProcessStrings(int argc, char** argv, char** envp) {
  if (argc > 0 && argv[0] != nullptr) {
    args_begin = argv[0];
    args_end = argv[argc - 1] + std::strlen(argv[argc - 1]) + 1;
  }
  if (envp != nullptr && envp[0] != nullptr) {
    int n = 0;
    while (envp[n] != nullptr) ++n;
    env_begin = envp[0];
    env_end = envp[n - 1] + std::strlen(envp[n - 1]) + 1;
  }
}

void ScrubProcessStrings() {
  static const char kName[] = "codecell-init";
  if (env_begin != nullptr && env_end > env_begin) {
    std::memset(env_begin, 0, static_cast<size_t>(env_end - env_begin));
  }
  if (args_begin != nullptr && args_end > args_begin) {
    size_t size = static_cast<size_t>(args_end - args_begin);
    std::memset(args_begin, 0, size);
    // The last byte stays NUL: the kernel then shows exactly this area as the command line.
    if (size > 1) std::memcpy(args_begin, kName, std::min(size - 1, sizeof kName - 1));
  }
}

}  // namespace codecell::sandbox
