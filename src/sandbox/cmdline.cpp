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

namespace {

void Fill(char* begin, char* end, const char* const* strings) {
  if (begin == nullptr || end <= begin) return;
  size_t size = static_cast<size_t>(end - begin);
  std::memset(begin, 0, size);
  size_t at = 0;
  for (; *strings != nullptr; ++strings) {
    size_t length = std::strlen(*strings);
    if (at + length + 1 >= size) break;  // keep the last byte NUL
    std::memcpy(begin + at, *strings, length);
    at += length + 1;
  }
}

}  // namespace

void SetProcessStrings(const char* const* argv, const char* const* envp) {
  Fill(args_begin, args_end, argv);
  Fill(env_begin, env_end, envp);
}

}  // namespace codecell::sandbox
