#pragma once

#include <sys/resource.h>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

struct Rlimits {
  rlim_t processes = 64;                  // RLIMIT_NPROC, counted per slot uid
  rlim_t cpu_seconds = 61;                // RLIMIT_CPU (SIGXCPU, then SIGKILL one second later)
  rlim_t file_size_bytes = 512ull << 20;  // RLIMIT_FSIZE (EFBIG: Python ignores SIGXFSZ)
  rlim_t open_files = 1024;               // RLIMIT_NOFILE
  rlim_t address_space_bytes = 0;  // RLIMIT_AS; 0 = unlimited (used only without a memory cgroup)
};

// Post-fork: apply every limit (soft = hard, core dumps off).
SysResult ApplyRlimits(const Rlimits& limits);

}  // namespace codecell::sandbox
