#include "exec/execution.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <optional>

#include "exec/file_types.h"
#include "exec/generated_files.h"
#include "exec/ids.h"
#include "exec/output_capture.h"
#include "exec/workspace.h"
#include "exec/zygote_client.h"
#include "runner/runner_files.h"
#include "sandbox/sandbox.h"

namespace codecell::exec {
namespace {

using Clock = std::chrono::steady_clock;
using sandbox::UniqueFd;

std::string FormatNumber(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

std::string SignalSentence(int sig) {
  const char* name = sigabbrev_np(sig);
  std::string text = "Process was killed by signal " + std::to_string(sig);
  if (name != nullptr) text += std::string(" (SIG") + name + ")";
  if (sig == SIGSYS) text += ": it made a system call the sandbox forbids";
  return text;
}

void AppendSentence(std::string& error, const std::string& sentence) {
  if (!error.empty() && error.back() != '\n') error.push_back('\n');
  error += sentence;
}

struct Pipe {
  UniqueFd read, write;
  static Result<Pipe> Make() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return Result<Pipe>::Fail(std::string("pipe2: ") + std::strerror(errno));
    }
    Pipe p;
    p.read.reset(fds[0]);
    p.write.reset(fds[1]);
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    return p;
  }
};

// Reads everything available; returns false at end of file.
template <typename OnBytes>
bool Drain(int fd, OnBytes on_bytes) {
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      on_bytes(std::string_view(buffer, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

struct Supervision {
  bool timed_out = false;
  bool cancelled = false;
  std::string poll_error;
  Clock::time_point exited_at{};
};

// The sandbox's pipes, and what the host keeps of each.
struct Streams {
  int out_fd, err_fd, display_fd;
  BoundedUtf8Capture& out;
  BoundedUtf8Capture& err;
  DisplayChannel& display;
};

// Drains the sandbox's output, display and report pipes until every process inside is gone,
// killing the whole namespace (through its pid 1, and the cgroup) at the deadline or when
// `cancel_fd` turns readable. Returns once the pipes are closed; the caller reaps the init.
Supervision Supervise(const sandbox::SandboxProcess& process, const Streams& streams, int cancel_fd,
                      Clock::time_point deadline, const sandbox::ExecutionCgroup& cgroup,
                      sandbox::SandboxReport& report) {
  // After a kill the kernel tears the namespace down at once; this only bounds a pathological
  // case (a process stuck in the kernel) so that the supervisor never hangs.
  constexpr auto kDrainAfterKill = std::chrono::seconds(5);
  Supervision w;
  bool final_drain = false;  // past the deadline (or killed): only collecting what is left
  auto stop_by = deadline;
  auto kill_all = [&] {
    process.Kill();  // pid 1 of the namespace: the kernel kills all inside
    cgroup.KillAll();
    final_drain = true;
    stop_by = Clock::now() + kDrainAfterKill;
  };
  pollfd fds[5] = {{streams.out_fd, POLLIN, 0},
                   {streams.err_fd, POLLIN, 0},
                   {process.report.get(), POLLIN, 0},
                   {cancel_fd, POLLIN, 0},
                   {streams.display_fd, POLLIN, 0}};
  auto drain_output = [&] {
    if (fds[0].fd >= 0 && !Drain(fds[0].fd, [&](std::string_view b) { streams.out.Append(b); })) {
      fds[0].fd = -1;
    }
    if (fds[1].fd >= 0 && !Drain(fds[1].fd, [&](std::string_view b) { streams.err.Append(b); })) {
      fds[1].fd = -1;
    }
  };
  for (;;) {
    if (fds[0].fd < 0 && fds[1].fd < 0 && fds[2].fd < 0 && fds[4].fd < 0) break;
    auto now = Clock::now();
    if (now >= stop_by) {
      if (final_drain) break;
      if (report.exited) {
        final_drain = true;
        stop_by = now + kDrainAfterKill;
      } else {
        w.timed_out = true;
        kill_all();
      }
      continue;
    }
    int wait_ms =
        static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(stop_by - now).count()) +
        1;
    int n = ::poll(fds, 5, wait_ms);
    if (n < 0 && errno != EINTR) {
      w.poll_error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (n <= 0) continue;
    if (fds[0].revents != 0 || fds[1].revents != 0) drain_output();
    if (fds[4].revents != 0 && !Drain(fds[4].fd, [&](std::string_view b) {
          // The output pipes after each read: the runner wrote what it printed before an item,
          // then the item, and prints nothing more until the item has been read (it waits for
          // the pipe to be empty), so the positions fall exactly between the two.
          drain_output();
          streams.display.Append(b, streams.out.text().size(), streams.err.text().size());
        })) {
      fds[4].fd = -1;
    }
    if (fds[3].fd >= 0 && fds[3].revents != 0) {
      fds[3].fd = -1;
      if (!report.exited) {
        w.cancelled = true;
        kill_all();
      }
    }
    if (fds[2].revents != 0) {
      bool was_exited = report.exited;
      if (!sandbox::ConsumeReports(fds[2].fd, report)) fds[2].fd = -1;
      if (report.exited && !was_exited) w.exited_at = Clock::now();
    }
  }
  // Anything still open here means we gave up waiting: make sure nothing inside survives.
  if (fds[0].fd >= 0 || fds[1].fd >= 0 || fds[2].fd >= 0 || fds[4].fd >= 0) process.Kill();
  return w;
}

// Waits until the sandbox's init is gone. Our own child is reaped here; a warm child is the
// zygote's to reap, and its pidfd turns readable once it has exited.
void AwaitEnd(const sandbox::SandboxProcess& process, rusage& usage) {
  if (process.is_our_child()) {
    int status = 0;
    while (::wait4(process.pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    return;
  }
  pollfd pfd{process.pidfd.get(), POLLIN, 0};
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::poll(&pfd, 1, 5000) > 0) return;
    process.Kill();
  }
}

// A displayed image names the file the runner wrote; it is shown by the generated file's id, and
// only when it is one (a name the code forged, or a file over the limits, shows no file).
void LinkDisplayedFiles(ExecutionResult& result) {
  for (auto& item : result.outputs) {
    if (item.filename.empty()) continue;
    for (const auto& f : result.generated_files) {
      if (f.filename == item.filename) {
        item.file_id = f.file_id;
        item.mime_type = f.mime_type;
        break;
      }
    }
  }
}

}  // namespace

std::string ValidateLimits(const Limits& l, const LimitBounds& b) {
  auto range = [](const char* name, double v, double lo, double hi, const char* unit) {
    if (std::isnan(v) || v < lo || v > hi) {
      return std::string(name) + " must be between " + FormatNumber(lo) + " and " +
             FormatNumber(hi) + " " + unit + " (got " + FormatNumber(v) + ")";
    }
    return std::string();
  };
  for (auto msg : {range("timeout", l.timeout_seconds, 0.1, b.max_timeout_seconds, "seconds"),
                   range("memory", static_cast<double>(l.memory_mb), 32,
                         static_cast<double>(b.max_memory_mb), "MiB"),
                   range("processes", static_cast<double>(l.max_processes), 4,
                         static_cast<double>(b.max_processes), "processes"),
                   l.cpus == 0 ? std::string() : range("cpus", l.cpus, 0.1, b.max_cpus, "cores"),
                   range("tmp size", static_cast<double>(l.tmp_mb), 1,
                         static_cast<double>(b.max_tmp_mb), "MiB"),
                   range("workspace size", static_cast<double>(l.workspace_mb), 1,
                         static_cast<double>(b.max_workspace_mb), "MiB")}) {
    if (!msg.empty()) return msg;
  }
  return "";
}

nlohmann::json ExecutionResult::ToJson() const {
  using nlohmann::json;
  json generated = json::array();
  for (const auto& f : generated_files) {
    generated.push_back({{"file_id", f.file_id},
                         {"filename", f.filename},
                         {"file_type", f.file_type},
                         {"mime_type", f.mime_type},
                         {"size", f.size},
                         {"expires_at", nullptr},
                         {"path", f.host_path}});
  }
  json skipped = json::array();
  for (const auto& s : skipped_files) {
    skipped.push_back({{"filename", s.filename}, {"size", s.size}, {"reason", s.reason}});
  }
  json outputs_json = json::array();
  for (const auto& item : outputs) outputs_json.push_back(item.ToJson());
  return {
      {"execution_id", execution_id},
      {"success", success()},
      {"status", status},
      {"output", output},
      {"error", error},
      {"return_code", return_code},
      {"execution_time", std::round(execution_time * 1e4) / 1e4},
      {"truncated",
       {{"output", output_truncated}, {"error", error_truncated}, {"outputs", outputs_truncated}}},
      {"outputs", outputs_json},
      {"generated_files", generated},
      {"skipped_files", skipped},
      {"interpreter", interpreter},
      {"installed_packages", json::array()},
      {"failed_packages", json::array()},
      {"resources",
       {{"cpu_time", cpu_time ? json(std::round(*cpu_time * 1e4) / 1e4) : json(nullptr)},
        {"peak_memory_bytes", peak_memory_bytes ? json(*peak_memory_bytes) : json(nullptr)}}}};
}

Result<ExecutionEnvironment> ExecutionEnvironment::Prepare(const std::string& data_dir) {
  using R = Result<ExecutionEnvironment>;
  if (::geteuid() != 0) {
    return R::Fail(
        "codecell must run as root: it creates namespaces and cgroups and runs each execution "
        "under an unprivileged slot uid");
  }
  ExecutionEnvironment env;
  env.data_dir = data_dir;
  env.work_root = data_dir + "/work";
  std::error_code ec;
  std::filesystem::create_directories(env.work_root, ec);
  if (ec) return R::Fail("cannot create " + env.work_root + ": " + ec.message());
  ::chmod(data_dir.c_str(), 0700);
  ::chmod(env.work_root.c_str(), 0700);
  if (auto s = EnterPrivateMountNamespace(); !s) return R::Fail(s.error());
  env.cgroups = sandbox::DetectCgroups();
  sandbox::SweepStaleCgroups(env.cgroups);
  auto program = sandbox::BuildSandboxSeccompProgram();
  if (!program) return R::Fail(program.error());
  env.seccomp = std::move(program.value());
  auto installer_program = sandbox::BuildSandboxSeccompProgram(/*allow_inet_sockets=*/true);
  if (!installer_program) return R::Fail(installer_program.error());
  env.installer_seccomp = std::move(installer_program.value());
  env.tmp_seed_files = runner::PrepareMatplotlibCache(data_dir + "/cache/matplotlib");
  Workspace::SweepStale(env.work_root);
  return env;
}

Result<ExecutionResult> RunExecution(const ExecutionEnvironment& env,
                                     const ExecutionRequest& request, std::optional<WarmChild> warm,
                                     bool* code_started) {
  if (code_started != nullptr) *code_started = false;
  using R = Result<ExecutionResult>;
  const Limits& limits = request.limits;
  if (request.installer && (warm || !env.allow_cold)) {
    return R::Fail("the package installer runs only in a cold sandbox");
  }
  std::optional<sandbox::SlotLease> lease;
  uid_t uid = env.installer_uid;
  gid_t gid = static_cast<gid_t>(env.installer_uid);
  if (!request.installer) {
    auto acquired = sandbox::SlotLease::Acquire(env.slots);
    if (!acquired) return R::Fail(acquired.error());
    lease = std::move(acquired.value());
    uid = lease->uid();
    gid = lease->gid();
  }
  ExecutionResult result;
  result.execution_id = NewRandomId("exec_");

  auto workspace =
      Workspace::Create(env.work_root, result.execution_id, limits.workspace_mb << 20, uid, gid);
  if (!workspace) return R::Fail(workspace);
  std::vector<runner::RunnerInput> runner_inputs;
  for (const auto& input : request.inputs) {
    auto name = workspace->AddInput(input.host_path, input.filename);
    // Gone since it was listed: deleted, or evicted to make room for another execution's outputs
    // (the user's caps). The code runs without it rather than not at all; ids are never reused, so
    // the source cannot come back between the failure and this check.
    if (!name && ::access(input.host_path.c_str(), F_OK) != 0 && errno == ENOENT) continue;
    if (!name) return R::Fail(name);
    runner_inputs.push_back({input.file_id, *name});
  }

  // A warm child first: it comes with the cgroup it has already joined.
  if (!warm && !env.zygote_socket.empty() && !request.installer) {
    auto acquired = AcquireWarmChild(env.zygote_socket);
    if (acquired) {
      warm = std::move(acquired.value());
    } else if (env.require_warm) {
      return R::Fail("no warm interpreter (required): " + acquired.error());
    }
  }
  if (!warm && !env.allow_cold)
    return R::Fail("no warm interpreter, and cold ones are not allowed");
  sandbox::ExecutionCgroup cgroup;
  if (env.cgroups.mode != sandbox::CgroupMode::kNone) {
    const sandbox::CgroupLimits cgroup_limits{limits.memory_mb << 20, limits.max_processes,
                                              limits.cpus};
    auto created =
        warm && !warm->cgroup.empty()
            ? sandbox::ExecutionCgroup::Adopt(env.cgroups, warm->cgroup, cgroup_limits)
            : sandbox::ExecutionCgroup::Create(env.cgroups, result.execution_id, cgroup_limits);
    if (!created) return R::Fail(created.error());
    cgroup = std::move(created.value());
  }

  sandbox::RootfsOptions rootfs;
  rootfs.root = workspace->root();
  rootfs.overlay_dir = workspace->dir();
  rootfs.overlay_lower = "lower";
  rootfs.overlay_upper = "ws/upper";
  rootfs.overlay_work = "ws/work";
  // A warm child writes the runner from its own copy of this binary.
  rootfs.meta_files = {
      {"runner.py", warm ? "" : runner::kRunnerSource},
      {"code.py", request.code},
      {"files.json",
       runner::FilesJson(runner_inputs, request.installer ? std::string() : request.packages_dir,
                         sandbox::kDisplayFd)}};
  if (!request.packages_dir.empty()) {
    rootfs.extra_binds.push_back(
        {request.packages_dir, runner::kPackagesInside, /*writable=*/request.installer});
  }
  if (request.installer && !request.wheel_dir.empty()) {
    rootfs.extra_binds.push_back({request.wheel_dir, runner::kWheelsInside, false});
  }
  rootfs.network_files = request.installer;
  rootfs.tmp_bytes = limits.tmp_mb << 20;
  rootfs.uid = uid;
  rootfs.gid = gid;
  rootfs.tmp_dirs = {runner::kMatplotlibDirInTmp};
  rootfs.tmp_seed_files = env.tmp_seed_files;
  auto plan = sandbox::PlanRootfs(rootfs);
  if (!plan) return R::Fail(plan.error());

  auto out = Pipe::Make();
  auto err = Pipe::Make();
  auto display = Pipe::Make();
  if (!out) return R::Fail(out.error());
  if (!err) return R::Fail(err.error());
  if (!display) return R::Fail(display.error());

  sandbox::SandboxSpec spec;
  spec.rootfs = std::move(plan.value());
  spec.argv = runner::InterpreterArgv();
  spec.env = runner::InterpreterEnv();
  spec.uid = uid;
  spec.gid = gid;
  spec.rlimits.processes = limits.max_processes;
  spec.rlimits.cpu_seconds = static_cast<rlim_t>(std::ceil(limits.timeout_seconds)) + 1;
  spec.rlimits.file_size_bytes = std::max(limits.workspace_mb, limits.tmp_mb) << 20;
  if (!cgroup.limits_memory()) spec.rlimits.address_space_bytes = limits.memory_mb << 20;
  // A warm child is in its cgroup already; joining again would cost another migration.
  if (!warm) spec.cgroup_procs_fds = cgroup.procs_fds();
  spec.stdout_fd = out->write.get();
  spec.stderr_fd = err->write.get();
  spec.display_fd = display->write.get();
  spec.seccomp = request.installer ? &env.installer_seccomp : &env.seccomp;
  spec.host_network = request.installer;

  BoundedUtf8Capture stdout_capture(limits.max_output_chars, request.on_stdout);
  BoundedUtf8Capture stderr_capture(limits.max_output_chars, request.on_stderr);
  DisplayChannel display_channel(limits.max_display_bytes, limits.max_display_items);
  sandbox::SandboxReport report;

  const auto start = Clock::now();
  Result<sandbox::SandboxProcess> launched =
      warm ? StartWarmChild(std::move(*warm), spec) : sandbox::LaunchSandbox(spec);
  if (warm) result.interpreter = "warm";
  out->write.reset();
  err->write.reset();
  display->write.reset();
  if (!launched) return R::Fail(launched.error());
  sandbox::SandboxProcess& process = launched.value();
  ::fcntl(process.report.get(), F_SETFL, O_NONBLOCK);

  const auto deadline =
      start + std::chrono::milliseconds(static_cast<int64_t>(limits.timeout_seconds * 1000));
  const Streams streams{out->read.get(), err->read.get(), display->read.get(),
                        stdout_capture,  stderr_capture,  display_channel};
  Supervision watched = Supervise(process, streams, request.cancel_fd, deadline, cgroup, report);
  const bool timed_out = watched.timed_out, cancelled = watched.cancelled;
  const std::string& poll_error = watched.poll_error;
  const Clock::time_point exited_at = watched.exited_at;
  rusage usage{};
  AwaitEnd(process, usage);
  auto end = report.exited ? exited_at : Clock::now();
  result.execution_time = std::chrono::duration<double>(end - start).count();
  stdout_capture.Finish();
  stderr_capture.Finish();
  display_channel.Finish();

  if (code_started != nullptr) {
    *code_started = report.setup_error.empty() && report.exec_error.empty();
  }
  if (!poll_error.empty()) return R::Fail(poll_error);
  if (!report.setup_error.empty()) {
    return R::Fail("the sandbox could not be set up: " + report.setup_error);
  }
  if (!report.exec_error.empty()) {
    return R::Fail("the interpreter could not be started: " + report.exec_error);
  }

  sandbox::CgroupStats stats = cgroup.ReadStats();
  result.cpu_time = stats.cpu_seconds;
  if (!result.cpu_time && report.exited && report.cpu_usec > 0) {
    result.cpu_time = static_cast<double>(report.cpu_usec) / 1e6;
  }
  if (!result.cpu_time) {
    result.cpu_time = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                      static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  result.peak_memory_bytes = stats.peak_memory_bytes;
  if (!result.peak_memory_bytes && report.max_rss_kb > 0) {
    result.peak_memory_bytes = report.max_rss_kb * 1024;
  }
  if (!result.peak_memory_bytes) {
    result.peak_memory_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;
  }

  result.output = stdout_capture.text();
  result.error = stderr_capture.text();
  result.output_truncated = stdout_capture.truncated();
  result.error_truncated = stderr_capture.truncated();
  // Before the sentences below are appended to `error`: they are the host's, not a stream's.
  result.outputs =
      BuildOutputs(stdout_capture.text(), stderr_capture.text(), display_channel.records());
  result.outputs_truncated = display_channel.truncated();
  const int status = report.wait_status;
  if (cancelled) {
    result.status = "killed";
    result.return_code = -SIGKILL;
    AppendSentence(result.error, "Execution was stopped: the service is shutting down");
  } else if (timed_out) {
    result.status = "timeout";
    result.return_code = -1;
    AppendSentence(result.error,
                   "Execution timeout after " + FormatNumber(limits.timeout_seconds) + " seconds");
  } else if (stats.oom_kills > 0) {
    result.status = "oom";
    result.return_code = -SIGKILL;
    AppendSentence(result.error, "Execution exceeded the memory limit of " +
                                     std::to_string(limits.memory_mb) + " MiB");
  } else if (!report.exited) {
    result.status = "killed";
    result.return_code = -SIGKILL;
    AppendSentence(result.error, "The sandbox ended before the interpreter reported its exit");
  } else if (WIFEXITED(status)) {
    result.return_code = WEXITSTATUS(status);
    result.status = result.return_code == 0 ? "ok" : "error";
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
    result.status = "timeout";
    result.return_code = -1;
    AppendSentence(result.error, "Execution exceeded the CPU time limit of " +
                                     std::to_string(spec.rlimits.cpu_seconds) + " seconds");
  } else {
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    result.status = "killed";
    result.return_code = -sig;
    AppendSentence(result.error, SignalSentence(sig));
  }

  if (!request.generated_dir.empty()) {
    Collection collected =
        CollectGeneratedFiles(workspace->upper(), workspace->lower(), request.generated_dir,
                              {limits.max_generated_files, limits.max_generated_file_bytes});
    if (!collected.error.empty()) return R::Fail(collected.error);
    for (const auto& f : collected.files) {
      FileType type = FileTypeForName(f.relative_path);
      result.generated_files.push_back(
          {NewRandomId("file_"), f.relative_path, type.kind, type.mime, f.host_path, f.size});
    }
    for (const auto& s : collected.skipped) {
      result.skipped_files.push_back({s.relative_path, s.reason, s.size});
    }
    LinkDisplayedFiles(result);
  }
  return result;
}

}  // namespace codecell::exec
