#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "api/mcp.h"
#include "api/metrics.h"
#include "api/tools.h"
#include "exec/execution_service.h"
#include "files/file_manager.h"

namespace codecell::api {

// The model-facing side of the service: the tool calls of POST /v1/tool-calls and MCP's tools,
// resources and uploads. Executions go through the same ExecutionService as POST /v1/executions.
class ToolService : public McpBackend {
 public:
  ToolService(exec::ExecutionService& executions, files::FileManager& files, Metrics& metrics,
              ToolLimits limits)
      : executions_(executions), files_(files), metrics_(metrics), limits_(limits) {}

  const ToolLimits& limits() const { return limits_; }

  // McpBackend:
  nlohmann::json ToolDefinitionsNow() override { return ToolDefinitions(limits_); }
  nlohmann::json CallTool(const std::string& user, const ParsedToolCall& call) override;
  sandbox::Result<nlohmann::json> UploadFile(const std::string& user, const std::string& filename,
                                             const std::string& bytes) override;
  nlohmann::json ListFiles(const std::string& user) override;
  std::optional<nlohmann::json> FindFile(const std::string& user,
                                         const std::string& file_id) override;
  sandbox::Result<std::string> ReadFileBytes(const std::string& user,
                                             const std::string& file_id) override;
  uint64_t MaxUploadBytes() override { return files_.policy().max_upload_bytes; }

 private:
  // What one tool answers: the tool message's content, the files to attach, the structured
  // result (null when none).
  struct ToolAnswer {
    std::string content;
    nlohmann::json attachments = nlohmann::json::array();
    nlohmann::json result = nullptr;
  };
  ToolAnswer Execute(const std::string& user, const nlohmann::json& body);
  ToolAnswer ExecutePythonCode(const std::string& user, const nlohmann::json& args);
  ToolAnswer AnalyzeDataFile(const std::string& user, const nlohmann::json& args);
  ToolAnswer ListFilesTool(const std::string& user);
  ToolAnswer DeleteFileTool(const std::string& user, const nlohmann::json& args);
  // A file the model names by id or by name (its own earlier upload list shows both).
  std::optional<store::FileRecord> FindByIdOrName(const std::string& user, const std::string& ref);

  exec::ExecutionService& executions_;
  files::FileManager& files_;
  Metrics& metrics_;
  ToolLimits limits_;
};

}  // namespace codecell::api
