#include "api/metrics.h"

#include <algorithm>
#include <iterator>
#include <sstream>

namespace codecell::api {

void Metrics::CountExecution(const std::string& status, double seconds) {
  MutexLock lock(mutex_);
  ++executions_by_status_[status];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++duration_buckets_[i];
  }
  ++duration_count_;
  duration_sum_ += seconds;
}

void Metrics::CountUpload(bool stored) {
  MutexLock lock(mutex_);
  ++(stored ? uploads_stored_ : uploads_refused_);
}

void Metrics::CountCleanup(size_t deleted) {
  MutexLock lock(mutex_);
  ++cleanup_runs_;
  cleanup_deleted_ += deleted;
}

void Metrics::CountRequest(int status) {
  MutexLock lock(mutex_);
  ++requests_by_status_[status];
}

namespace {
constexpr const char* kToolNames[] = {"execute_python_code", "analyze_data_file", "list_files",
                                      "delete_file",         "upload_file",       "other"};
}  // namespace

void Metrics::CountToolCall(const std::string& tool) {
  bool known =
      std::find(std::begin(kToolNames), std::end(kToolNames), tool) != std::end(kToolNames);
  MutexLock lock(mutex_);
  ++tool_calls_[known ? tool : "other"];
}

std::string Metrics::Render(const Gauges& g) const {
  MutexLock lock(mutex_);
  std::ostringstream o;
  o << "# HELP codecell_executions_total Executions finished, by status.\n"
       "# TYPE codecell_executions_total counter\n";
  for (const char* s : {"ok", "error", "timeout", "oom", "killed", "failed"}) {
    auto it = executions_by_status_.find(s);
    o << "codecell_executions_total{status=\"" << s << "\"} "
      << (it == executions_by_status_.end() ? 0 : it->second) << "\n";
  }
  o << "# HELP codecell_execution_duration_seconds Wall time of executions.\n"
       "# TYPE codecell_execution_duration_seconds histogram\n";
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    o << "codecell_execution_duration_seconds_bucket{le=\"" << kBuckets[i] << "\"} "
      << duration_buckets_[i] << "\n";
  }
  o << "codecell_execution_duration_seconds_bucket{le=\"+Inf\"} " << duration_count_ << "\n"
    << "codecell_execution_duration_seconds_sum " << duration_sum_ << "\n"
    << "codecell_execution_duration_seconds_count " << duration_count_ << "\n";
  o << "# HELP codecell_execution_queue_depth Executions waiting for a worker.\n"
       "# TYPE codecell_execution_queue_depth gauge\n"
    << "codecell_execution_queue_depth " << g.queue_depth << "\n"
    << "# HELP codecell_executions_running Executions running now.\n"
       "# TYPE codecell_executions_running gauge\n"
    << "codecell_executions_running " << g.running << "\n"
    << "# HELP codecell_workers Execution workers.\n# TYPE codecell_workers gauge\n"
    << "codecell_workers " << g.workers << "\n"
    << "# HELP codecell_files_stored Live files stored.\n# TYPE codecell_files_stored gauge\n"
    << "codecell_files_stored " << g.files << "\n"
    << "# HELP codecell_bytes_stored Bytes of live files stored.\n"
       "# TYPE codecell_bytes_stored gauge\n"
    << "codecell_bytes_stored " << g.bytes << "\n"
    << "# HELP codecell_uploads_total Uploads, by outcome.\n# TYPE codecell_uploads_total counter\n"
    << "codecell_uploads_total{outcome=\"stored\"} " << uploads_stored_ << "\n"
    << "codecell_uploads_total{outcome=\"refused\"} " << uploads_refused_ << "\n"
    << "# HELP codecell_cleanup_runs_total Cleanup runs.\n"
       "# TYPE codecell_cleanup_runs_total counter\n"
    << "codecell_cleanup_runs_total " << cleanup_runs_ << "\n"
    << "# HELP codecell_cleanup_deleted_files_total Expired files deleted by cleanup.\n"
       "# TYPE codecell_cleanup_deleted_files_total counter\n"
    << "codecell_cleanup_deleted_files_total " << cleanup_deleted_ << "\n"
    << "# HELP codecell_package_installs_total Packages asked for, by result.\n"
       "# TYPE codecell_package_installs_total counter\n"
    << "codecell_package_installs_total{result=\"installed\"} " << g.packages.installs << "\n"
    << "codecell_package_installs_total{result=\"failed\"} " << g.packages.failures << "\n"
    << "# HELP codecell_package_pip_runs_total Sandboxed pip runs.\n"
       "# TYPE codecell_package_pip_runs_total counter\n"
    << "codecell_package_pip_runs_total " << g.packages.pip_runs << "\n"
    << "# HELP codecell_package_install_seconds_total Time spent installing packages.\n"
       "# TYPE codecell_package_install_seconds_total counter\n"
    << "codecell_package_install_seconds_total " << g.packages.install_seconds << "\n"
    << "# HELP codecell_package_refreshes_total Rebuilds of the package environment, by result.\n"
       "# TYPE codecell_package_refreshes_total counter\n"
    << "codecell_package_refreshes_total{result=\"ok\"} " << g.packages.refreshes_ok << "\n"
    << "codecell_package_refreshes_total{result=\"failed\"} " << g.packages.refreshes_failed << "\n"
    << "# HELP codecell_packages_installed Distributions in the live package environment.\n"
       "# TYPE codecell_packages_installed gauge\n"
    << "codecell_packages_installed " << g.packages.installed << "\n"
    << "# HELP codecell_mcp_sessions Open MCP sessions on /mcp (Streamable HTTP).\n"
       "# TYPE codecell_mcp_sessions gauge\n"
    << "codecell_mcp_sessions " << g.mcp_sessions << "\n"
    << "# HELP codecell_tool_calls_total Tool calls of models (tool-call endpoint and MCP), by "
       "tool.\n"
       "# TYPE codecell_tool_calls_total counter\n";
  for (const char* tool : kToolNames) {
    auto it = tool_calls_.find(tool);
    o << "codecell_tool_calls_total{tool=\"" << tool << "\"} "
      << (it == tool_calls_.end() ? 0 : it->second) << "\n";
  }
  o << "# HELP codecell_http_requests_total HTTP requests, by status code.\n"
       "# TYPE codecell_http_requests_total counter\n";
  for (const auto& [status, n] : requests_by_status_) {
    o << "codecell_http_requests_total{code=\"" << status << "\"} " << n << "\n";
  }
  return o.str();
}

}  // namespace codecell::api
