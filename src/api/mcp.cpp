#include "api/mcp.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <future>

namespace codecell::api {
namespace {

using json = nlohmann::json;

constexpr const char* kProtocols[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
constexpr const char* kFileUriPrefix = "codecell://files/";

// JSON-RPC error codes (https://www.jsonrpc.org/specification#error_object), and MCP's
// "resource not found".
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kResourceNotFound = -32002;

// A request that cannot be answered with a result: becomes the response's error.
struct RpcError {
  int code;
  std::string message;
};

bool IsImage(const std::string& mime) {
  return mime == "image/png" || mime == "image/jpeg" || mime == "image/gif" || mime == "image/webp";
}

bool IsText(const std::string& mime) {
  return mime.rfind("text/", 0) == 0 || mime == "application/json" || mime == "application/xml" ||
         mime == "application/x-yaml" || mime == "application/yaml" || mime == "application/toml" ||
         mime == "application/x-ndjson" || mime == "application/javascript";
}

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t extra = c < 0x80             ? 0
                   : (c & 0xE0) == 0xC0 ? 1
                   : (c & 0xF0) == 0xE0 ? 2
                   : (c & 0xF8) == 0xF0 ? 3
                                        : 4;
    if (extra == 4 || i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

// resource_link content (and file URIs in general) arrived in 2025-06-18.
bool HasResourceLinks(const McpSession& session) {
  return session.protocol_version >= "2025-06-18";
}

json Annotations(bool read_only, bool destructive, bool idempotent) {
  return {{"readOnlyHint", read_only},
          {"destructiveHint", destructive},
          {"idempotentHint", idempotent},
          {"openWorldHint", false}};
}

json ResourceLink(const json& file) {
  return {{"type", "resource_link"},
          {"uri", McpFileUri(file.value("file_id", ""))},
          {"name", file.value("filename", "")},
          {"mimeType", file.value("mime_type", "application/octet-stream")},
          {"size", file.contains("file_size") ? file["file_size"] : file.value("size", json(0))}};
}

std::string Seconds(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.0f", s);
  return buffer;
}

}  // namespace

bool McpSupportedProtocol(const std::string& version) {
  return std::find(std::begin(kProtocols), std::end(kProtocols), version) != std::end(kProtocols);
}

std::string McpFileUri(const std::string& file_id) { return kFileUriPrefix + file_id; }

McpServer::McpServer(McpBackend& backend, std::string server_version)
    : backend_(backend), server_version_(std::move(server_version)) {}

json McpServer::ErrorResponse(const json& id, int code, const std::string& message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

json McpServer::Tools() {
  json tools = json::array();
  for (const auto& t : backend_.ToolDefinitionsNow()) {
    const json& f = t["function"];
    const std::string name = f.value("name", "");
    json tool = {{"name", name},
                 {"description", f.value("description", "")},
                 {"inputSchema", f["parameters"]}};
    if (name == "execute_python_code") {
      tool["title"] = "Run Python code";
      tool["description"] = tool["description"].get<std::string>() +
                            " Images the code saves come back as image content; every saved "
                            "file also as a codecell://files/ resource. Add the user's data with "
                            "upload_file first.";
      tool["annotations"] = Annotations(false, false, false);
    } else if (name == "analyze_data_file") {
      tool["title"] = "Analyze a data file";
      tool["annotations"] = Annotations(false, false, false);
    } else if (name == "list_files") {
      tool["title"] = "List the user's files";
      tool["annotations"] = Annotations(true, false, true);
    } else if (name == "delete_file") {
      tool["title"] = "Delete a file";
      tool["annotations"] = Annotations(false, true, true);
    }
    tools.push_back(std::move(tool));
  }
  const uint64_t max_mb = backend_.MaxUploadBytes() >> 20;
  tools.push_back(
      {{"name", "upload_file"},
       {"title", "Upload a file"},
       {"description",
        "Store a file for the user so that code can use it: it appears as /mnt/data/<filename> in "
        "execute_python_code, load_file('<filename>') reads it, and analyze_data_file takes its "
        "file_id. Give the content as text (content) or as base64 (content_base64), at most " +
            std::to_string(max_mb) + " MiB. Files expire like every upload."},
       {"inputSchema",
        {{"type", "object"},
         {"properties",
          {{"filename", {{"type", "string"}, {"description", "The file's name, e.g. sales.csv."}}},
           {"content", {{"type", "string"}, {"description", "The content, as UTF-8 text."}}},
           {"content_base64",
            {{"type", "string"}, {"description", "The content, base64-encoded (binary files)."}}}}},
         {"required", json::array({"filename"})},
         {"additionalProperties", false}}},
       {"annotations", Annotations(false, false, false)}});
  return tools;
}

std::optional<json> McpServer::Handle(const json& message, McpSession& session,
                                      const Notify& notify) {
  if (message.is_array()) {
    return ErrorResponse(nullptr, kInvalidRequest,
                         "JSON-RPC batches are not supported (MCP 2025-06-18 removed them): send "
                         "one message at a time");
  }
  if (!message.is_object()) {
    return ErrorResponse(nullptr, kInvalidRequest, "a JSON-RPC message must be an object");
  }
  const bool has_id = message.contains("id");
  const json id = has_id ? message["id"] : json(nullptr);
  const bool id_valid = has_id && (id.is_string() || id.is_number_integer());
  if (!message.contains("jsonrpc") || message["jsonrpc"] != "2.0") {
    return ErrorResponse(id_valid ? id : json(nullptr), kInvalidRequest,
                         "not JSON-RPC 2.0: \"jsonrpc\": \"2.0\" is required");
  }
  if (!message.contains("method")) {
    // A response to a request of ours: the server sends none, so there is nothing to match.
    if (has_id && (message.contains("result") || message.contains("error"))) return std::nullopt;
    return ErrorResponse(id_valid ? id : json(nullptr), kInvalidRequest,
                         "a request needs a \"method\"");
  }
  if (!message["method"].is_string()) {
    return ErrorResponse(id_valid ? id : json(nullptr), kInvalidRequest,
                         "\"method\" must be a string");
  }
  const std::string method = message["method"];
  // Notifications (initialized, cancelled, roots/list_changed, ...) need no answer. A cancelled
  // execution still ends at its time limit.
  if (!has_id) return std::nullopt;
  if (!id_valid) {
    return ErrorResponse(nullptr, kInvalidRequest, "\"id\" must be a string or an integer");
  }
  const json params = message.value("params", json::object());
  if (!params.is_object()) {
    return ErrorResponse(id, kInvalidParams, "\"params\" must be an object");
  }
  try {
    json result;
    if (method == "initialize") {
      result = Initialize(params, session);
    } else if (method == "ping") {
      result = json::object();
    } else if (session.protocol_version.empty()) {
      throw RpcError{kInvalidRequest, "the session is not initialized: send initialize first"};
    } else if (method == "tools/list") {
      result = {{"tools", Tools()}};
    } else if (method == "tools/call") {
      result = CallTool(params, session, notify);
    } else if (method == "resources/list") {
      json resources = json::array();
      for (const auto& f : backend_.ListFiles(session.user)) {
        // value(), not a const operator[]: that is undefined behaviour on a missing key (found by
        // tests/fuzz/fuzz_mcp).
        const json expires = f.value("expires_at", json());
        resources.push_back(
            {{"uri", McpFileUri(f.value("file_id", ""))},
             {"name", f.value("filename", "")},
             {"mimeType", f.value("mime_type", "application/octet-stream")},
             {"size", f.value("file_size", 0)},
             {"description",
              "The user's file " + f.value("filename", "") + " (file_id " + f.value("file_id", "") +
                  "), " + f.value("source", "") + ", expires " +
                  (expires.is_string() ? expires.get<std::string>() : std::string("never"))}});
      }
      result = {{"resources", resources}};
    } else if (method == "resources/templates/list") {
      result = {{"resourceTemplates", json::array()}};
    } else if (method == "resources/read") {
      result = ReadResource(params, session);
    } else {
      throw RpcError{kMethodNotFound, "method not found: " + method};
    }
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
  } catch (const RpcError& e) {
    return ErrorResponse(id, e.code, e.message);
  } catch (const std::exception& e) {
    return ErrorResponse(id, kInternalError, std::string("internal error: ") + e.what());
  }
}

json McpServer::Initialize(const json& params, McpSession& session) {
  const std::string requested =
      params.contains("protocolVersion") && params["protocolVersion"].is_string()
          ? params["protocolVersion"].get<std::string>()
          : "";
  session.protocol_version = McpSupportedProtocol(requested) ? requested : kMcpLatestProtocol;
  return {
      {"protocolVersion", session.protocol_version},
      {"capabilities",
       {{"tools", {{"listChanged", false}}},
        {"resources", {{"subscribe", false}, {"listChanged", false}}}}},
      {"serverInfo", {{"name", "codecell"}, {"title", "codecell"}, {"version", server_version_}}},
      {"instructions",
       "codecell runs Python 3 in a sandbox for one user. Put the user's data in with "
       "upload_file (or see what is there with list_files), then run code with "
       "execute_python_code: files are in /mnt/data, load_file() reads them, and every file "
       "the code saves there comes back (images as image content, all files as "
       "codecell://files/ resources readable with resources/read). analyze_data_file gives "
       "a quick report on a data file."}};
}

json McpServer::CallTool(const json& params, const McpSession& session, const Notify& notify) {
  if (!params.contains("name") || !params["name"].is_string()) {
    throw RpcError{kInvalidParams, "tools/call needs \"name\": the tool's name"};
  }
  const std::string name = params["name"];
  json arguments = params.value("arguments", json::object());
  if (arguments.is_null()) arguments = json::object();
  if (!arguments.is_object()) {
    throw RpcError{kInvalidParams, "tools/call \"arguments\" must be an object"};
  }
  static const char* kTools[] = {"execute_python_code", "analyze_data_file", "list_files",
                                 "delete_file", "upload_file"};
  if (std::find(std::begin(kTools), std::end(kTools), name) == std::end(kTools)) {
    throw RpcError{kInvalidParams,
                   "unknown tool: " + name +
                       " (the tools are execute_python_code, analyze_data_file, list_files, "
                       "delete_file and upload_file)"};
  }
  auto text_result = [](const std::string& text, bool is_error) {
    return json{{"content", json::array({{{"type", "text"}, {"text", text}}})},
                {"isError", is_error}};
  };

  if (name == "upload_file") {
    if (!arguments.contains("filename") || !arguments["filename"].is_string() ||
        arguments["filename"].get<std::string>().empty()) {
      return text_result("Error: upload_file needs \"filename\", e.g. \"sales.csv\".", true);
    }
    const bool has_text = arguments.contains("content") && arguments["content"].is_string();
    const bool has_base64 =
        arguments.contains("content_base64") && arguments["content_base64"].is_string();
    if (has_text == has_base64) {
      return text_result(
          "Error: upload_file needs exactly one of \"content\" (text) or \"content_base64\".",
          true);
    }
    std::string bytes;
    if (has_text) {
      bytes = arguments["content"].get<std::string>();
    } else {
      auto decoded = Base64Decode(arguments["content_base64"].get<std::string>());
      if (!decoded) return text_result("Error: content_base64 is not valid base64.", true);
      bytes = std::move(*decoded);
    }
    auto stored = backend_.UploadFile(session.user, arguments["filename"], bytes);
    if (!stored) return text_result("Error: the file was not stored: " + stored.error(), true);
    const json& f = *stored;
    json result = text_result(
        "Uploaded " + f.value("filename", "") + " (file_id " + f.value("file_id", "") + ", " +
            f.value("file_type", "") + ", " + std::to_string(f.value("file_size", 0)) +
            " bytes). Code sees it as /mnt/data/" + f.value("filename", "") + "; load_file(" +
            json(f.value("filename", "")).dump() + ") reads it." +
            EvictedSentence(f.value("evicted_files", json::array())),
        false);
    if (HasResourceLinks(session)) result["content"].push_back(ResourceLink(f));
    return result;
  }

  ParsedToolCall call;
  call.name = name;
  call.arguments = std::move(arguments);
  json out;
  const json meta = params.value("_meta", json::object());
  const bool progress = notify && meta.is_object() && meta.contains("progressToken") &&
                        (meta["progressToken"].is_string() || meta["progressToken"].is_number());
  if (!progress) {
    out = backend_.CallTool(session.user, call);
  } else {
    // The call runs on its own thread so that this one can say it is still running: a client's
    // request timeout (the SDK's is 60 s) can be reset by progress.
    auto started = std::chrono::steady_clock::now();
    auto pending = std::async(std::launch::async, [this, &session, &call] {
      return backend_.CallTool(session.user, call);
    });
    while (pending.wait_for(progress_interval) != std::future_status::ready) {
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      notify({{"jsonrpc", "2.0"},
              {"method", "notifications/progress"},
              {"params",
               {{"progressToken", meta["progressToken"]},
                {"progress", std::round(elapsed * 10) / 10},
                {"message", name + " running for " + Seconds(elapsed) + " s"}}}});
    }
    out = pending.get();
  }

  const std::string text = out["message"].value("content", "");
  const json& result = out["result"];
  bool is_error = text.rfind("Error:", 0) == 0;
  if (result.is_object() && result.contains("success") && !result["success"].get<bool>()) {
    is_error = true;
  }
  json content = json::array({{{"type", "text"}, {"text", text}}});
  json links = json::array();
  for (const auto& a : out.value("attachments", json::array())) {
    const std::string mime = a.value("mime_type", "");
    const uint64_t size = a.value("size", uint64_t{0});
    if (IsImage(mime) && size <= kMcpInlineImageBytes) {
      auto bytes = backend_.ReadFileBytes(session.user, a.value("file_id", ""));
      if (bytes) {
        content.push_back({{"type", "image"}, {"data", Base64Encode(*bytes)}, {"mimeType", mime}});
      }
    }
    if (HasResourceLinks(session)) links.push_back(ResourceLink(a));
  }
  for (auto& l : links) content.push_back(std::move(l));
  return {{"content", std::move(content)}, {"isError", is_error}};
}

json McpServer::ReadResource(const json& params, const McpSession& session) {
  if (!params.contains("uri") || !params["uri"].is_string()) {
    throw RpcError{kInvalidParams, "resources/read needs \"uri\""};
  }
  const std::string uri = params["uri"];
  const std::string prefix = kFileUriPrefix;
  std::string file_id = uri.rfind(prefix, 0) == 0 ? uri.substr(prefix.size()) : "";
  const bool plain_id = !file_id.empty() && file_id.size() <= 128 &&
                        std::all_of(file_id.begin(), file_id.end(), [](unsigned char c) {
                          return std::isalnum(c) || c == '_' || c == '-';
                        });
  std::optional<json> file = plain_id ? backend_.FindFile(session.user, file_id) : std::nullopt;
  if (!file) throw RpcError{kResourceNotFound, "resource not found: " + uri};
  const uint64_t size = file->value("file_size", uint64_t{0});
  if (size > kMcpReadMaxBytes) {
    throw RpcError{kInvalidParams, "the file is " + std::to_string(size) +
                                       " bytes, over resources/read's limit of " +
                                       std::to_string(kMcpReadMaxBytes >> 20) +
                                       " MiB: download it with GET /v1/files/" + file_id +
                                       "/content"};
  }
  auto bytes = backend_.ReadFileBytes(session.user, file_id);
  if (!bytes) throw RpcError{kResourceNotFound, "resource not found: " + uri};
  const std::string mime = file->value("mime_type", "application/octet-stream");
  json item = {{"uri", uri}, {"mimeType", mime}};
  if (IsText(mime) && ValidUtf8(*bytes)) {
    item["text"] = std::move(*bytes);
  } else {
    item["blob"] = Base64Encode(*bytes);
  }
  return {{"contents", json::array({std::move(item)})}};
}

McpSessions::McpSessions(std::chrono::seconds idle, size_t max_sessions)
    : idle_(idle), max_sessions_(max_sessions) {}

std::string McpSessions::Create(McpSession session) {
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) {
    // Only a broken OpenSSL gets here: a guessable session id must never be handed out.
    std::fprintf(stderr, "codecell: RAND_bytes failed; check OpenSSL's entropy source\n");
    std::abort();
  }
  static const char* kHex = "0123456789abcdef";
  std::string id;
  for (unsigned char b : random) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(mutex_);
  Expire(now);
  while (sessions_.size() >= max_sessions_) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second.last_used < b.second.last_used;
    });
    sessions_.erase(oldest);
  }
  sessions_[id] = {std::move(session), now};
  return id;
}

