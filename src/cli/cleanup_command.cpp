#include <unistd.h>

#include <iostream>

#include "api/config.h"
#include "api/service.h"
#include "cli/commands.h"
#include "exec/maintenance.h"
#include "files/file_manager.h"
#include "store/store.h"

namespace codecell::cli {

std::function<int()> AddCleanupCommand(CLI::App& app) {
  auto flags = std::make_shared<api::ConfigOverrides>();
  CLI::App* cleanup = app.add_subcommand(
      "cleanup", "Delete expired files and their records now (what the service does hourly).");
  cleanup->add_option("--config", flags->config_file, "TOML config file");
  cleanup->add_option("--data-dir", flags->data_dir, "the service's data directory");
  return [flags] {
    auto config = api::LoadServiceConfig(*flags);
    if (!config) {
      std::cerr << "codecell cleanup: " << config.error() << std::endl;
      return 2;
    }
    try {
      auto store = store::OpenSqliteStore(config->data_dir + "/codecell.db");
      files::FileManager files(*store, config->data_dir, config->files);
      auto packages = MakeLocalPackageManager(*config, *store);
      if (auto init = packages->Init(); !init) {
        std::cerr << "codecell cleanup: " << init.error() << std::endl;
        return 1;
      }
      std::cout << exec::Maintenance::RunCleanup(files, *store, *packages).dump(2) << std::endl;
    } catch (const store::StoreError& e) {
      std::cerr << "codecell cleanup: " << e.what() << std::endl;
      return 1;
    }
    return 0;
  };
}

}  // namespace codecell::cli
