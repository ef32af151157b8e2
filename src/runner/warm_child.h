#pragma once

// A warm child: the zygote's fork of its warmed-up interpreter. It waits, already in its cgroups
// and its init's namespaces, for one execution; then it confines itself and runs the code.
// Include Python.h before this header.

#include <sys/types.h>

#include <string>
#include <vector>

#include "runner/runner_files.h"
#include "sandbox/seccomp_filter.h"

namespace codecell::runner {

// Descriptor numbers a warm child keeps while it waits: its channel and the report pipe.
inline constexpr int kChildChannelFd = 3;
inline constexpr int kChildReportFd = 4;

// What the interpreter's process shows as its command line and environment: a cold execution's.
struct CommandLine {
  std::vector<std::string> args = InterpreterArgv(), env = InterpreterEnv();
  std::vector<const char*> arg_pointers, env_pointers;
  CommandLine() {
    for (const auto& a : args) arg_pointers.push_back(a.c_str());
    arg_pointers.push_back(nullptr);
    for (const auto& e : env) env_pointers.push_back(e.c_str());
    env_pointers.push_back(nullptr);
  }
};

struct ChildSetup {
  int channel, report, init_ready;
  pid_t init_pid;  // in the zygote's pid namespace, where /proc still points
  std::vector<int> cgroup_procs;
  const sandbox::SeccompProgram* seccomp;
  PyObject* warm_main;
  const CommandLine* command_line;
};

// Runs in the interpreter's process (pid 2 of its namespace), right after the fork. Joins its
// cgroups and its init's namespaces while idle, then waits for its execution, confines itself and
// runs it.
[[noreturn]] void WarmChildMain(const ChildSetup& setup);

}  // namespace codecell::runner
