#include "exec/zygote_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "exec/helper_process.h"
#include "runner/runner_files.h"
#include "sandbox/file_io.h"
#include "sandbox/unique_fd.h"

namespace codecell::exec {
namespace {

using nlohmann::json;
using sandbox::UniqueFd;

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

std::vector<std::string> BasePreload() {
  return {"json",      "linecache", "threading",  "traceback", "tokenize",
          "random",    "math",      "re",         "datetime",  "collections",
          "itertools", "functools", "statistics", "decimal",   "fractions",
          "csv",       "string",    "textwrap",   "pprint",    "dataclasses"};
}

bool WantsFullPreload(std::string_view code, const std::vector<std::string>& preload) {
  std::vector<std::string> words = {"load_file", "importlib", "__import__"};
  for (const auto& module : preload) words.push_back(module.substr(0, module.find('.')));
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (const auto& word : words) {
    for (size_t at = code.find(word); at != std::string_view::npos; at = code.find(word, at + 1)) {
      size_t end = at + word.size();
      if ((at == 0 || !is_word(code[at - 1])) && (end == code.size() || !is_word(code[end]))) {
        return true;
      }
    }
  }
  return false;
}

ZygoteSupervisor::ZygoteSupervisor(std::string self_exe, std::string data_dir,
                                   WarmSettings settings)
    : self_exe_(std::move(self_exe)),
      data_dir_(std::move(data_dir)),
      settings_(std::move(settings)) {
  const std::string prefix = "/run/codecell/zygote-" + std::to_string(::getpid()) + "-";
  for (const char* name : {"base", "full"}) {
    auto z = std::make_unique<Zygote>();
    z->name = name;
    z->socket_path = prefix + name + ".sock";
    z->preload = z->name == "base" ? BasePreload() : settings_.preload;
    zygotes_.push_back(std::move(z));
  }
}

ZygoteSupervisor::~ZygoteSupervisor() { Stop(); }

size_t SweepStaleZygoteSockets(const std::string& dir) {
  size_t removed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("zygote-", 0) != 0 || name.size() < 5 ||
        name.compare(name.size() - 5, 5, ".sock") != 0) {
      continue;
    }
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + 7, &end, 10);
    if (pid <= 0 || end == nullptr || *end != '-') continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    if (::unlink(e.path().c_str()) == 0) ++removed;
  }
  return removed;
}

void ZygoteSupervisor::Start() {
  if (!settings_.enabled) return;
  sandbox::MakeDirs("/run/codecell", 0700);
  SweepStaleZygoteSockets("/run/codecell");
  for (auto& z : zygotes_) {
    Zygote& zygote = *z;
    zygote.thread = std::thread([this, &zygote] { Loop(zygote); });
  }
}

void ZygoteSupervisor::Stop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
    for (auto& z : zygotes_) {
      z->ready = false;
      if (z->pid > 0) ::kill(z->pid, SIGTERM);
    }
  }
  cv_.notify_all();
  for (auto& z : zygotes_) {
    if (z->thread.joinable()) z->thread.join();
    ::unlink(z->socket_path.c_str());
  }
}

std::string ZygoteSupervisor::SocketFor(std::string_view code) const {
  size_t preferred = WantsFullPreload(code, settings_.preload) ? 1 : 0;
  MutexLock lock(mutex_);
  for (size_t i : {preferred, 1 - preferred}) {
    if (zygotes_[i]->ready) return zygotes_[i]->socket_path;
  }
  return "";
}

json ZygoteSupervisor::Describe() const {
  MutexLock lock(mutex_);
  if (!settings_.enabled) {
    return {{"mode", "cold"},
            {"reason", "warm interpreters are disabled (interpreters.warm = false)"}};
  }
  json pools = json::array();
  size_t ready = 0;
  std::string reason;
  for (const auto& z : zygotes_) {
    json d = {{"name", z->name},
              {"ready", z->ready},
              {"pid", z->pid > 0 ? json(z->pid) : json(nullptr)},
              {"restarts", z->restarts},
              {"pool_size", settings_.pool_size}};
    if (z->ready) {
      ++ready;
      d["preloaded"] = z->ready_info.value("preloaded", json::array());
      d["failed_preloads"] = z->ready_info.value("failed", json::object());
      d["startup_seconds"] = z->ready_info.value("startup_seconds", 0.0);
      d["python"] = z->ready_info.value("python", "");
    } else {
      d["reason"] = z->reason;
      reason += (reason.empty() ? "" : "; ") + z->name + ": " + z->reason;
    }
    pools.push_back(d);
  }
  json d = {{"mode", ready == zygotes_.size() ? "warm"
                     : ready > 0              ? "degraded"
                                              : "cold"},
            {"pools", pools}};
  if (!reason.empty()) d["reason"] = reason;
  return d;
}

void ZygoteSupervisor::Loop(Zygote& zygote) {
  unsigned failures = 0;
  for (;;) {
    {
      MutexLock lock(mutex_);
      if (stopping_) return;
    }
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      Log("error", std::string("pipe2: ") + std::strerror(errno));
      return;
    }
    UniqueFd out_read(out[0]), out_write(out[1]);
    std::string preload;
    for (const auto& p : zygote.preload) preload += (preload.empty() ? "" : ",") + p;
    std::vector<std::string> args = {
        self_exe_,    "zygote",  "--socket", zygote.socket_path,
        "--data-dir", data_dir_, "--pool",   std::to_string(settings_.pool_size),
        "--preload",  preload};
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    // The zygote's environment is what the interpreter will see; the service's own (API keys,
    // database credentials) must never reach its memory.
    std::vector<std::string> env = runner::InterpreterEnv();
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    int rc;
    {
      MutexLock lock(mutex_);
      rc = stopping_ ? ECANCELED
                     : SpawnUnblocked(argv.data(), envp.data(), -1, out_write.get(), pid);
      if (rc == 0) zygote.pid = pid;
    }
    out_write.reset();
    if (rc == ECANCELED) return;
    if (rc != 0) {
      MutexLock lock(mutex_);
      zygote.reason = std::string("cannot start the zygote: ") + std::strerror(rc);
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
        MutexLock lock(mutex_);
        zygote.ready = !stopping_;
        zygote.ready_info = info;
        failures = 0;
        Log("info", "warm interpreters ready: " + zygote.name + " zygote pid " +
                        std::to_string(pid) + " in " +
                        std::to_string(info.value("startup_seconds", 0.0)) + " s");
      } else {
        ::kill(pid, SIGKILL);
      }
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      MutexLock lock(mutex_);
      zygote.ready = false;
      zygote.pid = -1;
      if (stopping_) return;
      ++zygote.restarts;
      zygote.reason = "the zygote ended (" + DescribeWaitStatus(status) + "); restarting";
      Log("error", zygote.reason + "; executions run cold meanwhile");
    }
    ++failures;
    MutexLock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(std::min(30u, 1u << std::min(failures - 1, 5u))),
                 [this]() CODECELL_REQUIRES(mutex_) { return stopping_; });
    if (stopping_) return;
  }
}

}  // namespace codecell::exec
