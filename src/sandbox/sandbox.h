#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/mounts.h"
#include "sandbox/rlimits.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::sandbox {

// Everything one sandboxed process needs; prepared by the parent, read-only in the child.
struct SandboxSpec {
  RootfsPlan rootfs;
  std::vector<std::string> argv;  // argv[0] is an absolute path inside the sandbox
  std::vector<std::string> env;   // the whole environment, built from scratch
  std::string hostname = "codecell";
  uid_t uid = 0;
  gid_t gid = 0;
  Rlimits rlimits;
  std::vector<int> cgroup_procs_fds;  // borrowed; the child joins each cgroup first
  int stdout_fd = -1;                 // borrowed write ends; the caller closes its copies
  int stderr_fd = -1;
  // Borrowed write end of the display pipe (notebook output, exec/notebook_output.h), placed at
  // kDisplayFd for the interpreter; -1: none. A pipe the host only reads, with a byte bound, so
  // handing it to the tenant gives it nothing it did not have: a way to write into its own result.
  int display_fd = -1;
  const SeccompProgram* seccomp = nullptr;
  // Only the package installer: pip must reach its index. Cold launches only (a warm child's
  // network namespace is its init's).
  bool host_network = false;
};

// Fixed-size records the sandbox writes on its report pipe (each below PIPE_BUF, so atomic).
struct ReportRecord {
  enum Kind : uint32_t { kSetupFailed = 1, kExecFailed = 2, kExited = 3 };
  uint32_t kind = 0;
  int32_t err = 0;
  int32_t wait_status = 0;
  uint32_t max_rss_kb = 0;  // of the interpreter, when the writer knows it (else 0)
  uint64_t cpu_usec = 0;    // user + system time of the interpreter (kExited), when known
  char step[104] = {};
};
static_assert(sizeof(ReportRecord) <= 128);

// What the parent learnt from the report pipe.
struct SandboxReport {
  std::string setup_error;  // non-empty: the sandbox could not be built (a codecell problem)
  std::string exec_error;   // non-empty: the interpreter could not be started
  bool exited = false;      // the user's process ended and `wait_status` is its status
  int wait_status = 0;
  uint64_t cpu_usec = 0, max_rss_kb = 0;  // 0 when the reporter did not know them
};

struct SandboxProcess {
  pid_t pid = -1;   // the sandbox's init (pid 1 inside); killing it ends every process inside
  UniqueFd report;  // read end of the report pipe
  // Set when the init is not our child (a warm child of the zygote): signals go through this
  // pidfd (no pid-reuse race), it turns readable once the init is gone, and the zygote reaps it.
  UniqueFd pidfd;

  bool is_our_child() const { return !pidfd.valid(); }
  void Kill() const;
};

// How the current process enters the sandbox (see Confine).
struct ConfineContext {
  int report_fd = -1;  // write end of the report pipe; moved to fd 3
  // -1: the process was cloned with CLONE_NEWNS. Otherwise a mount namespace to copy (setns, then
  // unshare): a warm child still shares the zygote's namespace, while the workspace's mounts live
  // in the supervisor's.
  int mount_ns_fd = -1;
  // A cold sandbox resets every handler before exec; a warm child keeps the ones CPython set up
  // (the same as a fresh `python3`: SIGINT raises KeyboardInterrupt, SIGPIPE and SIGXFSZ ignored).
  bool reset_signal_handlers = true;
  // Changing uid makes a process non-dumpable (its /proc files root's); exec would make it
  // dumpable again. A warm child does not exec, so it asks for what a cold interpreter gets:
  // its own /proc/self/environ, mem and oom_score_adj. ptrace stays denied by seccomp.
  bool dumpable = false;
};

// The isolation steps, in this order: default signal mask → join cgroups → cgroup namespace → new
// session → mounts and pivot_root → hostname → slot uid → rlimits → stdio (0-2), the report
// pipe (3) and the display pipe (4) → close every other fd → no_new_privs → seccomp. Allocates
// nothing. `report_fd` follows the report pipe (it becomes 3), so that a failure can be reported on
// it.
SysResult Confine(const SandboxSpec& spec, const ConfineContext& context, int& report_fd);

inline constexpr int kReportFd = 3;
// The interpreter's end of the display pipe, when the spec has one (not close-on-exec: the runner
// makes it so once it holds it, so that the processes the code starts do not inherit it).
inline constexpr int kDisplayFd = 4;

// Empties the signal mask and, with `handlers_too`, sets every disposition to SIG_DFL. A parent
// may block signals (the service blocks SIGTERM to read it from a signalfd; the zygote SIGCHLD)
// or ignore them (SIGPIPE, or nohup's SIGHUP); both would reach the tenant's interpreter.
// Allocates nothing.
SysResult ResetSignals(bool handlers_too);

// Post-fork: one record on the report pipe (async-signal-safe). `usage` (optional) fills the
// interpreter's CPU time and peak RSS.
void WriteReport(int fd, uint32_t kind, int err, int wait_status, const char* step,
                 const struct rusage* usage = nullptr);

// Clones the sandbox child into fresh namespaces; it runs Confine, then, as pid 1 of its pid
// namespace, forks and execs the interpreter and reaps until the interpreter exits, which ends the
// namespace and every process in it.
Result<SandboxProcess> LaunchSandbox(const SandboxSpec& spec);

// Reads whatever records are available; returns false at end of file.
bool ConsumeReports(int report_fd, SandboxReport& report);

}  // namespace codecell::sandbox
