#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace codecell::api {
struct ServiceConfig;
struct ConfigOverrides;
class Service;
}  // namespace codecell::api
namespace codecell::store {
class Store;
}
namespace codecell::packages {
class PackageManager;
}

namespace codecell::cli {

// Each Add* registers a subcommand and returns the function to run when it was chosen; that
// function returns the process exit code.
std::function<int()> AddRunCommand(CLI::App& app);
std::function<int()> AddStatusCommand(CLI::App& app);
std::function<int()> AddServeCommand(CLI::App& app);
std::function<int()> AddCleanupCommand(CLI::App& app);
std::function<int()> AddExecuteHelperCommand(CLI::App& app);
std::function<int()> AddZygoteCommand(CLI::App& app);
std::function<int()> AddPackagesCommand(CLI::App& app);
std::function<int()> AddMcpCommand(CLI::App& app);

// Blocks SIGTERM and SIGINT in this thread and every thread it starts (one thread then takes
// them with sigwait) and ignores SIGPIPE; returns the set for sigwait. `serve` and `mcp`.
sigset_t BlockStopSignals();

// The service of `codecell serve` and `codecell mcp`, set up from the settings: root, the data
// dir, the store, the execution environment (call while single-threaded). nullptr after printing
// why, with the exit code in `exit_code`.
std::unique_ptr<api::Service> OpenService(const api::ConfigOverrides& flags,
                                          const std::string& command, int& exit_code);

// The package manager of a local data dir, for `codecell packages` and `codecell cleanup`: pip
// runs in this process's own sandboxes (no service needed).
std::unique_ptr<packages::PackageManager> MakeLocalPackageManager(const api::ServiceConfig& config,
                                                                  store::Store& store);

// The data directory: --data-dir, else $CODECELL_DATA_DIR, else /var/lib/codecell.
std::string DefaultDataDir();

}  // namespace codecell::cli
