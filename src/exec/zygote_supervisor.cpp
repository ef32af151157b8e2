#include "exec/zygote_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "runner/runner_files.h"
#include "sandbox/file_io.h"
#include "sandbox/unique_fd.h"

namespace codecell::exec {
namespace {

using sandbox::UniqueFd;
using nlohmann::json;

// Importing and warming the default preloads takes about 4 s on these machines; a cold disk or a
// slow machine may take several times that.
constexpr int kReadyTimeoutMs = 180000;

void Log(const std::string& level, const std::string& message) {
  std::string line = json{{"level", level}, {"event", "zygote"}, {"message", message}}.dump(
                         -1, ' ', false, json::error_handler_t::replace) +
                     "\n";
  (void)sandbox::WriteAll(2, line);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace

ZygoteSupervisor::ZygoteSupervisor(std::string self_exe, std::string data_dir,
                                   WarmSettings settings)
    : self_exe_(std::move(self_exe)),
      data_dir_(std::move(data_dir)),
      socket_path_("/run/codecell/zygote-" + std::to_string(::getpid()) + ".sock"),
      settings_(std::move(settings)) {}

ZygoteSupervisor::~ZygoteSupervisor() { Stop(); }

void ZygoteSupervisor::Start() {
  if (!settings_.enabled) return;
  sandbox::MakeDirs("/run/codecell", 0700);
  thread_ = std::thread([this] { Loop(); });
}

void ZygoteSupervisor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    ready_ = false;
    if (pid_ > 0) ::kill(pid_, SIGTERM);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  ::unlink(socket_path_.c_str());
}

std::string ZygoteSupervisor::socket() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ready_ ? socket_path_ : std::string();
}

json ZygoteSupervisor::Describe() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!settings_.enabled) {
    return {{"mode", "cold"},
            {"reason", "warm interpreters are disabled (interpreters.warm = false)"}};
  }
  json d = {{"mode", ready_ ? "warm" : "cold"},
            {"restarts", restarts_},
            {"pid", pid_ > 0 ? json(pid_) : json(nullptr)},
            {"pool_size", settings_.pool_size}};
  if (!ready_) d["reason"] = reason_;
  if (ready_) {
    d["preloaded"] = ready_info_.value("preloaded", json::array());
    d["failed_preloads"] = ready_info_.value("failed", json::object());
    d["startup_seconds"] = ready_info_.value("startup_seconds", 0.0);
    d["python"] = ready_info_.value("python", "");
  }
  return d;
}

void ZygoteSupervisor::Loop() {
  unsigned failures = 0;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      Log("error", std::string("pipe2: ") + std::strerror(errno));
      return;
    }
    UniqueFd out_read(out[0]), out_write(out[1]);
    std::vector<std::string> args = {self_exe_, "zygote", "--socket", socket_path_,
                                     "--data-dir", data_dir_, "--pool",
                                     std::to_string(settings_.pool_size)};
    if (settings_.preload_given) {
      std::string list;
      for (const auto& p : settings_.preload) list += (list.empty() ? "" : ",") + p;
      args.push_back("--preload");
      args.push_back(list);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The zygote's environment is what the interpreter will see; the service's own (API keys,
    // database credentials) must never reach its memory.
    std::vector<std::string> env = runner::InterpreterEnv();
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    int rc;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      rc = stopping_ ? ECANCELED
                     : posix_spawn(&pid, self_exe_.c_str(), &actions, &attr, argv.data(),
                                   envp.data());
      if (rc == 0) pid_ = pid;
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    out_write.reset();
    if (rc == ECANCELED) return;
    if (rc != 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      reason_ = std::string("cannot start the zygote: ") + std::strerror(rc);
    } else {
      // The ready line, or end of file if the zygote failed (its reason is in the log).
      std::string line;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
      while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) break;
        pollfd pfd{out_read.get(), POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
        char buffer[4096];
        ssize_t n = ::read(out_read.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        line.append(buffer, static_cast<size_t>(n));
      }
      auto info = json::parse(line.substr(0, line.find('\n')), nullptr, false);
      if (!info.is_discarded() && info.value("ready", false)) {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_ = !stopping_;
        ready_info_ = info;
        failures = 0;
        Log("info", "warm interpreters ready: zygote pid " + std::to_string(pid) + " in " +
                        std::to_string(info.value("startup_seconds", 0.0)) + " s");
      } else {
        ::kill(pid, SIGKILL);
      }
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      std::lock_guard<std::mutex> lock(mutex_);
      ready_ = false;
      pid_ = -1;
      if (stopping_) return;
      ++restarts_;
      reason_ = "the zygote ended (" + DescribeWaitStatus(status) + "); restarting";
      Log("error", reason_ + "; executions run cold meanwhile");
    }
    ++failures;
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(std::min(30u, 1u << std::min(failures - 1, 5u))),
                 [this] { return stopping_; });
    if (stopping_) return;
  }
}

}  // namespace codecell::exec
