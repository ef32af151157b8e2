#include "sandbox/namespaces.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

namespace codecell::sandbox {

pid_t CloneIntoNamespaces(int (*fn)(void*), void* arg, void* stack_top, int flags) {
  pid_t pid = ::clone(fn, stack_top, flags | SIGCHLD, arg);
  return pid < 0 ? -errno : pid;
}

pid_t ForkIntoNamespaces(int flags) {
  long pid = ::syscall(SYS_clone, static_cast<unsigned long>(flags) | SIGCHLD, 0, 0, 0, 0);
  return pid < 0 ? -errno : static_cast<pid_t>(pid);
}

SysResult EnterMountNamespaceCopy(int mount_ns_fd) {
  if (::setns(mount_ns_fd, CLONE_NEWNS) != 0) return SysResult::FromErrno("setns(mount)");
  if (::unshare(CLONE_NEWNS) != 0) return SysResult::FromErrno("unshare(CLONE_NEWNS)");
  return SysResult::Ok();
}

SysResult EnterNewCgroupNamespace() {
  if (::unshare(CLONE_NEWCGROUP) != 0) return SysResult::FromErrno("unshare(CLONE_NEWCGROUP)");
  return SysResult::Ok();
}

SysResult SetSandboxHostname(const char* hostname) {
  if (::sethostname(hostname, std::strlen(hostname)) != 0) {
    return SysResult::FromErrno("sethostname");
  }
  if (::setdomainname(hostname, std::strlen(hostname)) != 0) {
    return SysResult::FromErrno("setdomainname");
  }
  return SysResult::Ok();
}

}  // namespace codecell::sandbox
