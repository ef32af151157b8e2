// MCP messages, as the stdio transport and /mcp take them: one JSON-RPC message (or garbage).
// McpServer::Handle must answer or ignore it, never throw; every answer is a JSON-RPC response
// that serializes (valid UTF-8 with the service's dump settings).
#include <nlohmann/json.hpp>

#include "api/mcp.h"
#include "fuzz_check.h"

namespace {

using codecell::fuzz::Check;
using nlohmann::json;

class ScriptedBackend : public codecell::api::McpBackend {
 public:
  json ToolDefinitionsNow() override {
    return codecell::api::ToolDefinitions(codecell::api::ToolLimits{});
  }
  json CallTool(const std::string&, const codecell::api::ParsedToolCall& call) override {
    return {
        {"message",
         {{"content", "Status: success " +
                          call.arguments.dump(-1, ' ', false, json::error_handler_t::replace)}}},
        {"attachments", json::array({{{"file_id", "file_png"},
                                      {"filename", "plot.png"},
                                      {"mime_type", "image/png"},
                                      {"size", 8}}})},
        {"result", {{"success", true}}}};
  }
  codecell::sandbox::Result<json> UploadFile(const std::string&, const std::string& filename,
                                             const std::string& bytes) override {
    return json{{"file_id", "file_new"}, {"filename", filename}, {"file_size", bytes.size()}};
  }
  json ListFiles(const std::string&) override {
    return json::array({{{"file_id", "file_png"}, {"filename", "plot.png"}}});
  }
  std::optional<json> FindFile(const std::string&, const std::string& id) override {
    if (id != "file_png") return std::nullopt;
    return json{{"file_id", id}, {"filename", "plot.png"}, {"mime_type", "image/png"}};
  }
  codecell::sandbox::Result<std::string> ReadFileBytes(const std::string&,
                                                       const std::string& id) override {
    if (id != "file_png") return codecell::sandbox::Result<std::string>::Fail("no such file");
    return std::string("\x89PNG\r\n\x1a\n", 8);
  }
  uint64_t MaxUploadBytes() override { return 1 << 20; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScriptedBackend backend;
  static codecell::api::McpServer server(backend, "fuzz");
  auto message = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) return 0;
  // Half the inputs in an initialized session, so that tools/call and resources/* are reached.
  codecell::api::McpSession session{"fuzz-user", size % 2 ? codecell::api::kMcpLatestProtocol : ""};
  std::optional<json> answer = server.Handle(message, session, [](const json& note) {
    Check(note.is_object(), "a notification is an object");
  });
  if (!answer) return 0;
  Check(answer->is_object() && answer->value("jsonrpc", "") == "2.0", "a JSON-RPC response",
        answer->dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 500));
  Check(answer->contains("result") != answer->contains("error"), "result xor error");
  const std::string wire = answer->dump(-1, ' ', false, json::error_handler_t::replace);
  Check(codecell::fuzz::ValidUtf8(wire), "the answer is valid UTF-8");
  return 0;
}
