#pragma once

#include <set>

#include "base/mutex.h"
#include "exec/execution.h"
#include "exec/helper_process.h"
#include "exec/zygote_supervisor.h"

namespace codecell::exec {

// Runs one prepared execution to the end: the seam between the execution service (admission,
// packages, files, the store) and the sandbox. Tests put a fake behind it.
class ExecutionRunner {
 public:
  virtual ~ExecutionRunner() = default;
  // Fails only when codecell could not run the code (the kind says whether the disk was full);
  // whatever the code did is a result.
  virtual Result<ExecutionResult> Run(ExecutionRequest& request) = 0;
  // Stops every running execution now (each result says `killed`): the end of a shutdown.
  virtual void CancelAll() = 0;
};

// The one warm/cold decision of the service. Warm: in this process, on a child the zygote forked.
// Cold (no zygote for this code, or it did not answer, or the warm child failed before the code
// started): in a fresh `codecell __execute` helper, so that no thread of the service ever clones
// a sandbox itself.
class SandboxRunner : public ExecutionRunner {
 public:
  SandboxRunner(const ExecutionEnvironment& environment, ZygoteSupervisor& zygote,
                HelperProcesses& helpers)
      : environment_(environment), zygote_(zygote), helpers_(helpers) {}

  Result<ExecutionResult> Run(ExecutionRequest& request) override;
  void CancelAll() override;

 private:
  Result<ExecutionResult> RunCold(const ExecutionRequest& request);
  Result<ExecutionResult> RunWarm(ExecutionRequest& request, WarmChild warm, bool& code_started);

  const ExecutionEnvironment& environment_;
  ZygoteSupervisor& zygote_;
  HelperProcesses& helpers_;
  // Each warm execution's eventfd: CancelAll() makes them readable.
  Mutex cancel_mutex_;
  std::set<int> cancel_fds_ CODECELL_GUARDED_BY(cancel_mutex_);
};

}  // namespace codecell::exec
