#pragma once

#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "api/config.h"
#include "api/mcp.h"
#include "api/metrics.h"
#include "api/tool_service.h"
#include "exec/execution_service.h"
#include "exec/maintenance.h"
#include "files/file_manager.h"
#include "packages/installer.h"
#include "store/store.h"

// The HTTP routes of SPEC's API, one group per file: each parses, calls the domain layer and
// renders. They reach the service's parts through ServiceParts.
namespace codecell::api {

struct ServiceParts {
  const ServiceConfig& config;
  store::Store& store;
  files::FileManager& files;
  packages::PackageManager& packages;
  exec::ExecutionService& executions;
  exec::Maintenance& maintenance;
  ToolService& tools;
  McpServer& mcp;
  McpSessions& mcp_sessions;
  Metrics& metrics;
  std::function<nlohmann::json()> status;  // GET /v1/status
};

// Authentication, request logs and metrics, errors for unmatched routes and exceptions.
void AddServerHooks(httplib::Server& server, ServiceParts& p);  // http_hooks.cpp
// /healthz, /metrics, /v1/status, /v1/cleanup.
void AddStatusRoutes(httplib::Server& server, ServiceParts& p);  // status_routes.cpp
void AddFileRoutes(httplib::Server& server, ServiceParts& p);    // file_routes.cpp
// /v1/executions, /v1/tools, /v1/tool-calls.
void AddExecutionRoutes(httplib::Server& server, ServiceParts& p);  // execution_routes.cpp
void AddPackageRoutes(httplib::Server& server, ServiceParts& p);    // package_routes.cpp
// MCP's Streamable HTTP at /mcp: sessions, Origin checks, JSON or SSE answers.
void AddMcpRoutes(httplib::Server& server, ServiceParts& p);  // mcp_routes.cpp

}  // namespace codecell::api
