#include "api/errors.h"
#include "api/http_util.h"
#include "api/render.h"
#include "api/routes.h"
#include "base/user_id.h"

namespace codecell::api {

using nlohmann::json;

namespace {

// The body of a route with a content reader, up to `limit` bytes; nullopt when it is larger.
std::optional<std::string> ReadSmallBody(const httplib::ContentReader& reader, size_t limit) {
  std::string body;
  bool too_big = false;
  reader([&](const char* data, size_t size) {
    if (body.size() + size > limit) {
      too_big = true;
      return false;
    }
    body.append(data, size);
    return true;
  });
  if (too_big) return std::nullopt;
  return body;
}

// The user a JSON body names (the bot's authenticated statement, never a model's arguments).
std::optional<std::string> BodyUser(const json& j) {
  if (!j.is_object() || !j.contains("user_id") || !j["user_id"].is_string()) return std::nullopt;
  return j["user_id"].get<std::string>();
}

}  // namespace

void AddExecutionRoutes(httplib::Server& s, ServiceParts& p) {
  s.Post("/v1/executions", [&p](const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader) {
    auto body = ContentLength(req).value_or(0) > kMaxJsonBody ? std::nullopt
                                                              : ReadSmallBody(reader, kMaxJsonBody);
    if (!body) return JsonError(res, 413, "too_large", "the request body is over 1 MiB");
    json j = json::parse(*body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return JsonError(res, 400, "bad_request", "the body must be a JSON object");
    }
    auto user = BodyUser(j);
    if (!user) return JsonError(res, 400, "bad_request", kUserIdRule);
    if (ValidUserId(*user) && !AnswerUnlessActingFor(p.config, req, res, *user)) return;
    auto spec = ParseExecutionSpec(j);
    if (!spec) return ErrorAnswer(res, spec.error());
    auto outcome = p.executions.Run(*user, spec.value());
    if (!outcome) return ErrorAnswer(res, outcome.error());
    JsonOk(res, 200, ExecutionAnswer(outcome.value()));
  });

  s.Get("/v1/tools", [&p](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, {{"tools", p.tools.ToolDefinitionsNow()}});
  });
  s.Post("/v1/tool-calls", [&p](const httplib::Request& req, httplib::Response& res) {
    auto body = JsonObjectBody(req, res);
    if (!body) return;
    const json& j = *body;
    auto user = BodyUser(j);
    if (!user || !ValidUserId(*user)) return JsonError(res, 400, "bad_request", kUserIdRule);
    if (!AnswerUnlessActingFor(p.config, req, res, *user)) return;
    if (!j.contains("tool_call") || !j["tool_call"].is_object()) {
      return JsonError(res, 400, "bad_request",
                       "tool_call is required: the model's tool call as the API returned it");
    }
    JsonOk(res, 200, p.tools.CallTool(*user, ParseToolCall(j["tool_call"])));
  });
}

}  // namespace codecell::api
