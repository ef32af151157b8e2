#pragma once

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
  const SeccompProgram* seccomp = nullptr;
};

// Fixed-size records the sandbox writes on its report pipe (each below PIPE_BUF, so atomic).
struct ReportRecord {
  enum Kind : uint32_t { kSetupFailed = 1, kExecFailed = 2, kExited = 3 };
  uint32_t kind = 0;
  int32_t err = 0;
  int32_t wait_status = 0;
  char step[116] = {};
};

// What the parent learnt from the report pipe.
struct SandboxReport {
  std::string setup_error;  // non-empty: the sandbox could not be built (a codecell problem)
  std::string exec_error;   // non-empty: the interpreter could not be started
  bool exited = false;      // the user's process ended and `wait_status` is its status
  int wait_status = 0;
};

struct SandboxProcess {
  pid_t pid = -1;   // the sandbox's init (pid 1 inside); killing it ends every process inside
  UniqueFd report;  // read end of the report pipe
};

// Clones the sandbox child. Inside, in this order: default signal mask and handlers → join cgroups
// → cgroup namespace → new session → mounts and pivot_root → hostname → slot uid → rlimits → stdio
// and closing every other fd → no_new_privs → seccomp; then the child, as pid 1 of its pid
// namespace, forks the interpreter and reaps until the interpreter exits, which ends the namespace
// and every process in it.
Result<SandboxProcess> LaunchSandbox(const SandboxSpec& spec);

// Reads whatever records are available; returns false at end of file.
bool ConsumeReports(int report_fd, SandboxReport& report);

}  // namespace codecell::sandbox
