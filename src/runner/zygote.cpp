// Python.h first, as CPython asks.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
// clang-format off
#include "runner/zygote.h"
// clang-format on

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runner/embedded_python.h"
#include "runner/runner_files.h"
#include "runner/warm_child.h"
#include "sandbox/cgroups.h"
#include "sandbox/cmdline.h"
#include "sandbox/fd_passing.h"
#include "sandbox/fds.h"
#include "sandbox/file_io.h"
#include "sandbox/namespaces.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/spec_wire.h"
#include "sandbox/warm_init.h"

namespace codecell::runner {
namespace {

using nlohmann::json;
using sandbox::UniqueFd;

// Measured idle child cost is about 1-3 MiB of unshared memory (docs/benchmarks.md); the pool is
// clamped so that idle children at this generous estimate use at most a quarter of MemAvailable.
constexpr uint64_t kIdleChildBudgetBytes = 16ull << 20;
constexpr size_t kMaxPool = 64;

void Log(const std::string& message) {
  std::string line = json{{"component", "zygote"}, {"pid", ::getpid()}, {"message", message}}.dump(
                         -1, ' ', false, json::error_handler_t::replace) +
                     "\n";
  sandbox::WriteAll(2, line);
}

size_t CountThreads() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

uint64_t MemAvailableBytes() {
  auto text = sandbox::ReadFileToString("/proc/meminfo");
  if (!text) return 0;
  auto pos = text->find("MemAvailable:");
  if (pos == std::string::npos) return 0;
  return std::strtoull(text->c_str() + pos + 13, nullptr, 10) * 1024;
}

// Maps the interpreter's heap with 2 MiB pages where it can (MADV_COLLAPSE, Linux 6.1): fork
// copies, and each child's exit tears down, one entry per huge page instead of 512. Measured with
// the default preloads: about 40 of 94 MiB collapse, fork + exit drops from ~11 to ~8.5 ms. A
// child's first write to a shared huge page splits it and copies 4 KiB, as before. Returns MiB.
uint64_t CollapseHeapIntoHugePages() {
  constexpr int kMadvCollapse = 25;
  constexpr uintptr_t kHuge = 2u << 20;
  auto maps = sandbox::ReadFileToString("/proc/self/maps", 16u << 20);
  if (!maps) return 0;
  uint64_t collapsed = 0;
  std::istringstream in(*maps);
  for (std::string line; std::getline(in, line);) {
    uintptr_t start = 0, end = 0;
    char perms[8] = {};
    char path[256] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %*s %255s", &start, &end, perms, path) < 3) {
      continue;
    }
    if (std::string(perms) != "rw-p" || (path[0] != '\0' && std::string(path) != "[heap]")) {
      continue;
    }
    uintptr_t from = (start + kHuge - 1) / kHuge * kHuge, to = end / kHuge * kHuge;
    if (to > from && ::madvise(reinterpret_cast<void*>(from), to - from, kMadvCollapse) == 0) {
      collapsed += to - from;
    }
  }
  return collapsed >> 20;
}

// The zygote's own /tmp: the preloads see the same MPLCONFIGDIR (/tmp/.matplotlib, seeded with
// the font cache) as each sandbox's /tmp, so the paths matplotlib remembers are valid inside.
sandbox::Status PrivateTmp(const std::string& data_dir) {
  if (::unshare(CLONE_NEWNS) != 0) return sandbox::Status::Fail("unshare(CLONE_NEWNS) failed");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return sandbox::Status::Fail("cannot make the zygote's mounts private");
  }
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777") != 0) {
    return sandbox::Status::Fail(std::string("mount /tmp: ") + std::strerror(errno));
  }
  std::string mpl = std::string("/tmp") + kMatplotlibDirInTmp;
  sandbox::MakeDirs(mpl, 0700);
  for (const auto& [host, inside] : PrepareMatplotlibCache(data_dir + "/cache/matplotlib")) {
    auto content = sandbox::ReadFileToString(host, 64u << 20);
    if (content) sandbox::WriteStringToFile("/tmp" + inside, *content);
  }
  return sandbox::OkStatus();
}

// One pre-forked execution: its init (pid 1) and its interpreter (pid 2), both our children.
struct Child {
  pid_t interpreter = -1, init = -1;
  UniqueFd init_pidfd, channel, report_read, report_write;
  std::string cgroup_name;
  sandbox::ExecutionCgroup cgroup;  // removed if the child dies idle; the client's once handed out
  bool handed_out = false, interpreter_reaped = false, init_reaped = false;
};

