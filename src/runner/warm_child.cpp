// Python.h first, as CPython asks.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
// clang-format off
#include "runner/warm_child.h"
// clang-format on

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "sandbox/cmdline.h"
#include "sandbox/fd_passing.h"
#include "sandbox/fds.h"
#include "sandbox/file_io.h"
#include "sandbox/sandbox.h"
#include "sandbox/spec_wire.h"
#include "sandbox/unique_fd.h"

namespace codecell::runner {
namespace {

using nlohmann::json;
using sandbox::UniqueFd;

[[noreturn]] void ChildFail(int report_fd, const char* step, int err) {
  sandbox::WriteReport(report_fd, sandbox::ReportRecord::kSetupFailed, err, 0, step);
  ::_exit(126);
}

uint64_t VirtualSizeBytes() {
  auto text = sandbox::ReadFileToString("/proc/self/statm");
  if (!text) return 0;
  return std::strtoull(text->c_str(), nullptr, 10) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

[[noreturn]] void WarmChildMain(const ChildSetup& setup) {
  // Python's own fork hooks first: they run code of the preloaded modules, some of which close
  // descriptors they own in the child (measured: with the default preloads, moving our
  // descriptors first had one of them closed under us).
  PyOS_AfterFork_Child();
  // Then keep only our own descriptors, on fixed numbers: channel 3, report 4, the init's
  // ready pipe 5, the cgroups' procs files from 6. Until then this process holds copies of every
  // descriptor the zygote has, other executions' report pipes among them, and a report pipe only
  // reaches end of file when its last copy is closed (measured: a fork that held them through its
  // 7-13 ms cgroup join delayed another execution's end by as much).
  std::vector<int> keep = {setup.channel, setup.report, setup.init_ready};
  keep.insert(keep.end(), setup.cgroup_procs.begin(), setup.cgroup_procs.end());
  std::vector<int> high;
  for (int fd : keep) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 64));
  for (size_t i = 0; i < high.size(); ++i) {
    if (high[i] < 0 || ::dup2(high[i], kChildChannelFd + static_cast<int>(i)) < 0) {
      ChildFail(setup.report, "park descriptors", errno);
    }
  }
  const int ready_fd = kChildChannelFd + 2, first_cgroup_fd = kChildChannelFd + 3;
  if (!sandbox::CloseFdsFrom(kChildChannelFd + static_cast<int>(keep.size())).ok()) {
    ChildFail(kChildReportFd, "close inherited descriptors", errno);
  }
  for (size_t i = 0; i < setup.cgroup_procs.size(); ++i) {
    if (::write(first_cgroup_fd + static_cast<int>(i), "0", 1) != 1) {
      ChildFail(kChildReportFd, "join warm cgroup", errno);
    }
  }
  // The zygote's death (and so the service's) ends every child, idle or running.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  char ready = 0;
  if (::read(ready_fd, &ready, 1) != 1 || ready != 'r') ::_exit(125);
  for (const char* ns : {"net", "ipc", "uts"}) {
    std::string path = "/proc/" + std::to_string(setup.init_pid) + "/ns/" + ns;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || ::setns(fd.get(), 0) != 0) ::_exit(125);
  }
  if (!sandbox::CloseFdsFrom(kChildReportFd + 1).ok()) {
    ChildFail(kChildReportFd, "close descriptors", errno);
  }
  // The zygote is single-threaded and checked so before each fork: allocating is safe here.
  auto message = sandbox::ReceiveMessage(kChildChannelFd);
  if (!message) ::_exit(0);  // the zygote or the client went away: nothing to run
  sandbox::SandboxSpec spec;
  auto request = json::parse(message->body, nullptr, false);
  if (request.is_discarded() || !sandbox::SpecFromJson(request, spec).ok()) {
    ChildFail(kChildReportFd, "malformed execution request", EINVAL);
  }
  // The runner's source comes from this binary rather than over the socket (20 KiB less to send
  // and parse per execution).
  for (auto& file : spec.rootfs.meta_files) {
    if (file.content.empty() && file.path.ends_with("/runner.py")) file.content = kRunnerSource;
  }
  // Descriptors, in order: mount namespace, stdout, stderr, the display pipe (when the request
  // says so), then the cgroups' procs files.
  std::vector<int> fds;
  for (auto& fd : message->fds) fds.push_back(fd.release());
  const auto display = request.find("display_fd");
  const size_t fixed =
      display != request.end() && display->is_boolean() && display->get<bool>() ? 4 : 3;
  if (fds.size() < fixed) {
    ChildFail(kChildReportFd, "execution request without descriptors", EINVAL);
  }
  spec.stdout_fd = fds[1];
  spec.stderr_fd = fds[2];
  if (fixed == 4) spec.display_fd = fds[3];
  spec.cgroup_procs_fds.assign(fds.begin() + static_cast<std::ptrdiff_t>(fixed), fds.end());
  spec.seccomp = setup.seccomp;
  // Without a memory cgroup the address-space limit stands in; the inherited interpreter's
  // mappings (numpy's and OpenBLAS's reservations among them) must not count against the user.
  if (spec.rlimits.address_space_bytes != 0) spec.rlimits.address_space_bytes += VirtualSizeBytes();
  int report_fd = kChildReportFd;
  sandbox::SysResult r = sandbox::Confine(spec,
                                          {.report_fd = kChildReportFd,
                                           .mount_ns_fd = fds[0],
                                           .reset_signal_handlers = false,
                                           .dumpable = true},
                                          report_fd);
  if (!r.ok()) ChildFail(report_fd, r.what, r.err);
  sandbox::SetProcessStrings(setup.command_line->arg_pointers.data(),
                             setup.command_line->env_pointers.data());
  // The code runs in this process: it must not see the report pipe (it could forge an exit).
  ::close(report_fd);
  PyObject* result = PyObject_CallNoArgs(setup.warm_main);  // exits the process itself
  if (result == nullptr) PyErr_Print();
  ::_exit(1);
}

}  // namespace codecell::runner
