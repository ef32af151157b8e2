#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "exec/execution.h"
#include "files/file_manager.h"

namespace codecell::api {

// The model-facing side (issue 6): tool definitions in OpenAI's function-calling format, the
// parsing of a tool call as OpenAI returns it, and the text a tool message carries back.
// The service fills it from its configuration; the defaults are the configuration's.
struct ToolLimits {
  double default_timeout_seconds = exec::Limits{}.timeout_seconds;
  double max_timeout_seconds = exec::LimitBounds{}.max_timeout_seconds;
  uint64_t memory_mb = exec::Limits{}.memory_mb;
  double file_lifetime_hours = files::FilePolicy{}.lifetime_hours;
  size_t max_generated_files = exec::Limits{}.max_generated_files;
  size_t budget_chars = 8000;  // per stream (stdout, stderr) in a tool message's content
};

// [{"type": "function", "function": {"name", "description", "parameters"}}, ...]: the four tools,
// with descriptions written for a model (where files are, what comes back, the limits).
nlohmann::json ToolDefinitions(const ToolLimits& limits);

struct ParsedToolCall {
  std::string id;    // the call's id ("" when absent)
  std::string name;  // the function's name ("" when absent)
  nlohmann::json arguments = nlohmann::json::object();
  std::string error;  // non-empty: the call or its arguments are malformed (said to the model)
};

// `tool_call`: {"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}} (the
// arguments may also be an object). Never throws.
ParsedToolCall ParseToolCall(const nlohmann::json& tool_call);

// `text` cut to `budget` characters (UTF-8 aware): the head and the tail are kept (a traceback's
// last line matters most), with a note in between saying how much was cut.
std::string WithinBudget(const std::string& text, size_t budget);

// "\n\nRemoved to make room ...": the files a new file evicted under the per-user caps (an
// `evicted_files` list), so that the model does not offer a file that is gone; "" when none.
std::string EvictedSentence(const nlohmann::json& evicted);

// The content of execute_python_code's (and analyze_data_file's) tool message, from an
// execution result: the status in words, stdout, stderr (with the traceback), generated files,
// package installs, evicted files; each stream within `budget` characters.
std::string ExecutionContent(const nlohmann::json& result, size_t budget);

}  // namespace codecell::api
