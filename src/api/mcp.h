#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/tools.h"
#include "base/mutex.h"
#include "sandbox/sys_result.h"

namespace codecell::api {

// The Model Context Protocol (https://modelcontextprotocol.io, revision 2025-11-25 and the three
// before it): JSON-RPC 2.0 messages, whatever carries them. The stdio transport (`codecell mcp`)
// and Streamable HTTP (`/mcp` on the service) both hand each message to McpServer::Handle.

// What the MCP server needs from the service: the same tools as the tool-call endpoint, and the
// user's files.
class McpBackend {
 public:
  virtual ~McpBackend() = default;
  // OpenAI-format definitions (ToolDefinitions()).
  virtual nlohmann::json ToolDefinitionsNow() = 0;
  // {"message": {"content"}, "attachments": [...], "result"}: as POST /v1/tool-calls answers.
  virtual nlohmann::json CallTool(const std::string& user, const ParsedToolCall& call) = 0;
  // The file object (as GET /v1/files/{id} answers) of a new file of `user`.
  virtual sandbox::Result<nlohmann::json> UploadFile(const std::string& user,
                                                     const std::string& filename,
                                                     const std::string& bytes) = 0;
  virtual nlohmann::json ListFiles(const std::string& user) = 0;  // file objects
  // The file object of one of `user`'s live files.
  virtual std::optional<nlohmann::json> FindFile(const std::string& user,
                                                 const std::string& file_id) = 0;
  virtual sandbox::Result<std::string> ReadFileBytes(const std::string& user,
                                                     const std::string& file_id) = 0;
  virtual uint64_t MaxUploadBytes() = 0;
};

// One MCP session: who it acts for (fixed when it starts, never from a model's arguments) and the
// protocol revision agreed at initialize.
struct McpSession {
  std::string user;
  std::string protocol_version;  // "" until initialize
};

inline constexpr const char* kMcpLatestProtocol = "2025-11-25";
bool McpSupportedProtocol(const std::string& version);

// Images up to this size are returned inline as MCP image content (base64); larger ones, and every
// other file, as resource links (and in the text).
inline constexpr uint64_t kMcpInlineImageBytes = 4u << 20;
// The largest MCP message accepted (a line on stdio, a POST body on /mcp): room for an
// upload_file of the largest allowed upload in base64, plus the JSON around it.
inline uint64_t McpMaxMessageBytes(uint64_t max_upload_bytes) {
  return (max_upload_bytes + 2) / 3 * 4 + (2u << 20);
}
// resources/read returns files up to this size.
inline constexpr uint64_t kMcpReadMaxBytes = 20u << 20;

class McpServer {
 public:
  McpServer(McpBackend& backend, std::string server_version);

  // Sends a notification tied to the request being handled (progress); may be called from the
  // handling thread only, and not after Handle returns.
  using Notify = std::function<void(const nlohmann::json&)>;

  // One JSON-RPC message. Answers a request with its response; a notification or a response
  // gets nothing (nullopt). `session` is updated by initialize. A tools/call with a progress
  // token gets notifications/progress every `progress_interval` while it runs (through
  // `notify`, when the transport can carry them).
  std::optional<nlohmann::json> Handle(const nlohmann::json& message, McpSession& session,
                                       const Notify& notify = nullptr);

  // The response to a message that was not JSON (-32700), or not one JSON-RPC message (-32600).
  static nlohmann::json ErrorResponse(const nlohmann::json& id, int code,
                                      const std::string& message);

  // The tools in MCP's shape: name, title, description, inputSchema, annotations.
  nlohmann::json Tools();

  std::chrono::milliseconds progress_interval{5000};

 private:
  nlohmann::json Initialize(const nlohmann::json& params, McpSession& session);
  nlohmann::json CallTool(const nlohmann::json& params, const McpSession& session,
                          const Notify& notify);
  nlohmann::json ReadResource(const nlohmann::json& params, const McpSession& session);

  McpBackend& backend_;
  std::string server_version_;
};

// `codecell://files/<file_id>`: how MCP names a user's file.
std::string McpFileUri(const std::string& file_id);

// Streamable HTTP's sessions (Mcp-Session-Id): random ids, each bound to its user. An idle
// session expires after `idle`; at most `max_sessions` are kept (the longest idle goes first).
class McpSessions {
 public:
  explicit McpSessions(std::chrono::seconds idle = std::chrono::hours(1),
                       size_t max_sessions = 10000);
  std::string Create(McpSession session);
  // The session, marked used; nullopt when unknown or expired.
  std::optional<McpSession> Find(const std::string& id);
  void Update(const std::string& id, const McpSession& session);
  bool Erase(const std::string& id);
  size_t size();

 private:
  struct Entry {
    McpSession session;
    std::chrono::steady_clock::time_point last_used;
  };
  void Expire(std::chrono::steady_clock::time_point now) CODECELL_REQUIRES(mutex_);
  Mutex mutex_;
  std::map<std::string, Entry> sessions_ CODECELL_GUARDED_BY(mutex_);
  std::chrono::seconds idle_;
  size_t max_sessions_;
};

// Standard base64 (RFC 4648 §4), for image content and uploads.
std::string Base64Encode(const std::string& bytes);
// Whitespace is ignored; nullopt when the text is not base64.
std::optional<std::string> Base64Decode(const std::string& text);

}  // namespace codecell::api
