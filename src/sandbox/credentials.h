#pragma once

#include <sys/types.h>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Post-fork: empty the capability bounding and ambient sets, then switch every uid and gid to the
// slot's. Leaving uid 0 clears the permitted and effective sets; the result is verified.
SysResult DropToSlot(uid_t uid, gid_t gid);

// Post-fork: execve can never grant privileges again (setuid bits, file capabilities).
SysResult SetNoNewPrivs();

}  // namespace codecell::sandbox
