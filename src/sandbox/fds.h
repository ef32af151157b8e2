#pragma once

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Post-fork: close every descriptor >= first. Without exec, O_CLOEXEC protects nothing, and a
// leaked host directory fd is an escape (runc CVE-2024-21626).
SysResult CloseFdsFrom(int first);

// Post-fork: make `target` a copy of `source` (a no-op when equal), with or without close-on-exec.
SysResult MoveFd(int source, int target, bool close_on_exec);

}  // namespace codecell::sandbox
