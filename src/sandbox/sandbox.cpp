#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "sandbox/cmdline.h"
#include "sandbox/credentials.h"
#include "sandbox/fds.h"
#include "sandbox/namespaces.h"

namespace codecell::sandbox {
namespace {

constexpr size_t kChildStackBytes = 1 << 20;

// Pointers the child reads; built before clone so that the child allocates nothing.
struct LaunchContext {
  const SandboxSpec* spec;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int report_fd;
};

[[noreturn]] void FailSetup(int fd, const SysResult& r) {
  WriteReport(fd, ReportRecord::kSetupFailed, r.err, 0, r.what);
  ::_exit(126);
}

SysResult JoinCgroups(const std::vector<int>& procs_fds) {
  for (int fd : procs_fds) {
    // "0" names the writer itself; every later descendant inherits the cgroup.
    if (::write(fd, "0", 1) != 1) return SysResult::FromErrno("join cgroup");
  }
  return SysResult::Ok();
}

SysResult ArrangeStdio(int stdout_fd, int stderr_fd, int report_fd, int display_fd) {
  // The report and display pipes may sit on each other's target (a warm child parks its report
  // pipe on 4): lift both above every target first. The copies go with close_range.
  constexpr int kAboveTargets = kDisplayFd + 1;
  int report_high = ::fcntl(report_fd, F_DUPFD_CLOEXEC, kAboveTargets);
  if (report_high < 0) return SysResult::FromErrno("fcntl(F_DUPFD) report pipe");
  int display_high = -1;
  if (display_fd >= 0) {
    display_high = ::fcntl(display_fd, F_DUPFD_CLOEXEC, kAboveTargets);
    if (display_high < 0) return SysResult::FromErrno("fcntl(F_DUPFD) display pipe");
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return SysResult::FromErrno("open /dev/null");
  // The parent keeps 0-2 open, so every source here is >= 3; 3 and 4 are overwritten last, after
  // any source sitting on them has been copied.
  SysResult r = MoveFd(null_fd, 0, false);
  if (r.ok()) r = MoveFd(stdout_fd, 1, false);
  if (r.ok()) r = MoveFd(stderr_fd, 2, false);
  if (r.ok()) r = MoveFd(report_high, kReportFd, true);
  if (r.ok() && display_high >= 0) r = MoveFd(display_high, kDisplayFd, false);
  if (r.ok() && display_high < 0) ::close(kDisplayFd);  // whatever sat there is not ours to keep
  return r;
}

// pid 1 of the sandbox: start the interpreter, reap every orphan, and exit with the interpreter.
[[noreturn]] void RunInit(const LaunchContext& ctx) {
  // A raw clone, not fork(): glibc's fork takes malloc and stdio locks, which a thread of a
  // multithreaded parent may have held at clone time.
  long child = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (child < 0) {
    WriteReport(kReportFd, ReportRecord::kSetupFailed, errno, 0, "fork interpreter");
    ::_exit(126);
  }
  if (child == 0) {
    ::execve(ctx.argv[0], ctx.argv.data(), ctx.envp.data());
    WriteReport(kReportFd, ReportRecord::kExecFailed, errno, 0, "execve interpreter");
    ::_exit(127);
  }
  // The init keeps no end of the output pipes, so they reach EOF once the tree is gone.
  ::close(0);
  ::close(1);
  ::close(2);
  ::close(kDisplayFd);
  for (;;) {
    int status = 0;
    struct rusage usage {};
    pid_t pid = ::wait4(-1, &status, 0, &usage);
    if (pid < 0 && errno == EINTR) continue;
    if (pid == child || pid < 0) {
      WriteReport(kReportFd, ReportRecord::kExited, 0, pid == child ? status : 0,
                  pid == child ? "exited" : "lost the interpreter",
                  pid == child ? &usage : nullptr);
      // Returning from pid 1 makes the kernel SIGKILL everything left in the namespace.
      ::_exit(0);
    }
  }
}

int SandboxChildMain(void* arg) {
  const LaunchContext& ctx = *static_cast<const LaunchContext*>(arg);
  int report = ctx.report_fd;
  SysResult r = Confine(*ctx.spec, {.report_fd = ctx.report_fd}, report);
  if (!r.ok()) FailSetup(report, r);
  RunInit(ctx);
}

}  // namespace

SysResult ResetSignals(bool handlers_too) {
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return SysResult::FromErrno("sigprocmask");
  if (!handlers_too) return SysResult::Ok();
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::signal(sig, SIG_DFL);  // fails harmlessly for the numbers glibc reserves
  }
  return SysResult::Ok();
}

void WriteReport(int fd, uint32_t kind, int err, int wait_status, const char* step,
                 const struct rusage* usage) {
  ReportRecord record;
  record.kind = kind;
  record.err = err;
  record.wait_status = wait_status;
  if (usage != nullptr) {
    record.cpu_usec =
        static_cast<uint64_t>(usage->ru_utime.tv_sec + usage->ru_stime.tv_sec) * 1000000u +
        static_cast<uint64_t>(usage->ru_utime.tv_usec + usage->ru_stime.tv_usec);
    record.max_rss_kb = static_cast<uint32_t>(usage->ru_maxrss);
  }
  std::strncpy(record.step, step, sizeof record.step - 1);
  ssize_t ignored = ::write(fd, &record, sizeof record);
  (void)ignored;
}

SysResult Confine(const SandboxSpec& spec, const ConfineContext& context, int& report_fd) {
  report_fd = context.report_fd;
  SysResult r;
  if (!(r = ResetSignals(context.reset_signal_handlers)).ok()) return r;
  ScrubProcessStrings();
  if (!(r = JoinCgroups(spec.cgroup_procs_fds)).ok()) return r;
  if (!(r = EnterNewCgroupNamespace()).ok()) return r;
  if (::setsid() < 0) return SysResult::FromErrno("setsid");
  if (context.mount_ns_fd >= 0 && !(r = EnterMountNamespaceCopy(context.mount_ns_fd)).ok()) {
    return r;
  }
  if (!(r = BuildRootfsAndPivot(spec.rootfs)).ok()) return r;
  if (!(r = SetSandboxHostname(spec.hostname.c_str())).ok()) return r;
  if (!(r = DropToSlot(spec.uid, spec.gid)).ok()) return r;
  // A credential change clears the parent-death signal: set it again, so that nothing of the
  // sandbox outlives its supervisor (the helper or the zygote).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return SysResult::FromErrno("PR_SET_PDEATHSIG");
  if (context.dumpable && ::prctl(PR_SET_DUMPABLE, 1) != 0) {
    return SysResult::FromErrno("PR_SET_DUMPABLE");
  }
  if (!(r = ApplyRlimits(spec.rlimits)).ok()) return r;
  if (!(r = ArrangeStdio(spec.stdout_fd, spec.stderr_fd, report_fd, spec.display_fd)).ok()) {
    return r;
  }
  report_fd = kReportFd;
  if (!(r = CloseFdsFrom(kDisplayFd + 1)).ok()) return r;
  if (!(r = SetNoNewPrivs()).ok()) return r;
  return InstallSeccomp(*spec.seccomp);
}

void SandboxProcess::Kill() const {
  if (pidfd.valid()) {
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  } else if (pid > 0) {
    ::kill(pid, SIGKILL);
  }
}

Result<SandboxProcess> LaunchSandbox(const SandboxSpec& spec) {
  using R = Result<SandboxProcess>;
  if (spec.seccomp == nullptr || spec.argv.empty() || spec.stdout_fd < 3 || spec.stderr_fd < 3) {
    return R::Fail("LaunchSandbox: incomplete spec (seccomp, argv and output pipes are required)");
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return R::Fail(std::string("pipe2: ") + std::strerror(errno));
  }
  UniqueFd report_read(pipe_fds[0]), report_write(pipe_fds[1]);

  LaunchContext ctx{&spec, {}, {}, report_write.get()};
  for (const auto& a : spec.argv) ctx.argv.push_back(const_cast<char*>(a.c_str()));
  ctx.argv.push_back(nullptr);
  for (const auto& e : spec.env) ctx.envp.push_back(const_cast<char*>(e.c_str()));
  ctx.envp.push_back(nullptr);

  void* stack = ::mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return R::Fail(std::string("mmap stack: ") + std::strerror(errno));
  pid_t pid =
      CloneIntoNamespaces(SandboxChildMain, &ctx, static_cast<char*>(stack) + kChildStackBytes,
                          spec.host_network ? kCloneNamespaces & ~CLONE_NEWNET : kCloneNamespaces);
  // The child has its own copy of the mapping; the parent's can go.
  ::munmap(stack, kChildStackBytes);
  if (pid < 0) return R::Fail(std::string("clone: ") + std::strerror(-pid));
  SandboxProcess process;
  process.pid = pid;
  process.report = std::move(report_read);
  return process;
}

bool ConsumeReports(int report_fd, SandboxReport& report) {
  ReportRecord record;
  for (;;) {
    ssize_t n = ::read(report_fd, &record, sizeof record);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0) return false;
    if (static_cast<size_t>(n) != sizeof record) return false;
    record.step[sizeof record.step - 1] = '\0';
    std::string detail = std::string(record.step) + ": " + std::strerror(record.err);
    switch (record.kind) {
      case ReportRecord::kSetupFailed:
        report.setup_error = detail;
        break;
      case ReportRecord::kExecFailed:
        report.exec_error = detail;
        break;
      case ReportRecord::kExited:
        report.exited = true;
        report.wait_status = record.wait_status;
        report.cpu_usec = record.cpu_usec;
        report.max_rss_kb = record.max_rss_kb;
        break;
      default:
        report.setup_error = "unknown report record";
        break;
    }
  }
}

}  // namespace codecell::sandbox
