#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "api/config.h"
#include "api/service.h"
#include "cli/commands.h"
#include "exec/helper_process.h"
#include "store/store.h"

namespace codecell::cli {
namespace {

struct ServeOptions {
  api::ConfigOverrides flags;
};

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

}  // namespace

sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

std::unique_ptr<api::Service> OpenService(const api::ConfigOverrides& flags,
                                          const std::string& command, int& exit_code) {
  exit_code = 1;
  auto config = api::LoadServiceConfig(flags);
  if (!config) {
    std::cerr << command << ": " << config.error() << std::endl;
    exit_code = 2;
    return nullptr;
  }
  if (::geteuid() != 0) {
    std::cerr << command << ": must run as root (executions need namespaces, cgroups and slot uids)"
              << std::endl;
    return nullptr;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->data_dir, ec);
  if (ec) {
    std::cerr << command << ": cannot create " << config->data_dir << ": " << ec.message()
              << std::endl;
    return nullptr;
  }
  ::chmod(config->data_dir.c_str(), 0700);
  std::unique_ptr<store::Store> store;
  try {
    store = store::OpenSqliteStore(config->data_dir + "/codecell.db");
  } catch (const store::StoreError& e) {
    std::cerr << command << ": " << e.what() << std::endl;
    return nullptr;
  }
  // While single-threaded: this enters the private mount namespace where warm executions mount
  // their workspaces, compiles the seccomp filter and sweeps what a previous run left behind.
  auto environment = exec::ExecutionEnvironment::Prepare(config->data_dir);
  if (!environment) {
    std::cerr << command << ": " << environment.error() << std::endl;
    return nullptr;
  }
  environment->allow_cold = false;
  exit_code = 0;
  return std::make_unique<api::Service>(std::move(config.value()), std::move(store), SelfExe(),
                                        std::move(environment.value()));
}

namespace {

int Serve(const ServeOptions& o) {
  sigset_t stop_signals = BlockStopSignals();
  int exit_code = 0;
  auto opened = OpenService(o.flags, "codecell serve", exit_code);
  if (!opened) return exit_code;
  api::Service& service = *opened;
  std::thread signals([&] {
    int sig = 0;
    ::sigwait(&stop_signals, &sig);
    service.Stop();
  });
  std::string error;
  bool served = service.Run(error);
  if (!served) {
    std::cerr << "codecell serve: " << error << std::endl;
    ::kill(::getpid(), SIGTERM);  // wake the signal thread
  }
  signals.join();
  return served ? 0 : 1;
}

}  // namespace

std::function<int()> AddServeCommand(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run the HTTP service (SPEC API v1). Settings: built-in defaults < TOML --config < "
      "CODECELL_* environment < flags; see docs/service.md.");
  serve->add_option("--config", o->flags.config_file, "TOML config file (or $CODECELL_CONFIG)");
  serve->add_option("--listen", o->flags.listen, "HOST:PORT (default 127.0.0.1:8080)");
  serve->add_option("--data-dir", o->flags.data_dir,
                    "state: SQLite metadata, files, work dirs (default /var/lib/codecell)");
  serve->add_option("--api-key", o->flags.api_keys,
                    "accept this Bearer key (repeatable); required off loopback");
  return [o] { return Serve(*o); };
}

std::function<int()> AddExecuteHelperCommand(CLI::App& app) {
  CLI::App* helper = app.add_subcommand("__execute", "");
  helper->group("");  // internal: one execution for the service, JSON on stdin and stdout
  return [] { return exec::ExecuteHelperMain(); };
}

}  // namespace codecell::cli
