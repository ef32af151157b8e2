#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "api/config.h"
#include "api/mcp.h"
#include "api/metrics.h"
#include "api/tool_service.h"
#include "exec/execution_runner.h"
#include "exec/execution_service.h"
#include "exec/helper_process.h"
#include "exec/maintenance.h"
#include "exec/zygote_supervisor.h"
#include "files/file_manager.h"
#include "packages/installer.h"
#include "store/store.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace codecell::api {

struct ServiceParts;

// The running service: its parts built in dependency order, the HTTP server over them (routes in
// *_routes.cpp), start-up and shutdown. The domain work is in exec::ExecutionService (every
// execution), ToolService (tools and MCP), exec::Maintenance (cleanup).
class Service {
 public:
  // `environment`: prepared by the caller while still single-threaded (it enters a private mount
  // namespace, where warm executions mount their workspaces).
  Service(ServiceConfig config, std::unique_ptr<store::Store> store, std::string self_exe,
          exec::ExecutionEnvironment environment);
  ~Service();

  // Binds, starts the rest (Start) and serves until Stop(); false (and `error`) if it could not.
  bool Run(std::string& error);
  // What Run() starts besides HTTP (files, packages, the cleanup thread, the zygotes): for
  // `codecell mcp` over stdio, which reaches the service through mcp_backend().
  bool Start(std::string& error);
  // Stops accepting, lets executions finish within the grace period, then cancels them.
  void Stop();

  McpBackend& mcp_backend() { return tools_; }

  // SPEC's status keys that come from the configuration, the store and the data dir (also
  // `codecell status`).
  static nlohmann::json StoredStatus(const ServiceConfig& config, store::Store& store);

 private:
  nlohmann::json Status();
  exec::ExecutionServiceSettings ExecutionSettings() const;
  ToolLimits ToolLimitsNow() const;

  ServiceConfig config_;
  std::unique_ptr<store::Store> store_;
  files::FileManager files_;
  exec::HelperProcesses helpers_;
  exec::ZygoteSupervisor zygote_;
  exec::ExecutionEnvironment environment_;
  exec::SandboxRunner runner_;
  packages::PackageManager packages_;
  exec::Maintenance maintenance_;
  exec::ManagedPackages managed_packages_;
  exec::ExecutionService executions_;
  Metrics metrics_;
  ToolService tools_;
  McpServer mcp_;
  McpSessions mcp_sessions_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<ServiceParts> parts_;  // what the routes reach (routes.h)
  // Run() was called: Stop() waits for the listener to start.
  std::atomic<bool> serving_http_{false};
  std::atomic<bool> run_ended_{false};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace codecell::api
