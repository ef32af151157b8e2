// pid 1 of a warm child's pid namespace: a separate, statically linked program (embedded in the
// codecell binary and exec'd from a memfd), because the zygote's own image is ~140 MiB of CPython
// whose copy would cost milliseconds to fork and to tear down for a process that only waits.
//
// Started by the zygote right after unshare(CLONE_NEWPID), so it is pid 1; the zygote then forks
// the interpreter into the same pid namespace (pid 2), which joins this process's network, IPC and
// UTS namespaces. In order: fresh network, IPC, UTS and mount namespaces → an empty read-only root
// (pivot_root) → nobody's uid and gid, no capabilities, no_new_privs → report ready on fd 1 → reap
// orphans until the zygote goes away (end of file on fd 0) or kills us, which ends the namespace.
//
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/warm_init.h"

namespace {

constexpr uid_t kNobody = 65534;

int Fail(int code) { return code; }

}  // namespace

int main() {
  const char* root = codecell::sandbox::kWarmInitRoot;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS) != 0) return Fail(3);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return Fail(4);
  if (::mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") != 0) {
    return Fail(5);
  }
  if (::chdir(root) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 ||
      ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0) {
    return Fail(6);
  }
  ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr);
  if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
      ::setresuid(kNobody, kNobody, kNobody) != 0 ||
      ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return Fail(7);
  }
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &child, nullptr);
  int signal_fd = ::signalfd(-1, &child, SFD_CLOEXEC);
  if (signal_fd < 0) return Fail(8);
  if (::write(1, "r", 1) != 1) return Fail(9);
  ::close(1);
  ::close(2);
  pollfd fds[2] = {{0, POLLIN, 0}, {signal_fd, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[0].revents != 0) return 0;  // the zygote is gone
    signalfd_siginfo info;
    if (::read(signal_fd, &info, sizeof info) < 0) continue;
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
}
