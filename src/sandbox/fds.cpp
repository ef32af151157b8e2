#include "sandbox/fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace codecell::sandbox {

SysResult CloseFdsFrom(int first) {
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0u, 0u) == 0) {
    return SysResult::Ok();
  }
  if (errno != ENOSYS) return SysResult::FromErrno("close_range");
  // Kernels before 5.9: close one by one up to the hard limit.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return SysResult::FromErrno("getrlimit");
  rlim_t last = limit.rlim_max == RLIM_INFINITY ? 65536 : limit.rlim_max;
  for (rlim_t fd = static_cast<rlim_t>(first); fd < last; ++fd) ::close(static_cast<int>(fd));
  return SysResult::Ok();
}

SysResult MoveFd(int source, int target, bool close_on_exec) {
  if (source != target && ::dup2(source, target) < 0) return SysResult::FromErrno("dup2");
  if (::fcntl(target, F_SETFD, close_on_exec ? FD_CLOEXEC : 0) != 0) {
    return SysResult::FromErrno("fcntl(F_SETFD)");
  }
  return SysResult::Ok();
}

}  // namespace codecell::sandbox
