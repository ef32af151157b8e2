#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>

#include "exec/execution.h"

// The one codec for what crosses a process boundary between the service and its
// `codecell __execute` helpers (exec/helper_process.h): a request one way, a result back. The
// result's JSON is also the base of the API's answer (SPEC "POST /v1/executions"). Each from_json
// throws nlohmann::json::exception on a missing or mistyped field; callers at a process boundary
// catch it.
namespace codecell::exec {

void to_json(nlohmann::json& j, const Limits& limits);
void from_json(const nlohmann::json& j, Limits& limits);

void to_json(nlohmann::json& j, const InputFile& input);
void from_json(const nlohmann::json& j, InputFile& input);

void to_json(nlohmann::json& j, const OutputItem& item);
void from_json(const nlohmann::json& j, OutputItem& item);

void to_json(nlohmann::json& j, const ExecutionResult& result);
void from_json(const nlohmann::json& j, ExecutionResult& result);

// What a helper process is asked to run: the request (its callbacks and cancel_fd stay behind:
// a helper is cancelled by SIGTERM), the data dir it prepares its environment in, and the package
// installer's uid (0: the default).
struct HelperRequest {
  ExecutionRequest request;
  std::string data_dir;
  uid_t installer_uid = 0;
};

void to_json(nlohmann::json& j, const HelperRequest& helper);
void from_json(const nlohmann::json& j, HelperRequest& helper);

}  // namespace codecell::exec
