#include <chrono>
#include <cmath>
#include <regex>

#include "api/http_util.h"
#include "api/routes.h"
#include "base/log.h"

namespace codecell::api {

namespace {
thread_local std::chrono::steady_clock::time_point request_started;
}  // namespace

void AddServerHooks(httplib::Server& s, ServiceParts& p) {
  s.set_pre_routing_handler([&p](const httplib::Request& req, httplib::Response& res) {
    request_started = std::chrono::steady_clock::now();
    if (p.config.api_keys.empty() || req.path == "/healthz") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string header = req.get_header_value("Authorization");
    if (const ApiKey* key = RequestKey(p.config, req)) {
      if (key->any_user() || !OperatorRoute(req))
        return httplib::Server::HandlerResponse::Unhandled;
      ErrorAnswer(res, {ErrorKind::kForbidden, "this API key acts for its users only: " + req.path +
                                                   " is the operator's"});
      return httplib::Server::HandlerResponse::Handled;
    }
    res.set_header("WWW-Authenticate", "Bearer");
    JsonError(res, 401, "unauthorized",
              header.empty() ? "missing Authorization: Bearer <key>" : "invalid API key");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    // httplib answers 404 (or 400, for PUT/PATCH) when no route matched, without a body; on a
    // known path that means another method: 405.
    static const std::regex known(
        R"(/healthz|/metrics|/mcp|/v1/(status|cleanup|executions|tools|tool-calls|packages(/refresh)?|files(/[^/]+(/content)?)?))");
    if ((res.status == 404 || res.status == 400) && std::regex_match(req.path, known)) {
      return JsonError(res, 405, "method_not_allowed",
                       req.method + " is not supported on " + req.path);
    }
    switch (res.status) {
      case 404:
        return JsonError(res, 404, "not_found", "no such endpoint");
      case 413:
        return JsonError(res, 413, "too_large", "the request body is too large");
      case 400:
        return JsonError(res, 400, "bad_request", "malformed request");
      default:
        return JsonError(res, res.status, res.status >= 500 ? "internal" : "bad_request",
                         "request failed with status " + std::to_string(res.status));
    }
  });
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const store::StoreError& e) {
          LogJson({{"level", "error"}, {"event", "store_error"}, {"message", e.what()}});
          if (e.disk_full()) {
            return JsonError(res, 507, "insufficient_storage",
                             "the service's storage is full: nothing was recorded");
          }
          return JsonError(res, 500, "internal", "metadata store error");
        } catch (const std::exception& e) {
          LogJson({{"level", "error"}, {"event", "exception"}, {"message", e.what()}});
          return JsonError(res, 500, "internal", "internal error");
        } catch (...) {
          return JsonError(res, 500, "internal", "internal error");
        }
      });
  s.set_logger([&p](const httplib::Request& req, const httplib::Response& res) {
    p.metrics.CountRequest(res.status);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                          request_started)
                    .count();
    LogJson({{"level", "info"},
             {"event", "request"},
             {"method", req.method},
             {"path", req.path},
             {"status", res.status},
             {"duration_ms", std::round(ms * 10) / 10},
             {"remote", req.remote_addr}});
  });
}

}  // namespace codecell::api
