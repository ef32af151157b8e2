// The post-fork steps, each run in a forked child so that the test process keeps its privileges.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <functional>

#include "sandbox/credentials.h"
#include "sandbox/fds.h"
#include "sandbox/rlimits.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/slots.h"
#include "test_support.h"

namespace codecell::sandbox {
namespace {

// Runs `body` in a child; the child's exit code is the number of the first failed check (0 = all
// passed), so a failure names its line in the body.
int InChild(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

const SeccompProgram& Program() {
  static SeccompProgram program = [] {
    auto built = BuildSandboxSeccompProgram();
    if (!built) std::abort();
    return built.value();
  }();
  return program;
}

TEST(Seccomp, PolicyCompilesAndListsTheRequiredDenials) {
  const auto& denied = Program().denied_syscalls;
  for (const char* name : {"ptrace",
                           "process_vm_readv",
                           "keyctl",
                           "bpf",
                           "perf_event_open",
                           "io_uring_setup",
                           "userfaultfd",
                           "mount",
                           "pivot_root",
                           "unshare",
                           "setns",
                           "clone3",
                           "kexec_load",
                           "init_module",
                           "reboot",
                           "swapon",
                           "acct",
                           "quotactl",
                           "clock_settime",
                           "socket"}) {
    EXPECT_NE(std::find(denied.begin(), denied.end(), name), denied.end()) << name;
  }
  EXPECT_GT(Program().instructions.size(), 20u);
}

TEST(Seccomp, DeniedCallsAnswerTheirErrnoAndAllowedOnesWork) {
  int failed = InChild([] {
    if (!SetNoNewPrivs().ok()) return 1;
    if (!InstallSeccomp(Program()).ok()) return 2;
    errno = 0;
    if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) return 3;
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != -1 || errno != EPERM) return 4;
    if (::socket(AF_INET, SOCK_STREAM, 0) != -1 || errno != EAFNOSUPPORT) return 5;
    if (::socket(AF_NETLINK, SOCK_RAW, 0) != -1 || errno != EAFNOSUPPORT) return 6;
    int unix_socket = ::socket(AF_UNIX, SOCK_STREAM, 0);  // the legitimate twin
    if (unix_socket < 0) return 7;
    if (::unshare(CLONE_NEWUSER) != -1 || errno != EPERM) return 8;
    if (::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0) != -1 || errno != EPERM) {
      return 9;
    }
    long child = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);  // a plain fork still works
    if (child == 0) ::_exit(0);
    if (child < 0) return 10;
    ::waitpid(static_cast<pid_t>(child), nullptr, 0);
    if (::syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM) return 11;
    if (::syscall(SYS_bpf, 0, nullptr, 0) != -1 || errno != EPERM) return 12;
    return 0;
  });
  EXPECT_EQ(failed, 0);
}

TEST(Seccomp, InstallWithoutNoNewPrivsIsRefusedForTheUnprivileged) {
  REQUIRE_ROOT();
  int failed = InChild([] {
    if (!DropToSlot(900999, 900999).ok()) return 1;
    SysResult r = InstallSeccomp(Program());
    return r.err == EACCES ? 0 : 2;
  });
  EXPECT_EQ(failed, 0);
}

TEST(Credentials, DropToSlotLeavesNoCapabilities) {
  REQUIRE_ROOT();
  int failed = InChild([] {
    if (!DropToSlot(900998, 900998).ok()) return 1;
    if (::getuid() != 900998 || ::getegid() != 900998) return 2;
    // Back to root is impossible now, and the second drop meets EPERM in the bounding set.
    if (::setuid(0) == 0) return 3;
    SysResult again = DropToSlot(900997, 900997);
    if (again.ok() || again.err != EPERM) return 4;
    return 0;
  });
  EXPECT_EQ(failed, 0);
}

TEST(Credentials, RootSlotIsRejected) {
  SysResult r = DropToSlot(0, 0);
  EXPECT_EQ(r.err, EINVAL);
}

TEST(Rlimits, AppliedAndNotRaisableAgain) {
  REQUIRE_ROOT();
  int failed = InChild([] {
    Rlimits limits;
    limits.processes = 5;
    limits.open_files = 64;
    if (!DropToSlot(900996, 900996).ok()) return 1;
    if (!ApplyRlimits(limits).ok()) return 2;
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur != 64) return 3;
    limits.open_files = 4096;  // raising a hard limit needs CAP_SYS_RESOURCE
    SysResult r = ApplyRlimits(limits);
    if (r.ok() || r.err != EPERM) return 4;
    return 0;
  });
  EXPECT_EQ(failed, 0);
}

TEST(Fds, CloseFdsFromClosesEverythingAbove) {
  int failed = InChild([] {
    int a = ::open("/dev/null", O_RDONLY);
    int b = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (a < 3 || b < 3) return 1;
    if (!CloseFdsFrom(3).ok()) return 2;
    if (::fcntl(a, F_GETFD) != -1 || errno != EBADF) return 3;
    if (::fcntl(b, F_GETFD) != -1 || errno != EBADF) return 4;
    if (::fcntl(2, F_GETFD) < 0) return 5;  // below the bound stays open
    return 0;
  });
  EXPECT_EQ(failed, 0);
}

TEST(Fds, MoveFdReportsABadSource) {
  SysResult r = MoveFd(12345, 12346, false);
  EXPECT_EQ(r.err, EBADF);
}

TEST(Slots, ExclusiveAcrossHolders) {
  codecell::testing::TempDir dir;
  SlotConfig config{dir.path() + "/slots", 900000, 2};
  auto a = SlotLease::Acquire(config);
  auto b = SlotLease::Acquire(config);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->uid(), b->uid());
  auto c = SlotLease::Acquire(config);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("busy"), std::string::npos);
  { SlotLease released = std::move(a.value()); }
  EXPECT_TRUE(SlotLease::Acquire(config));
}

}  // namespace
}  // namespace codecell::sandbox
