#include "sandbox/namespaces.h"

#include <csignal>
#include <cstring>

namespace codecell::sandbox {

pid_t CloneIntoNamespaces(int (*fn)(void*), void* arg, void* stack_top) {
  pid_t pid = ::clone(fn, stack_top, kCloneNamespaces | SIGCHLD, arg);
  return pid < 0 ? -errno : pid;
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