std::optional<McpSession> McpSessions::Find(const std::string& id) {
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(mutex_);
  Expire(now);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  it->second.last_used = now;
  return it->second.session;
}

void McpSessions::Update(const std::string& id, const McpSession& session) {
  MutexLock lock(mutex_);
  auto it = sessions_.find(id);
  if (it != sessions_.end()) it->second.session = session;
}

bool McpSessions::Erase(const std::string& id) {
  MutexLock lock(mutex_);
  return sessions_.erase(id) > 0;
}

size_t McpSessions::size() {
  MutexLock lock(mutex_);
  return sessions_.size();
}

void McpSessions::Expire(std::chrono::steady_clock::time_point now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = now - it->second.last_used > idle_ ? sessions_.erase(it) : std::next(it);
  }
}

std::string Base64Encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::optional<std::string> Base64Decode(const std::string& text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') clean.push_back(c);
  }
  if (clean.size() % 4 != 0) return std::nullopt;
  if (clean.empty()) return std::string();
  // EVP_DecodeBlock accepts '=' only as padding at the end, but counts padding as zero bytes.
  size_t padding = 0;
  if (clean.back() == '=') ++padding;
  if (clean.size() >= 2 && clean[clean.size() - 2] == '=') ++padding;
  if (clean.find('=') < clean.size() - padding) return std::nullopt;
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

}  // namespace codecell::api
