#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "api/config.h"
#include "api/mcp.h"
#include "api/metrics.h"
#include "api/tools.h"
#include "exec/admission.h"
#include "exec/helper_process.h"
#include "exec/zygote_supervisor.h"
#include "files/file_manager.h"
#include "packages/installer.h"
#include "store/store.h"

namespace httplib {
class Server;
struct Response;
}  // namespace httplib

namespace codecell::api {

// The HTTP service: routes of SPEC's API v1 over cpp-httplib, the file manager, admission of
// executions, the hourly cleanup and metrics. Executions run in helper processes.
class Service : public McpBackend {
 public:
  // `environment`: prepared by the caller while still single-threaded (it enters a private mount
  // namespace, where warm executions mount their workspaces).
  Service(ServiceConfig config, std::unique_ptr<store::Store> store, std::string self_exe,
          exec::ExecutionEnvironment environment);
  ~Service();

  // Binds, starts the cleanup thread and serves until Stop(); returns false if binding failed.
  bool Run(std::string& error);
  // What Run() starts besides HTTP (files, packages, the cleanup thread, the zygotes): for
  // `codecell mcp` over stdio, which reaches the service through its McpBackend side.
  bool Start(std::string& error);
  // Stops accepting, lets executions finish within the grace period, then cancels them.
  void Stop();

  // SPEC's status keys that come from the configuration, the store and the data dir (also
  // `codecell status`).
  static nlohmann::json StoredStatus(const ServiceConfig& config, store::Store& store);
  // The same work as POST /v1/cleanup (also used by `codecell cleanup`): expired files, and the
  // package environment's refresh when it is due.
  // McpBackend: what the MCP server (stdio or /mcp) calls.
  nlohmann::json ToolDefinitionsNow() override;
  nlohmann::json CallTool(const std::string& user, const ParsedToolCall& call) override;
  sandbox::Result<nlohmann::json> UploadFile(const std::string& user, const std::string& filename,
                                             const std::string& bytes) override;
  nlohmann::json ListFiles(const std::string& user) override;
  std::optional<nlohmann::json> FindFile(const std::string& user,
                                         const std::string& file_id) override;
  sandbox::Result<std::string> ReadFileBytes(const std::string& user,
                                             const std::string& file_id) override;
  uint64_t MaxUploadBytes() override { return config_.files.max_upload_bytes; }

  static nlohmann::json RunCleanup(files::FileManager& files, store::Store& store,
                                   packages::PackageManager& packages, Metrics* metrics);

 private:
  void Routes();
  void CleanupLoop();
  nlohmann::json Status();
  sandbox::Result<nlohmann::json> RunOne(exec::ExecutionRequest& request);
  void PackageRoutes();
  void ToolRoutes();
  ToolLimits ToolLimitsNow() const;
  // Streamable HTTP at /mcp: sessions, Origin checks, JSON or SSE answers.
  void McpRoutes();
  // POST /v1/executions once its body is parsed (also the tool-call endpoint's
  // execute_python_code): answers on `res`.
  void Execute(const nlohmann::json& body, httplib::Response& res);
  // Adds the execution's history row; a store failure (a full disk) is logged, never thrown.
  void RecordExecution(const store::ExecutionRecord& record);
  // pip's sandbox, through a helper process like every cold execution.
  sandbox::Result<nlohmann::json> RunInstaller(exec::ExecutionRequest& request);

  ServiceConfig config_;
  std::unique_ptr<store::Store> store_;
  files::FileManager files_;
  exec::HelperProcesses helpers_;
  exec::ZygoteSupervisor zygote_;
  // Warm executions run in the service's own threads (the zygote's child does the forking); each
  // has an eventfd in `cancel_fds_` that Stop() makes readable.
  exec::ExecutionEnvironment environment_;
  std::mutex cancel_mutex_;
  std::set<int> cancel_fds_;
  exec::Admission admission_;
  packages::PackageManager packages_;
  Metrics metrics_;
  std::unique_ptr<httplib::Server> server_;
  McpServer mcp_;
  McpSessions mcp_sessions_;
  std::atomic<bool> serving_http_{
      false};  // Run() was called: Stop() waits for the listener to start
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::thread cleanup_thread_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool sweep_requested_ = false;  // an execution released a replaced package environment
  std::atomic<bool> run_ended_{false};
};

}  // namespace codecell::api
