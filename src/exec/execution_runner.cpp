#include "exec/execution_runner.h"

#include <sys/eventfd.h>

#include "base/log.h"
#include "sandbox/unique_fd.h"

namespace codecell::exec {

Result<ExecutionResult> SandboxRunner::RunCold(const ExecutionRequest& request) {
  return helpers_.Run({request, environment_.data_dir, 0});
}

Result<ExecutionResult> SandboxRunner::RunWarm(ExecutionRequest& request, WarmChild warm,
                                               bool& code_started) {
  sandbox::UniqueFd cancel(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel.valid()) return Result<ExecutionResult>::Fail("eventfd failed");
  {
    MutexLock lock(cancel_mutex_);
    cancel_fds_.insert(cancel.get());
  }
  request.cancel_fd = cancel.get();
  auto result = RunExecution(environment_, request, std::move(warm), &code_started);
  request.cancel_fd = -1;
  {
    MutexLock lock(cancel_mutex_);
    cancel_fds_.erase(cancel.get());
  }
  return result;
}

Result<ExecutionResult> SandboxRunner::Run(ExecutionRequest& request) {
  std::optional<WarmChild> warm;
  if (std::string socket = zygote_.SocketFor(request.code); !socket.empty()) {
    auto acquired = AcquireWarmChild(socket);
    if (acquired) {
      warm = std::move(acquired.value());
    } else {
      LogJson({{"level", "warning"}, {"event", "zygote"}, {"message", acquired.error()}});
    }
  }
  if (!warm) return RunCold(request);
  bool code_started = false;
  auto result = RunWarm(request, std::move(*warm), code_started);
  if (!result && !code_started && result.kind() != sandbox::FailureKind::kStorageFull) {
    // The warm child could not be started or set up (e.g. its zygote died just then): the code
    // has not run, so run it cold. A full disk would stop a cold one the same way.
    LogJson({{"level", "warning"},
             {"event", "zygote"},
             {"message", "warm execution failed, running it cold: " + result.error()}});
    return RunCold(request);
  }
  return result;
}

void SandboxRunner::CancelAll() {
  helpers_.CancelAll();
  MutexLock lock(cancel_mutex_);
  for (int fd : cancel_fds_) (void)::eventfd_write(fd, 1);
}

}  // namespace codecell::exec
