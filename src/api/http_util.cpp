#include "api/http_util.h"

#include "api/errors.h"
#include "base/log.h"
#include "base/user_id.h"

namespace codecell::api {

using nlohmann::json;

void JsonOk(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(DumpJson(body), "application/json");
}

void JsonError(httplib::Response& res, int status, const std::string& code,
               const std::string& message) {
  res.status = status;
  res.set_content(DumpJson({{"error", {{"code", code}, {"message", message}}}}),
                  "application/json");
}

void ErrorAnswer(httplib::Response& res, const Error& error) {
  if (int seconds = RetryAfterSeconds(error); seconds > 0) {
    res.set_header("Retry-After", std::to_string(seconds));
  }
  JsonError(res, HttpStatus(error.kind), HttpErrorCode(error.kind), error.message);
}

const ApiKey* RequestKey(const ServiceConfig& config, const httplib::Request& req) {
  const std::string header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (header.rfind(prefix, 0) != 0) return nullptr;
  const std::string key = header.substr(prefix.size());
  const ApiKey* found = nullptr;
  for (const auto& k : config.api_keys) {
    if (ConstantTimeEquals(key, k.key)) found = &k;  // no early exit: the time says nothing
  }
  return found;
}

std::optional<Error> CheckActingFor(const ServiceConfig& config, const httplib::Request& req,
                                    const std::string& user) {
  if (config.api_keys.empty()) return std::nullopt;
  const ApiKey* key = RequestKey(config, req);
  // The authentication hook has refused a request without a valid key before any route runs.
  if (key == nullptr || !key->MayActFor(user)) {
    return Error{ErrorKind::kForbidden, "this API key may not act for user " + user};
  }
  return std::nullopt;
}

bool OperatorRoute(const httplib::Request& req) {
  return req.path == "/metrics" || (req.method == "POST" && (req.path == "/v1/cleanup" ||
                                                             req.path == "/v1/packages/refresh"));
}

bool AnswerUnlessActingFor(const ServiceConfig& config, const httplib::Request& req,
                           httplib::Response& res, const std::string& user) {
  if (auto refused = CheckActingFor(config, req, user)) {
    ErrorAnswer(res, *refused);
    return false;
  }
  return true;
}

std::optional<std::string> QueryUser(const ServiceConfig& config, const httplib::Request& req,
                                     httplib::Response& res) {
  std::string id = req.get_param_value("user_id");
  if (!ValidUserId(id)) {
    JsonError(res, 400, "bad_request", kUserIdRule);
    return std::nullopt;
  }
  if (!AnswerUnlessActingFor(config, req, res, id)) return std::nullopt;
  return id;
}

std::optional<json> JsonObjectBody(const httplib::Request& req, httplib::Response& res) {
  if (req.body.size() > kMaxJsonBody) {
    JsonError(res, 413, "too_large", "the request body is over 1 MiB");
    return std::nullopt;
  }
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    JsonError(res, 400, "bad_request", "the body must be a JSON object");
    return std::nullopt;
  }
  return j;
}

std::optional<uint64_t> ContentLength(const httplib::Request& req) {
  if (!req.has_header("Content-Length")) return std::nullopt;
  try {
    return std::stoull(req.get_header_value("Content-Length"));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string ContentDisposition(const std::string& name) {
  std::string ascii, encoded;
  for (unsigned char c : name) {
    ascii.push_back(c < 0x20 || c >= 0x7F || c == '"' || c == '\\' ? '_' : static_cast<char>(c));
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded.push_back(static_cast<char>(c));
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      encoded += hex;
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace codecell::api
