#pragma once

#include <sys/types.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "base/mutex.h"
#include "exec/execution.h"
#include "exec/execution_json.h"

namespace codecell::exec {

// The service's threads never fork tenant code themselves: each execution runs in a fresh,
// single-threaded `codecell __execute` process (posix_spawn, which is safe from a multithreaded
// parent), which prepares the sandbox and reports the result as JSON on its stdout.
class HelperProcesses {
 public:
  explicit HelperProcesses(std::string self_exe) : self_exe_(std::move(self_exe)) {}

  // Runs `request` to the end. Fails only when codecell could not run it (as RunExecution).
  Result<ExecutionResult> Run(const HelperRequest& request);

  // Asks every running helper to stop its execution now (its result says `killed`).
  void CancelAll();
  size_t running() const;

 private:
  std::string self_exe_;
  mutable Mutex mutex_;
  std::set<pid_t> pids_ CODECELL_GUARDED_BY(mutex_);
};

// posix_spawn of argv[0] with `argv` and `envp`, stdin from `stdin_fd` (-1: /dev/null), stdout
// to `stdout_fd`, stderr inherited and no signal blocked: the service blocks SIGTERM in every
// thread (a signal thread waits for it), and what it starts must begin with it deliverable.
// Returns 0 or the error number.
int SpawnUnblocked(const char* const* argv, char* const* envp, int stdin_fd, int stdout_fd,
                   pid_t& pid);

// The `__execute` subcommand: request JSON on stdin, result JSON on stdout. SIGTERM (or the
// parent's death) stops the execution with status `killed`.
int ExecuteHelperMain();

}  // namespace codecell::exec
