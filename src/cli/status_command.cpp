#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "exec/execution.h"
#include "runner/runner_files.h"

namespace codecell::cli {

std::function<int()> AddStatusCommand(CLI::App& app) {
  auto data_dir = std::make_shared<std::string>(DefaultDataDir());
  CLI::App* status = app.add_subcommand(
      "status", "Print what this host's sandbox can enforce (cgroups, seccomp) as JSON.");
  status->add_option("--data-dir", *data_dir, "codecell's state directory");
  return [data_dir] {
    auto env = exec::ExecutionEnvironment::Prepare(*data_dir);
    if (!env) {
      std::cerr << "codecell: " << env.error() << std::endl;
      return 1;
    }
    const auto& cg = env->cgroups;
    nlohmann::json out = {{"python_path", runner::kSystemPython},
                          {"data_dir", *data_dir},
                          {"sandbox",
                           {{"cgroup_mode", cg.mode == sandbox::CgroupMode::kV2   ? "v2"
                                            : cg.mode == sandbox::CgroupMode::kV1 ? "v1"
                                                                                  : "none"},
                            {"memory_limit", cg.memory},
                            {"process_limit_cgroup", cg.pids},
                            {"cpu_accounting", cg.cpu_accounting},
                            {"missing", cg.missing},
                            {"seccomp_denied_syscalls", env->seccomp.denied_syscalls.size()}}}};
    std::cout << out.dump(2) << std::endl;
    return 0;
  };
}

}  // namespace codecell::cli
