#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <regex>

#include "api/errors.h"
#include "api/http_util.h"
#include "api/routes.h"
#include "base/log.h"

namespace codecell::api {

namespace {
thread_local std::chrono::steady_clock::time_point request_started;

// cpp-httplib 0.11 keeps a connection open whatever the answer's Connection header says, and
// does not expose its socket: the socket is found by its peer address. Once the answer is
// written, its writing side is shut (the client sees the answer end), what the client still sends
// of its body is read and dropped for a few seconds (closing on unread bytes would send a reset
// that can destroy the answer before the client reads it), and the reading side is shut: the
// server's next read sees end of file and closes. Until the asynchronous front door of issue 15
// replaces the library.
int SocketOf(const httplib::Request& req) {
  for (int fd = 3; fd < 65536; ++fd) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
      if (errno == EBADF && fd > 4096) break;
      continue;
    }
    char host[INET6_ADDRSTRLEN] = {};
    int port = -1;
    if (peer.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&peer);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      port = ntohs(in6->sin6_port);
    }
    if (port == req.remote_port && req.remote_addr == host) return fd;
  }
  return -1;
}

// A body that can leave unread bytes behind (an empty one cannot).
bool HasBody(const httplib::Request& req) {
  return req.has_header("Transfer-Encoding") ||
         (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
}

// What would let the body's end be read two ways: a Content-Length that is not one decimal
// number of at most 18 digits, several of them, or one beside a Transfer-Encoding (RFC 9112
// 6.3: a request smuggling vector). The library would wait for a body it cannot size.
std::optional<Error> FramingError(const httplib::Request& req) {
  const size_t lengths = req.get_header_value_count("Content-Length");
  if (lengths == 0) return std::nullopt;
  if (lengths > 1) return Error::BadInput("send one Content-Length header");
  if (req.has_header("Transfer-Encoding")) {
    return Error::BadInput("send Content-Length or Transfer-Encoding, not both");
  }
  const std::string value = req.get_header_value("Content-Length");
  if (value.empty() || value.size() > 18 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Error::BadInput("Content-Length must be a decimal number of bytes");
  }
  return std::nullopt;
}

void CloseAfterAnswer(const httplib::Request& req) {
  const int fd = SocketOf(req);
  if (fd < 0) return;
  ::shutdown(fd, SHUT_WR);
  constexpr size_t kMaxDrainBytes = 256u << 20;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  size_t drained = 0;
  char buffer[65536];
  while (drained < kMaxDrainBytes && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) break;
    ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
    if (n > 0) drained += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_RD);
}
}  // namespace

void AddServerHooks(httplib::Server& s, ServiceParts& p) {
  s.set_pre_routing_handler([&p](const httplib::Request& req, httplib::Response& res) {
    request_started = std::chrono::steady_clock::now();
    if (auto refused = FramingError(req)) {
      ErrorAnswer(res, *refused);
      return httplib::Server::HandlerResponse::Handled;
    }
    // A request with neither header has no body (RFC 9112 6.3); httplib 0.11 would read a POST's
    // until the client closes (`curl -X POST .../v1/cleanup` waited for its read timeout). The
    // request is httplib's own non-const object, handed to this hook as const.
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    }
    if (p.config.api_keys.empty() || req.path == "/healthz") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string header = req.get_header_value("Authorization");
    if (const ApiKey* key = RequestKey(p.config, req)) {
      if (key->any_user() || !OperatorRoute(req)) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      ErrorAnswer(res, {ErrorKind::kForbidden, "this API key acts for its users only: " + req.path +
                                                   " is the operator's"});
      return httplib::Server::HandlerResponse::Handled;
    }
    res.set_header("WWW-Authenticate", "Bearer");
    JsonError(res, 401, "unauthorized",
              header.empty() ? "missing Authorization: Bearer <key>" : "invalid API key");
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib calls this for every answer of 400 or more: its own, a route's, this file's hooks'.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    // A refusal answered before the body was read (a 413 on the declared size, a second user_id
    // part, a 401) leaves the rest of the body on the connection, where the next request would
    // be parsed from it (request smuggling): after an error answer to a request with a body, the
    // connection closes.
    if (HasBody(req)) res.set_header("Connection", "close");
    if (!res.body.empty()) return;
    // httplib answers 404 (or 400, for a method it has no routes for, such as PUT) when no route
    // matched, without a body; on a known path that means another method: 405. Its 400 for a
    // request it could not parse (a header line over 8 KiB) stays a 400.
    static const std::regex known(
        R"(/healthz|/metrics|/mcp|/v1/(status|cleanup|executions|tools|tool-calls|packages(/refresh)?|files(/[^/]+(/content)?)?))");
    const bool routed_method = req.method == "GET" || req.method == "POST" ||
                               req.method == "DELETE" || req.method == "HEAD";
    if ((res.status == 404 || (res.status == 400 && !routed_method)) &&
        std::regex_match(req.path, known)) {
      return JsonError(res, 405, "method_not_allowed",
                       req.method + " is not supported on " + req.path);
    }
    switch (res.status) {
      case 404:
        return JsonError(res, 404, "not_found", "no such endpoint");
      case 413:
        return JsonError(res, 413, "too_large", "the request body is too large");
      case 400:
        return JsonError(res, 400, "bad_request",
                         "malformed request (or a header line over 8 KiB)");
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
  // Called once the answer is written.
  s.set_logger([&p](const httplib::Request& req, const httplib::Response& res) {
    if (res.get_header_value("Connection") == "close") CloseAfterAnswer(req);
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
