#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "api/config.h"
#include "api/service.h"
#include "cli/commands.h"
#include "sandbox/cgroups.h"
#include "sandbox/seccomp_filter.h"
#include "store/store.h"

namespace codecell::cli {

std::function<int()> AddStatusCommand(CLI::App& app) {
  auto flags = std::make_shared<api::ConfigOverrides>();
  CLI::App* status = app.add_subcommand(
      "status",
      "Print the service's status keys (from the local data dir) and what this host's sandbox "
      "can enforce, as JSON.");
  status->add_option("--config", flags->config_file, "TOML config file");
  status->add_option("--data-dir", flags->data_dir, "the service's data directory");
  return [flags] {
    auto config = api::LoadServiceConfig(*flags);
    if (!config) {
      std::cerr << "codecell status: " << config.error() << std::endl;
      return 2;
    }
    nlohmann::json out;
    try {
      auto store = store::OpenSqliteStore(config->data_dir + "/codecell.db");
      out = api::Service::StoredStatus(*config, *store);
    } catch (const store::StoreError& e) {
      std::cerr << "codecell status: " << e.what() << std::endl;
      return 1;
    }
    const auto cg = sandbox::DetectCgroups();
    auto seccomp = sandbox::BuildSandboxSeccompProgram();
    out["data_dir"] = config->data_dir;
    out["sandbox"] = {{"cgroup_mode", cg.mode == sandbox::CgroupMode::kV2   ? "v2"
                                      : cg.mode == sandbox::CgroupMode::kV1 ? "v1"
                                                                            : "none"},
                      {"memory_limit", cg.memory},
                      {"process_limit_cgroup", cg.pids},
                      {"cpu_accounting", cg.cpu_accounting},
                      {"missing", cg.missing},
                      {"seccomp", seccomp ? "ok" : seccomp.error()},
                      {"root", ::geteuid() == 0}};
    std::cout << out.dump(2) << std::endl;
    return 0;
  };
}

}  // namespace codecell::cli
