#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// A compiled BPF program. Built once by the parent with libseccomp (which allocates), installed by
// the child with one syscall.
struct SeccompProgram {
  std::vector<sock_filter> instructions;
  std::vector<std::string> denied_syscalls;  // for docs and tests
};

// The sandbox policy: allow by default; deny what a tenant never needs and what the established
// sandboxes agree on (see docs/sandbox.md). Denied calls answer EPERM, clone3 ENOSYS (so libc falls
// back to clone, whose flags seccomp can read), non-AF_UNIX sockets EAFNOSUPPORT; a syscall of a
// non-native architecture (i386 int 0x80, x32) kills the process. `allow_inet_sockets`: the package
// installer's variant, whose pip reaches the index over IPv4/IPv6 (other families stay denied).
Result<SeccompProgram> BuildSandboxSeccompProgram(bool allow_inet_sockets = false);

// Post-fork: install the program. Requires no_new_privs (or CAP_SYS_ADMIN).
SysResult InstallSeccomp(const SeccompProgram& program);

}  // namespace codecell::sandbox
