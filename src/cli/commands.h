#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace codecell::cli {

// Each Add* registers a subcommand and returns the function to run when it was chosen; that
// function returns the process exit code.
std::function<int()> AddRunCommand(CLI::App& app);
std::function<int()> AddStatusCommand(CLI::App& app);
std::function<int()> AddServeCommand(CLI::App& app);
std::function<int()> AddCleanupCommand(CLI::App& app);
std::function<int()> AddExecuteHelperCommand(CLI::App& app);
std::function<int()> AddZygoteCommand(CLI::App& app);

// The data directory: --data-dir, else $CODECELL_DATA_DIR, else /var/lib/codecell.
std::string DefaultDataDir();

}  // namespace codecell::cli
