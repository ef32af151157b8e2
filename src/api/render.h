#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "base/error.h"
#include "exec/execution_service.h"
#include "files/file_manager.h"
#include "store/store.h"

// The API's JSON shapes (SPEC): parsing a request body into the domain's types, rendering the
// domain's results. Shared by the HTTP routes, the tool calls and MCP; no HTTP here.
namespace codecell::api {

// A file object, as GET /v1/files/{id} answers.
nlohmann::json FileObject(const store::FileRecord& record);
nlohmann::json FileObjects(const std::vector<store::FileRecord>& records);
// What was removed to make room for a new file, so that the model and the user know it is gone.
nlohmann::json EvictedFiles(const std::vector<store::FileRecord>& evicted);
// The 201 answer of an upload (HTTP and MCP): the file object, and what made room for it.
nlohmann::json UploadAnswer(const store::FileRecord& stored,
                            const files::FileManager::Upload& upload);

// POST /v1/executions' body (also what execute_python_code and analyze_data_file ask for):
// checks the types; ExecutionService::Run checks the values. The user is not part of it: every
// door names its user its own way.
Expected<exec::ExecutionSpec> ParseExecutionSpec(const nlohmann::json& body);

// POST /v1/executions' 200 answer.
nlohmann::json ExecutionAnswer(const exec::ExecutionOutcome& outcome);

}  // namespace codecell::api
