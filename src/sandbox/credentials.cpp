#include "sandbox/credentials.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace codecell::sandbox {

SysResult DropToSlot(uid_t uid, gid_t gid) {
  if (uid == 0 || gid == 0) return SysResult::Error(EINVAL, "slot uid/gid must not be 0");
  // The kernel answers EINVAL past its last capability; that ends the loop on any kernel version.
  for (int cap = 0; cap < 64; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;
      return SysResult::FromErrno("drop capability bounding set");
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return SysResult::FromErrno("clear ambient capabilities");
  }
  if (::setgroups(0, nullptr) != 0) return SysResult::FromErrno("setgroups");
  if (::setresgid(gid, gid, gid) != 0) return SysResult::FromErrno("setresgid");
  if (::setresuid(uid, uid, uid) != 0) return SysResult::FromErrno("setresuid");

  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return SysResult::FromErrno("capget");
  for (const auto& d : data) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
      return SysResult::Error(EPERM, "capabilities survived the uid drop");
    }
  }
  if (::getuid() != uid || ::geteuid() != uid || ::getgid() != gid) {
    return SysResult::Error(EPERM, "uid drop did not take effect");
  }
  return SysResult::Ok();
}

SysResult SetNoNewPrivs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return SysResult::FromErrno("no_new_privs");
  return SysResult::Ok();
}

}  // namespace codecell::sandbox
