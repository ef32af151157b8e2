#include "exec/helper_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <iterator>

#include "sandbox/file_io.h"
#include "sandbox/unique_fd.h"

extern char** environ;

namespace codecell::exec {
namespace {

using sandbox::UniqueFd;
constexpr size_t kMaxResultBytes = 64u << 20;

}  // namespace

int SpawnUnblocked(const char* const* argv, char* const* envp, int stdin_fd, int stdout_fd,
                   pid_t& pid) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawn(&pid, argv[0], &actions, &attr, const_cast<char* const*>(argv), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

Result<ExecutionResult> HelperProcesses::Run(const HelperRequest& request) {
  using R = Result<ExecutionResult>;
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return R::Fail(std::string("pipe2: ") + strerror(errno));
  UniqueFd in_read(in_pipe[0]), in_write(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return R::Fail(std::string("pipe2: ") + strerror(errno));
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);

  const char* argv[] = {self_exe_.c_str(), "__execute", nullptr};
  pid_t pid = -1;
  int rc = SpawnUnblocked(argv, environ, in_read.get(), out_write.get(), pid);
  if (rc != 0) return R::Fail(std::string("cannot start the execution helper: ") + strerror(rc));
  {
    MutexLock lock(mutex_);
    pids_.insert(pid);
  }
  in_read.reset();
  out_write.reset();
  std::string body =
      nlohmann::json(request).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  bool sent = sandbox::WriteAll(in_write.get(), body);
  in_write.reset();
  std::string output;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(out_read.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (output.size() < kMaxResultBytes) output.append(buffer, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  {
    MutexLock lock(mutex_);
    pids_.erase(pid);
  }
  if (!sent) return R::Fail("the execution helper did not accept the request");
  auto parsed = nlohmann::json::parse(output, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return R::Fail("the execution helper ended without a result (wait status " +
                   std::to_string(status) + ")");
  }
  if (parsed.contains("helper_error")) {
    const auto& message = parsed["helper_error"];
    return R::Fail(message.is_string() ? message.get<std::string>() : "the helper failed",
                   parsed.value("storage_full", false) ? sandbox::FailureKind::kStorageFull
                                                       : sandbox::FailureKind::kInternal);
  }
  try {
    return parsed.get<ExecutionResult>();
  } catch (const nlohmann::json::exception& e) {
    return R::Fail(std::string("the execution helper's result is incomplete: ") + e.what());
  }
}

void HelperProcesses::CancelAll() {
  MutexLock lock(mutex_);
  for (pid_t pid : pids_) ::kill(pid, SIGTERM);
}

size_t HelperProcesses::running() const {
  MutexLock lock(mutex_);
  return pids_.size();
}

int ExecuteHelperMain() {
  auto fail = [](const std::string& message,
                 sandbox::FailureKind kind = sandbox::FailureKind::kInternal) {
    std::cout << nlohmann::json{{"helper_error", message},
                                {"storage_full", kind == sandbox::FailureKind::kStorageFull}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
    return 1;
  };
  // SIGTERM from the service (shutdown) or the service's death becomes a readable fd that
  // cancels the execution.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  ::sigprocmask(SIG_BLOCK, &term, nullptr);
  UniqueFd cancel(::signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK));
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() == 1) return fail("the service is gone");

  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto j = nlohmann::json::parse(input, nullptr, false);
  if (j.is_discarded()) return fail("the execution helper got malformed JSON");
  HelperRequest helper;
  try {
    helper = j.get<HelperRequest>();
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("the execution helper got an incomplete request: ") + e.what());
  }
  ExecutionRequest& request = helper.request;
  request.cancel_fd = cancel.get();
  auto env = ExecutionEnvironment::Prepare(helper.data_dir);
  if (!env) return fail(env.error(), env.kind());
  if (helper.installer_uid != 0) env->installer_uid = helper.installer_uid;
  auto result = RunExecution(env.value(), request);
  if (!result) return fail(result.error(), result.kind());
  std::cout << nlohmann::json(result.value())
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << std::endl;
  return 0;
}

}  // namespace codecell::exec