class Zygote {
 public:
  Zygote(sandbox::SeccompProgram seccomp, Interpreter interpreter, sandbox::CgroupLayout cgroups,
         UniqueFd init_image, UniqueFd own_pid_ns)
      : seccomp_(std::move(seccomp)),
        interpreter_(std::move(interpreter)),
        cgroups_(std::move(cgroups)),
        init_image_(std::move(init_image)),
        own_pid_ns_(std::move(own_pid_ns)) {
    int alive[2];
    if (::pipe2(alive, O_CLOEXEC) == 0) {
      alive_read_.reset(alive[0]);
      alive_write_.reset(alive[1]);
    }
    init_path_ = "/proc/self/fd/" + std::to_string(init_image_.get());
  }

  ~Zygote() {
    // Idle children would die with us anyway; reaping them first lets their cgroups be removed.
    for (auto& [pid, child] : children_) ::kill(pid, SIGKILL);
    while (::waitpid(-1, nullptr, 0) > 0) {
    }
  }

  sandbox::Status ForkOne() {
    // A thread here would leave locks held in the child: refuse rather than fork.
    if (size_t threads = CountThreads(); threads != 1) {
      return sandbox::Status::Fail("the zygote has " + std::to_string(threads) +
                                   " threads; refusing to fork (a preload started a thread)");
    }
    auto child = std::make_shared<Child>();
    int pair[2], report[2], ready[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0 ||
        ::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(ready, O_CLOEXEC) != 0) {
      return sandbox::Status::Fail(std::string("socketpair/pipe2: ") + std::strerror(errno));
    }
    UniqueFd theirs(pair[1]), ready_read(ready[0]), ready_write(ready[1]);
    child->channel.reset(pair[0]);
    child->report_read.reset(report[0]);
    child->report_write.reset(report[1]);
    if (cgroups_.mode != sandbox::CgroupMode::kNone) {
      // The client sets the execution's real limits when it adopts the cgroup; until then the
      // defaults bound an idle child.
      child->cgroup_name = "warm-" + std::to_string(::getpid()) + "-" + std::to_string(++forked_);
      auto cgroup = sandbox::ExecutionCgroup::Create(cgroups_, child->cgroup_name, {.cpus = 1});
      if (!cgroup) return sandbox::Status::Fail(cgroup.error());
      child->cgroup = std::move(cgroup.value());
    }
    // Our next child is pid 1 of a new pid namespace: the init, a small static program spawned
    // without copying our memory (posix_spawn is vfork and exec). The interpreter forked after it
    // becomes pid 2 of the same namespace, as in a cold sandbox.
    if (::unshare(CLONE_NEWPID) != 0) {
      return sandbox::Status::Fail(std::string("unshare(CLONE_NEWPID): ") + std::strerror(errno));
    }
    auto restore_pid_ns = [&] { ::setns(own_pid_ns_.get(), CLONE_NEWPID); };
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, alive_read_.get(), 0);
    posix_spawn_file_actions_adddup2(&actions, ready_write.get(), 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const char* argv[] = {"codecell-init", nullptr};
    const char* envp[] = {nullptr};
    int rc = posix_spawn(&child->init, init_path_.c_str(), &actions, &attr,
                         const_cast<char* const*>(argv), const_cast<char* const*>(envp));
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      restore_pid_ns();
      return sandbox::Status::Fail(std::string("cannot start the warm init: ") + std::strerror(rc));
    }
    ready_write.reset();
    child->init_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, child->init, 0)));
    ChildSetup setup{theirs.get(),
                     child->report_write.get(),
                     ready_read.get(),
                     child->init,
                     child->cgroup.procs_fds(),
                     &seccomp_,
                     interpreter_.warm_main,
                     &command_line_};
    PyOS_BeforeFork();
    pid_t pid = sandbox::ForkIntoNamespaces(0);
    if (pid == 0) WarmChildMain(setup);
    PyOS_AfterFork_Parent();
    restore_pid_ns();
    children_[child->init] = child;
    if (pid < 0) {
      ::kill(child->init, SIGKILL);
      return sandbox::Status::Fail(std::string("fork: ") + std::strerror(-pid));
    }
    child->interpreter = pid;
    children_[pid] = child;
    // The zygote writes the exit record itself; a vanished reader must not block or kill it.
    ::fcntl(child->report_write.get(), F_SETFL, O_NONBLOCK);
    idle_.push_back(child);
    return sandbox::OkStatus();
  }

  sandbox::Status Refill() {
    while (idle_.size() < pool_size_) {
      if (auto s = ForkOne(); !s) return s;
    }
    return sandbox::OkStatus();
  }

  // One client connection: answer with a child's channel, init pidfd and report pipe.
  void Serve(int connection) {
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != 0) {
      Log("refused a connection from uid " + std::to_string(peer.uid));
      return;
    }
    timeval timeout{1, 0};
    ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    auto request = sandbox::ReceiveMessage(connection, 4096);
    if (!request) return;
    if (idle_.empty()) {
      if (auto s = ForkOne(); !s) {
        sandbox::SendMessage(connection, json{{"error", s.error()}}.dump(), {});
        fatal_ = s.error();
        return;
      }
    }
    std::shared_ptr<Child> child = idle_.front();
    idle_.erase(idle_.begin());
    child->handed_out = true;
    int fds[] = {child->channel.get(), child->init_pidfd.get(), child->report_read.get()};
    auto sent = sandbox::SendMessage(
        connection, json{{"pid", child->init}, {"cgroup", child->cgroup_name}}.dump(), fds);
    if (!sent) {
      // The client is gone: the child will read end of file and leave; its record goes nowhere.
      Log("could not hand out child " + std::to_string(child->interpreter) + ": " + sent.error());
    }
    child->cgroup.Release();
    child->channel.reset();
    child->init_pidfd.reset();
    child->report_read.reset();
    ++handed_out_;
  }

  // Reaps ended children. A handed-out interpreter's wait status goes on its report pipe; then its
  // init is killed, which ends the namespace; the pipe closes once both are reaped, so the client
  // sees end of file only when nothing of the execution is left.
  void Reap() {
    for (;;) {
      int status = 0;
      rusage usage{};
      pid_t pid = ::wait4(-1, &status, WNOHANG, &usage);
      if (pid <= 0) return;
      auto it = children_.find(pid);
      if (it == children_.end()) continue;
      std::shared_ptr<Child> child = it->second;
      children_.erase(it);
      if (pid == child->interpreter) {
        child->interpreter_reaped = true;
        if (child->handed_out) {
          sandbox::WriteReport(child->report_write.get(), sandbox::ReportRecord::kExited, 0, status,
                               "exited", &usage);
        }
      } else {
        child->init_reaped = true;
      }
      if (!child->handed_out) {
        Log("idle child " + std::to_string(pid) + " ended unexpectedly (wait status " +
            std::to_string(status) + ")");
        std::erase(idle_, child);
        if (++idle_deaths_ >= 10 && handed_out_ == 0) {
          fatal_ = "warm children keep dying before their first execution";
        }
      }
      // Either one gone ends the other: the init's death kills the namespace, the interpreter's
      // death means the execution is over.
      if (!child->init_reaped) ::kill(child->init, SIGKILL);
      if (!child->interpreter_reaped && child->interpreter > 0) {
        ::kill(child->interpreter, SIGKILL);
      }
    }
  }

  int Loop(int listen_fd, int signal_fd) {
    for (;;) {
      if (!fatal_.empty()) {
        Log(fatal_);
        return 3;
      }
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
      // While the pool is short, wake up to refill it between requests.
      int timeout = idle_.size() < pool_size_ ? 0 : -1;
      int n = ::poll(fds, 2, timeout);
      if (n < 0 && errno != EINTR) return 1;
      if (n == 0) {
        if (auto s = ForkOne(); !s) fatal_ = s.error();
        continue;
      }
      if (fds[1].revents != 0) {
        signalfd_siginfo info;
        while (::read(signal_fd, &info, sizeof info) == sizeof info) {
          if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) return 0;
        }
        Reap();
      }
      if (fds[0].revents != 0) {
        UniqueFd connection(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (connection.valid()) Serve(connection.get());
      }
    }
  }

  void set_pool_size(size_t n) { pool_size_ = n; }
  size_t pool_size() const { return pool_size_; }
  std::vector<pid_t> idle_pids() const {
    std::vector<pid_t> pids;
    for (const auto& c : idle_) pids.push_back(c->interpreter);
    return pids;
  }

 private:
  sandbox::SeccompProgram seccomp_;
  Interpreter interpreter_;
  sandbox::CgroupLayout cgroups_;
  UniqueFd init_image_, own_pid_ns_;
  UniqueFd alive_read_, alive_write_;  // inits exit at end of file: when the zygote is gone
  std::string init_path_;
  CommandLine command_line_;
  uint64_t forked_ = 0, handed_out_ = 0, idle_deaths_ = 0;
  size_t pool_size_ = 0;
  std::vector<std::shared_ptr<Child>> idle_;
  std::map<pid_t, std::shared_ptr<Child>> children_;  // by interpreter pid and by init pid
  std::string fatal_;
};

