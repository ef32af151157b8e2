#pragma once

#include <string_view>

#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::sandbox {

// Where the warm init mounts its empty root (in its own mount namespace); created by the zygote.
inline constexpr char kWarmInitRoot[] = "/run/codecell/warm-init-root";

// The statically linked pid-1 program of warm children (warm_init_program.cpp), embedded in this
// binary at build time.
std::string_view WarmInitImage();

// A sealed, close-on-exec memfd holding the image, to exec as /proc/self/fd/N.
Result<UniqueFd> WarmInitMemfd();

}  // namespace codecell::sandbox
