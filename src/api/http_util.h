#pragma once

#include <httplib.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "api/config.h"
#include "base/error.h"

// What every HTTP route shares: JSON answers, errors mapped once (api/errors.h), bodies and
// query parameters read with their limits.
namespace codecell::api {

inline constexpr size_t kMaxJsonBody = 1u << 20;

void JsonOk(httplib::Response& res, int status, const nlohmann::json& body);
void JsonError(httplib::Response& res, int status, const std::string& code,
               const std::string& message);
// The answer for `error`: its status, code, message and Retry-After.
void ErrorAnswer(httplib::Response& res, const Error& error);

// The configured key the request carries (Authorization: Bearer <key>); nullptr when none does.
const ApiKey* RequestKey(const ServiceConfig& config, const httplib::Request& req);
// Refuses (kForbidden) a request whose key may not act for `user`; none without keys configured.
std::optional<Error> CheckActingFor(const ServiceConfig& config, const httplib::Request& req,
                                    const std::string& user);
// The routes only a key for any user may call: cleanup, package refresh, metrics.
bool OperatorRoute(const httplib::Request& req);

// The user id of a query string, checked against the caller's key; answers 400 or 403 itself.
std::optional<std::string> QueryUser(const ServiceConfig& config, const httplib::Request& req,
                                     httplib::Response& res);
// The same for a user named elsewhere (a body, a multipart field, an MCP session).
bool AnswerUnlessActingFor(const ServiceConfig& config, const httplib::Request& req,
                           httplib::Response& res, const std::string& user);
// A small JSON object body (routes without a content reader); answers 413 or 400 itself.
std::optional<nlohmann::json> JsonObjectBody(const httplib::Request& req, httplib::Response& res);
// The declared body size, when the client sent one.
std::optional<uint64_t> ContentLength(const httplib::Request& req);
// attachment; filename="ascii"; filename*=UTF-8''percent-encoded
std::string ContentDisposition(const std::string& name);
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace codecell::api
