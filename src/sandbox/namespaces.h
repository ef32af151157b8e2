#pragma once

#include <sched.h>
#include <sys/types.h>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Namespaces the sandbox child is cloned into. The cgroup namespace is entered separately, after
// the child has joined its execution cgroup, so that the namespace's root is that cgroup.
inline constexpr int kCloneNamespaces =
    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

// A zygote's warm child is cloned into these; it copies a mount namespace (the supervisor's, where
// the workspace is mounted) only when it is handed an execution. See EnterMountNamespaceCopy.
inline constexpr int kWarmChildNamespaces =
    CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

// Every CLONE_NEW* flag; seccomp refuses clone() with any of them.
inline constexpr unsigned long kAllNamespaceFlags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, 0x00000080 /* CLONE_NEWTIME */};

// clone(2) into `flags` namespaces (kCloneNamespaces, or that without CLONE_NEWNET for the package
// installer, which must reach its index), running `fn(arg)` on `stack` in the child. Parent side.
// Returns the child's pid (in the caller's pid namespace) or -errno.
pid_t CloneIntoNamespaces(int (*fn)(void*), void* arg, void* stack_top, int flags);

// fork(2)-like raw clone into `flags` namespaces: returns 0 in the child, the child's pid in the
// parent, or -errno. No glibc fork handlers run, so the caller must be single-threaded (the
// zygote checks). glibc's cached TID of the child's main thread keeps the parent's value; glibc
// uses the kernel's gettid for raise() and abort(), so what reads the stale copy is only mutex
// ownership, which stays self-consistent.
pid_t ForkIntoNamespaces(int flags);

// Post-fork steps (allocate nothing).
// setns into `mount_ns_fd`, then unshare(CLONE_NEWNS): a private copy of that namespace; nothing
// mounted afterwards reaches the original.
SysResult EnterMountNamespaceCopy(int mount_ns_fd);
SysResult EnterNewCgroupNamespace();
SysResult SetSandboxHostname(const char* hostname);

}  // namespace codecell::sandbox
