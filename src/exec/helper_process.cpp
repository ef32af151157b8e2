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

nlohmann::json LimitsToJson(const Limits& l) {
  return {{"timeout_seconds", l.timeout_seconds},
          {"memory_mb", l.memory_mb},
          {"max_processes", l.max_processes},
          {"cpus", l.cpus},
          {"tmp_mb", l.tmp_mb},
          {"workspace_mb", l.workspace_mb},
          {"max_output_chars", l.max_output_chars},
          {"max_generated_files", l.max_generated_files},
          {"max_generated_file_bytes", l.max_generated_file_bytes},
          {"max_display_bytes", l.max_display_bytes},
          {"max_display_items", l.max_display_items}};
}

Limits LimitsFromJson(const nlohmann::json& j) {
  Limits l;
  l.timeout_seconds = j.at("timeout_seconds").get<double>();
  l.memory_mb = j.at("memory_mb").get<uint64_t>();
  l.max_processes = j.at("max_processes").get<uint64_t>();
  l.cpus = j.at("cpus").get<double>();
  l.tmp_mb = j.at("tmp_mb").get<uint64_t>();
  l.workspace_mb = j.at("workspace_mb").get<uint64_t>();
  l.max_output_chars = j.at("max_output_chars").get<size_t>();
  l.max_generated_files = j.at("max_generated_files").get<size_t>();
  l.max_generated_file_bytes = j.at("max_generated_file_bytes").get<uint64_t>();
  l.max_display_bytes = j.at("max_display_bytes").get<size_t>();
  l.max_display_items = j.at("max_display_items").get<size_t>();
  return l;
}

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

nlohmann::json RequestToJson(const ExecutionRequest& r, const std::string& data_dir) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& in : r.inputs) {
    inputs.push_back(
        {{"file_id", in.file_id}, {"filename", in.filename}, {"host_path", in.host_path}});
  }
  return {{"code", r.code},
          {"inputs", inputs},
          {"limits", LimitsToJson(r.limits)},
          {"generated_dir", r.generated_dir},
          {"packages_dir", r.packages_dir},
          {"installer", r.installer},
          {"wheel_dir", r.wheel_dir},
          {"data_dir", data_dir}};
}

Result<nlohmann::json> HelperProcesses::Run(const nlohmann::json& request) {
  using R = Result<nlohmann::json>;
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
    std::lock_guard<std::mutex> lock(mutex_);
    pids_.insert(pid);
  }
  in_read.reset();
  out_write.reset();
  std::string body = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
    std::lock_guard<std::mutex> lock(mutex_);
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
  return parsed;
}

void HelperProcesses::CancelAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (pid_t pid : pids_) ::kill(pid, SIGTERM);
}

size_t HelperProcesses::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
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
  ExecutionRequest request;
  std::string data_dir, zygote_socket;
  uid_t installer_uid = 0;
  try {
    request.code = j.at("code").get<std::string>();
    for (const auto& in : j.at("inputs")) {
      request.inputs.push_back({in.at("file_id").get<std::string>(),
                                in.at("filename").get<std::string>(),
                                in.at("host_path").get<std::string>()});
    }
    request.limits = LimitsFromJson(j.at("limits"));
    request.generated_dir = j.at("generated_dir").get<std::string>();
    data_dir = j.at("data_dir").get<std::string>();
    zygote_socket = j.value("zygote_socket", "");
    request.packages_dir = j.value("packages_dir", "");
    request.installer = j.value("installer", false);
    request.wheel_dir = j.value("wheel_dir", "");
    installer_uid = j.value("installer_uid", 0u);
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("the execution helper got an incomplete request: ") + e.what());
  }
  request.cancel_fd = cancel.get();
  auto env = ExecutionEnvironment::Prepare(data_dir);
  if (!env) return fail(env.error(), env.kind());
  env->zygote_socket = zygote_socket;
  if (installer_uid != 0) env->installer_uid = installer_uid;
  auto result = RunExecution(env.value(), request);
  if (!result) return fail(result.error(), result.kind());
  std::cout << result->ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << std::endl;
  return 0;
}

}  // namespace codecell::exec