sandbox::Result<UniqueFd> Listen(const std::string& path) {
  using R = sandbox::Result<UniqueFd>;
  auto address = sandbox::UnixSocketAddress(path);
  if (!address) return R::Fail("zygote socket: " + address.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return R::Fail(std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());
  // Created 0600 (umask), so only root can connect; the peer's uid is checked again on accept.
  mode_t old_mask = ::umask(0177);
  int bound = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address);
  ::umask(old_mask);
  if (bound != 0) return R::Fail("bind " + path + ": " + std::strerror(errno));
  if (::listen(fd.get(), 128) != 0) return R::Fail(std::string("listen: ") + std::strerror(errno));
  return fd;
}

}  // namespace

std::vector<std::string> DefaultPreload() {
  return {"numpy", "pandas", "matplotlib", "matplotlib.pyplot", "scipy.stats", "seaborn"};
}

int ZygoteMain(const ZygoteOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto fail = [](const std::string& message) {
    Log(message);
    return 1;
  };
  if (::geteuid() != 0) return fail("the zygote must run as root (it builds sandboxes)");
  // Descriptors our parent leaked to us would reach every child (and the inits, through exec).
  if (!sandbox::CloseFdsFrom(3).ok()) return fail("close_range failed");
  // Dispositions inherited from whoever started us (nohup, a shell's background job) would reach
  // every child; start from the defaults, as a fresh interpreter's parent would give it.
  (void)sandbox::ResetSignals(true);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  UniqueFd signal_fd(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  ::signal(SIGPIPE, SIG_IGN);

  // The interpreter's environment is InterpreterEnv and nothing else: the children inherit it,
  // and the caller's variables (the host's secrets) must not be in this process at all.
  ::clearenv();
  // putenv keeps the pointer it is given: the strings live as long as the process.
  static std::vector<std::string> environment = InterpreterEnv();
  for (auto& entry : environment) ::putenv(entry.data());
  if (::chdir("/") != 0) return fail("chdir /");
  if (auto s = PrivateTmp(options.data_dir); !s) return fail(s.error());

  auto seccomp = sandbox::BuildSandboxSeccompProgram();
  if (!seccomp) return fail(seccomp.error());
  auto listen_fd = Listen(options.socket_path);
  if (!listen_fd) return fail(listen_fd.error());
  if (auto s = StartPython(); !s) return fail(s.error());
  auto interpreter = Preload(options.preload);
  if (!interpreter) return fail(interpreter.error());
  json preload_report = interpreter->report;
  uint64_t huge_mib = CollapseHeapIntoHugePages();

  sandbox::CgroupLayout cgroups = sandbox::DetectCgroups();
  if (!cgroups.missing.empty()) Log(cgroups.Describe());
  auto init_image = sandbox::WarmInitMemfd();
  if (!init_image) return fail(init_image.error());
  UniqueFd own_pid_ns(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
  if (!own_pid_ns.valid()) return fail("cannot open /proc/self/ns/pid");
  sandbox::MakeDirs(sandbox::kWarmInitRoot, 0755);
  Zygote zygote(std::move(seccomp.value()), std::move(interpreter.value()), std::move(cgroups),
                std::move(init_image.value()), std::move(own_pid_ns));
  size_t pool = std::min(options.pool_size, kMaxPool);
  if (uint64_t available = MemAvailableBytes(); available > 0) {
    size_t affordable = static_cast<size_t>(available / 4 / kIdleChildBudgetBytes);
    if (affordable < pool) {
      Log("pool clamped from " + std::to_string(pool) + " to " + std::to_string(affordable) +
          " children by available memory");
      pool = affordable;
    }
  }
  zygote.set_pool_size(std::max<size_t>(pool, 1));
  if (auto s = zygote.Refill(); !s) return fail(s.error());

  json ready = {
      {"ready", true},
      {"pid", ::getpid()},
      {"python", Py_GetVersion()},
      {"pool_size", zygote.pool_size()},
      {"idle_pids", zygote.idle_pids()},
      {"preloaded", preload_report.value("preloaded", json::array())},
      {"failed", preload_report.value("failed", json::object())},
      {"heap_in_huge_pages_mib", huge_mib},
      {"startup_seconds",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
  if (!sandbox::WriteAll(1, ready.dump(-1, ' ', false, json::error_handler_t::replace) + "\n")) {
    return fail("cannot report readiness");
  }
  int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ::dup2(null_fd, 1);
  ::close(null_fd);
  int status = zygote.Loop(listen_fd->get(), signal_fd.get());
  ::unlink(options.socket_path.c_str());
  return status;
}

}  // namespace codecell::runner
