// A model's tool call as OpenAI returns it (hostile: a prompt-injected model writes anything), and
// the tool message built from a result whose output the tenant's code wrote.
#include <nlohmann/json.hpp>

#include "api/tools.h"
#include "fuzz_check.h"

using codecell::fuzz::Check;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto call = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!call.is_discarded()) {
    codecell::api::ParsedToolCall parsed = codecell::api::ParseToolCall(call);
    Check(parsed.arguments.is_object() || !parsed.error.empty(), "arguments are an object");
  }
  // The tenant's stdout and stderr: the capture has made them valid UTF-8 before they get here.
  std::string text = codecell::fuzz::Bytes(data, size);
  if (!codecell::fuzz::ValidUtf8(text)) return 0;
  const size_t budget = size == 0 ? 0 : data[0] % 200;
  const std::string cut = codecell::api::WithinBudget(text, budget);
  Check(codecell::fuzz::ValidUtf8(cut), "WithinBudget keeps UTF-8 whole");
  Check(cut.size() <= text.size() + 200, "WithinBudget never grows the text much");
  json result = {{"status", "error"},
                 {"success", false},
                 {"return_code", 1},
                 {"output", text},
                 {"error", text},
                 {"execution_time", 0.1},
                 {"generated_files", json::array({{{"filename", text}, {"size", 1}}})},
                 {"skipped_files", json::array()}};
  const std::string content = codecell::api::ExecutionContent(result, budget);
  Check(codecell::fuzz::ValidUtf8(content), "the tool message is valid UTF-8");
  return 0;
}
