#include <regex>
#include <set>

#include "api/http_util.h"
#include "api/routes.h"
#include "base/log.h"
#include "base/user_id.h"

namespace codecell::api {

using nlohmann::json;

namespace {

// MCP's Streamable HTTP answers its transport errors with a JSON-RPC error object.
void McpHttpError(httplib::Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(DumpJson(McpServer::ErrorResponse(nullptr, code, message)), "application/json");
}

// A browser page on another site must not drive a local server (DNS rebinding): requests that
// carry an Origin are accepted from loopback origins and the configured ones only.
bool OriginAllowed(const std::string& origin, const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) return true;
  static const std::regex loopback(R"(https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)");
  return std::regex_match(origin, loopback);
}

// The user a request names: ?user_id= (URLs are what MCP clients let one configure) or the
// X-Codecell-User-Id header; "" when it names none. Naming two different users is a 400
// (nullopt): which one was meant cannot be guessed.
std::optional<std::string> NamedUser(const httplib::Request& req, httplib::Response& res) {
  std::set<std::string> named;
  for (size_t i = 0; i < req.get_param_value_count("user_id"); ++i) {
    named.insert(req.get_param_value("user_id", i));
  }
  for (size_t i = 0; i < req.get_header_value_count("X-Codecell-User-Id"); ++i) {
    named.insert(req.get_header_value("X-Codecell-User-Id", i));
  }
  named.erase("");
  if (named.size() > 1) {
    McpHttpError(res, 400, -32602,
                 "the request names more than one user (user_id and X-Codecell-User-Id)");
    return std::nullopt;
  }
  return named.empty() ? std::string() : *named.begin();
}

// Checks shared by every method; false when it has answered.
bool Admit(const ServiceParts& p, const httplib::Request& req, httplib::Response& res) {
  if (!OriginAllowed(req.get_header_value("Origin"), p.config.mcp_allowed_origins)) {
    McpHttpError(res, 403, -32000,
                 "Origin " + req.get_header_value("Origin") +
                     " is not allowed: add it to [mcp] allowed_origins");
    return false;
  }
  std::string version = req.get_header_value("MCP-Protocol-Version");
  if (!version.empty() && !McpSupportedProtocol(version)) {
    McpHttpError(res, 400, -32000,
                 "unsupported MCP-Protocol-Version " + version +
                     " (supported: 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05)");
    return false;
  }
  return true;
}

// The session a request belongs to; answers 400/404/403 itself.
std::optional<std::pair<std::string, McpSession>> SessionOf(ServiceParts& p,
                                                            const httplib::Request& req,
                                                            httplib::Response& res) {
  std::string id = req.get_header_value("Mcp-Session-Id");
  if (id.empty()) {
    McpHttpError(res, 400, -32000,
                 "Mcp-Session-Id header is required (send initialize first to get one)");
    return std::nullopt;
  }
  auto session = p.mcp_sessions.Find(id);
  if (!session) {
    McpHttpError(res, 404, -32001, "session not found (it ended or expired): initialize again");
    return std::nullopt;
  }
  auto user = NamedUser(req, res);
  if (!user) return std::nullopt;
  if (!user->empty() && *user != session->user) {
    McpHttpError(res, 403, -32000, "this session belongs to another user");
    return std::nullopt;
  }
  if (auto refused = CheckActingFor(p.config, req, session->user)) {
    McpHttpError(res, 403, -32000, refused->message);
    return std::nullopt;
  }
  return std::make_pair(id, *session);
}

// One JSON-RPC message; initialize starts a session, anything else needs one.
void McpPost(ServiceParts& p, const httplib::Request& req, httplib::Response& res) {
  if (!Admit(p, req, res)) return;
  json message = json::parse(req.body, nullptr, false);
  if (message.is_discarded()) {
    res.status = 400;
    res.set_content(DumpJson(McpServer::ErrorResponse(nullptr, -32700, "parse error: not JSON")),
                    "application/json");
    return;
  }
  const bool is_request =
      message.is_object() && message.contains("method") && message.contains("id");
  const bool is_initialize = is_request && message["method"] == "initialize";
  std::string session_id;
  McpSession session;
  if (is_initialize) {
    if (req.has_header("Mcp-Session-Id")) {
      return McpHttpError(res, 400, -32600,
                          "initialize starts a new session: send it without Mcp-Session-Id");
    }
    auto user = NamedUser(req, res);
    if (!user) return;
    session.user = user->empty() ? p.config.mcp_default_user : *user;
    if (!ValidUserId(session.user)) {
      return McpHttpError(res, 400, -32602,
                          "user_id must be 1-128 characters of A-Z a-z 0-9 _ . : -");
    }
    if (auto refused = CheckActingFor(p.config, req, session.user)) {
      return McpHttpError(res, 403, -32000, refused->message);
    }
  } else {
    auto found = SessionOf(p, req, res);
    if (!found) return;
    session_id = found->first;
    session = found->second;
  }
  const bool wants_stream =
      req.get_header_value("Accept").find("text/event-stream") != std::string::npos;
  const bool has_progress_token =
      is_request && message.contains("params") && message["params"].is_object() &&
      message["params"].contains("_meta") && message["params"]["_meta"].is_object() &&
      message["params"]["_meta"].contains("progressToken");
  if (is_request && !is_initialize && wants_stream && has_progress_token) {
    // Progress needs a stream: the answer is SSE, progress events first, then the response.
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [&p, message, session](size_t, httplib::DataSink& sink) mutable {
          auto event = [&sink](const json& j) {
            std::string text = "event: message\ndata: " + DumpJson(j) + "\n\n";
            return sink.write(text.data(), text.size());
          };
          auto response = p.mcp.Handle(message, session, event);
          if (response) event(*response);
          sink.done();
          return true;
        });
    return;
  }
  auto response = p.mcp.Handle(message, session);
  if (is_initialize && response && response->contains("result")) {
    session_id = p.mcp_sessions.Create(session);
    res.set_header("Mcp-Session-Id", session_id);
    LogJson({{"level", "info"},
             {"event", "mcp_session"},
             {"user_id", session.user},
             {"protocol", session.protocol_version}});
  }
  if (!response) {
    res.status = 202;  // a notification or a response: nothing to answer
    return;
  }
  JsonOk(res, 200, *response);
}

}  // namespace

void AddMcpRoutes(httplib::Server& s, ServiceParts& p) {
  s.Post("/mcp",
         [&p](const httplib::Request& req, httplib::Response& res) { McpPost(p, req, res); });
  s.Get("/mcp", [&p](const httplib::Request& req, httplib::Response& res) {
    if (!Admit(p, req, res)) return;
    res.set_header("Allow", "POST, DELETE");
    McpHttpError(res, 405, -32000,
                 "this server sends no server-initiated messages: there is no GET stream");
  });
  s.Delete("/mcp", [&p](const httplib::Request& req, httplib::Response& res) {
    if (!Admit(p, req, res)) return;
    auto found = SessionOf(p, req, res);
    if (!found) return;
    p.mcp_sessions.Erase(found->first);
    res.status = 204;
  });
}

}  // namespace codecell::api
