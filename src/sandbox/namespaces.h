#pragma once

#include <sched.h>
#include <sys/types.h>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Namespaces the sandbox child is cloned into. The cgroup namespace is entered separately, after
// the child has joined its execution cgroup, so that the namespace's root is that cgroup.
inline constexpr int kCloneNamespaces =
    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

// Every CLONE_NEW* flag; seccomp refuses clone() with any of them.
inline constexpr unsigned long kAllNamespaceFlags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, 0x00000080 /* CLONE_NEWTIME */};

// clone(2) into fresh namespaces, running `fn(arg)` on `stack` in the child. Parent side.
// Returns the child's pid (in the caller's pid namespace) or -errno.
pid_t CloneIntoNamespaces(int (*fn)(void*), void* arg, void* stack_top);

// Post-fork steps (allocate nothing).
SysResult EnterNewCgroupNamespace();
SysResult SetSandboxHostname(const char* hostname);

}  // namespace codecell::sandbox
