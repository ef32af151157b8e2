#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "api/config.h"
#include "cli/commands.h"
#include "exec/execution.h"
#include "packages/installer.h"
#include "store/store.h"

namespace codecell::cli {

std::unique_ptr<packages::PackageManager> MakeLocalPackageManager(const api::ServiceConfig& config,
                                                                  store::Store& store) {
  const exec::ExecutionEnvironment defaults;
  const std::string data_dir = config.data_dir;
  // Prepared only when pip must run: it needs root and enters a private mount namespace.
  auto environment = std::make_shared<std::optional<exec::ExecutionEnvironment>>();
  auto run = [data_dir, environment](
                 exec::ExecutionRequest& request) -> sandbox::Result<exec::ExecutionResult> {
    if (!environment->has_value()) {
      auto prepared = exec::ExecutionEnvironment::Prepare(data_dir);
      if (!prepared) return sandbox::Result<exec::ExecutionResult>::Fail(prepared);
      *environment = std::move(prepared.value());
    }
    return exec::RunExecution(environment->value(), request);
  };
  return std::make_unique<packages::PackageManager>(config.packages, data_dir, store, run,
                                                    defaults.installer_uid);
}

std::function<int()> AddPackagesCommand(CLI::App& app) {
  struct Options {
    api::ConfigOverrides flags;
    std::vector<std::string> names;
    std::string requester = "cli";
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* packages = app.add_subcommand(
      "packages",
      "Approved packages: install into the shared package environment (pip in a sandbox), list, "
      "refresh.");
  packages->require_subcommand(1);
  auto common = [&](CLI::App* sub) {
    sub->add_option("--config", o->flags.config_file, "TOML config file ([packages] section)");
    sub->add_option("--data-dir", o->flags.data_dir, "the service's data directory");
    sub->add_flag("--json", o->json, "print the result as JSON");
  };
  CLI::App* install = packages->add_subcommand(
      "install", "Install approved packages (import or distribution names); exit 1 if any failed.");
  install->add_option("names", o->names, "package names (e.g. plotly sklearn PIL)")->required();
  install->add_option("--user", o->requester, "recorded as who asked (default: cli)");
  common(install);
  CLI::App* list = packages->add_subcommand(
      "list", "List the installed packages (with --json: also the allowlist).");
  common(list);
  CLI::App* refresh = packages->add_subcommand(
      "refresh", "Rebuild the environment now with the packages used within refresh_days.");
  common(refresh);

  return [o, install, list, refresh] {
    auto config = api::LoadServiceConfig(o->flags);
    if (!config) {
      std::cerr << "codecell packages: " << config.error() << std::endl;
      return 2;
    }
    std::error_code ec;
    if (std::filesystem::create_directories(config->data_dir, ec); ec) {
      std::cerr << "codecell packages: cannot create " << config->data_dir << ": " << ec.message()
                << std::endl;
      return 1;
    }
    ::chmod(config->data_dir.c_str(), 0700);
    try {
      auto store = store::OpenSqliteStore(config->data_dir + "/codecell.db");
      auto manager = MakeLocalPackageManager(*config, *store);
      if (auto init = manager->Init(); !init) {
        std::cerr << "codecell packages: " << init.error() << std::endl;
        return 1;
      }
      if (install->parsed()) {
        if (::geteuid() != 0) {
          std::cerr << "codecell packages install: must run as root (pip runs in a sandbox)\n";
          return 2;
        }
        if (!o->json) {
          std::cerr << "codecell: installing " << o->names.size()
                    << " package(s) with pip in a sandbox (at most "
                    << config->packages.install_timeout_seconds << " s)..." << std::endl;
        }
        packages::InstallReport report = manager->Install(o->names, o->requester);
        if (o->json) {
          std::cout << report.ToJson().dump(2) << std::endl;
        } else {
          for (const auto& p : report.packages) {
            std::ostream& out = p.status == "failed" ? std::cerr : std::cout;
            out << p.asked;
            if (!p.distribution.empty() && p.distribution != p.asked)
              out << " (" << p.distribution << ")";
            if (!p.version.empty()) out << " " << p.version;
            out << ": " << p.status;
            if (p.status == "installed")
              out << " in " << std::fixed << std::setprecision(1) << p.seconds << " s";
            if (!p.reason.empty()) out << ": " << p.reason;
            out << std::endl;
          }
        }
        return report.all_ok() ? 0 : 1;
      }
      if (list->parsed()) {
        nlohmann::json out = manager->List();
        if (o->json) {
          std::cout << out.dump(2) << std::endl;
        } else {
          std::cout << "environment: "
                    << (out["environment"]["exists"] ? out["environment"]["path"].get<std::string>()
                                                     : std::string("none yet"))
                    << std::endl;
          for (const auto& p : out["packages"]) {
            std::cout << "  " << p["name"].get<std::string>() << " "
                      << p["version"].get<std::string>()
                      << (p["requested"].get<bool>() ? "" : " (dependency)") << std::endl;
          }
        }
        return 0;
      }
      if (refresh->parsed()) {
        if (::geteuid() != 0) {
          std::cerr << "codecell packages refresh: must run as root (pip runs in a sandbox)\n";
          return 2;
        }
        nlohmann::json out = manager->Refresh(/*force=*/true);
        std::cout << out.dump(2) << std::endl;
        return out.value("refreshed", false) ? 0 : 1;
      }
    } catch (const store::StoreError& e) {
      std::cerr << "codecell packages: " << e.what() << std::endl;
      return 1;
    }
    return 2;
  };
}

}  // namespace codecell::cli
