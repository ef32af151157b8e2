#include "api/service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>

#include "api/tools.h"
#include "exec/ids.h"
#include "exec/notebook_output.h"
#include "runner/runner_files.h"

namespace codecell::api {
namespace {

using nlohmann::json;
using store::FileRecord;

constexpr size_t kMaxJsonBody = 1u << 20;
constexpr const char* kUserIdRule = "user_id is required: 1-128 characters of A-Z a-z 0-9 _ . : -";
constexpr const char* kVersion = CODECELL_VERSION;

thread_local std::chrono::steady_clock::time_point request_started;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void Log(json line) {
  line["ts"] = files::Rfc3339(files::NowMillis());
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::cerr << Dump(line) << std::endl;
}

void JsonError(httplib::Response& res, int status, const std::string& code,
               const std::string& message) {
  res.status = status;
  res.set_content(Dump({{"error", {{"code", code}, {"message", message}}}}), "application/json");
}

void JsonOk(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

bool IsListOfStrings(const json& v) {
  return v.is_array() &&
         std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); });
}

// The user id of a query string; answers 400 itself when it is missing or malformed.
std::optional<std::string> QueryUser(const httplib::Request& req, httplib::Response& res) {
  std::string id = req.get_param_value("user_id");
  if (!ValidUserId(id)) {
    JsonError(res, 400, "bad_request", kUserIdRule);
    return std::nullopt;
  }
  return id;
}

json FileObject(const FileRecord& r) {
  return {{"file_id", r.file_id},
          {"user_id", r.user_id},
          {"filename", r.filename},
          {"original_filename", r.original_filename},
          {"file_type", r.file_type},
          {"mime_type", r.mime_type},
          {"file_size", r.file_size},
          {"sha256", r.sha256},
          {"source", r.source},
          {"uploaded_at", files::Rfc3339(r.uploaded_at)},
          {"expires_at", r.expires_at ? json(files::Rfc3339(*r.expires_at)) : json(nullptr)}};
}

// What was removed to make room for a new file, so that the model and the user know it is gone.
json EvictedFiles(const std::vector<FileRecord>& evicted) {
  json list = json::array();
  for (const auto& r : evicted) {
    list.push_back({{"file_id", r.file_id}, {"filename", r.filename}, {"source", r.source}});
  }
  return list;
}

// The 201 answer of an upload (HTTP and MCP): the file object, and what made room for it.
json UploadAnswer(const FileRecord& stored, const files::FileManager::Upload& upload) {
  json answer = FileObject(stored);
  answer["evicted_files"] = EvictedFiles(upload.evicted());
  return answer;
}

void FailureResponse(httplib::Response& res, const files::Failure& f) {
  switch (f.kind) {
    case files::Failure::kBadRequest:
      return JsonError(res, 400, "bad_request", f.message);
    case files::Failure::kNotFound:
      return JsonError(res, 404, "not_found", f.message);
    case files::Failure::kTooLarge:
      return JsonError(res, 413, "too_large", f.message);
    case files::Failure::kOverQuota:
      res.set_header("Retry-After", "60");
      return JsonError(res, 429, "rate_limited", f.message);
    case files::Failure::kStorageFull:
      return JsonError(res, 507, "insufficient_storage", f.message);
    case files::Failure::kInternal:
      return JsonError(res, 500, "internal", f.message);
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

// The declared body size, when the client sent one.
std::optional<uint64_t> ContentLength(const httplib::Request& req) {
  if (!req.has_header("Content-Length")) return std::nullopt;
  try {
    return std::stoull(req.get_header_value("Content-Length"));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Debian's cpp-httplib is built with a listen backlog of 5: under 100 concurrent clients the
// kernel's accept queue overflowed and connections were reset (measured by the API suite). A
// second listen() on the bound socket raises the backlog; httplib does not expose the socket, so
// it is found by its port.
void RaiseListenBacklog(int port) {
  for (int fd = 3; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
      continue;
    }
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) continue;
    int bound = addr.ss_family == AF_INET
                    ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
                    : ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
}

// A small JSON object body (routes without a content reader); answers 413 or 400 itself.
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

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

Service::Service(ServiceConfig config, std::unique_ptr<store::Store> store, std::string self_exe,
                 exec::ExecutionEnvironment environment)
    : config_(std::move(config)),
      store_(std::move(store)),
      files_(*store_, config_.data_dir, config_.files),
      helpers_(self_exe),
      zygote_(self_exe, config_.data_dir, config_.warm),
      environment_(std::move(environment)),
      admission_(config_.workers, config_.queue, config_.per_user),
      packages_(
          config_.packages, config_.data_dir, *store_,
          [this](exec::ExecutionRequest& r) { return RunInstaller(r); },
          environment_.installer_uid),
      server_(std::make_unique<httplib::Server>()),
      mcp_(*this, kVersion) {}

sandbox::Result<json> Service::RunInstaller(exec::ExecutionRequest& request) {
  json body = exec::RequestToJson(request, config_.data_dir);
  body["installer_uid"] = environment_.installer_uid;
  return helpers_.Run(body);
}

Service::~Service() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (cleanup_thread_.joinable()) cleanup_thread_.join();
}

json Service::RunCleanup(files::FileManager& files, store::Store& store,
                         packages::PackageManager& packages, Metrics* metrics) {
  size_t deleted = files.CleanupExpired();
  std::string timestamp = files::Rfc3339(files::NowMillis());
  store.SetMeta("last_cleanup", timestamp);
  if (metrics) metrics->CountCleanup(deleted);
  json out = {{"deleted_files", deleted}, {"venv_recreated", false}, {"timestamp", timestamp}};
  if (packages.RefreshDue()) {
    json refresh = packages.Refresh(/*force=*/false);
    out["venv_recreated"] = refresh.value("refreshed", false);
    out["package_refresh"] = refresh;
  }
  packages.SweepUnused();
  return out;
}

json Service::StoredStatus(const ServiceConfig& config, store::Store& store) {
  store::Usage usage = store.TotalLiveUsage(files::NowMillis());
  auto last = store.GetMeta("last_cleanup");
  json installed = json::array();
  for (const auto& p : store.ListPackages()) {
    if (p.requested) installed.push_back(p.name);
  }
  const bool venv_exists =
      !packages::PackageEnvironment(config.data_dir + "/packages").CurrentName().empty();
  return {
      {"venv_exists", venv_exists},
      {"python_path", "/usr/bin/python3"},
      {"installed_packages", installed},
      {"package_count", installed.size()},
      {"last_cleanup", last ? json(*last) : json(nullptr)},
      {"total_user_files", usage.files},
      {"total_file_size_mb", std::round(static_cast<double>(usage.bytes) / (1 << 20) * 100) / 100},
      {"file_expiration_hours", config.files.lifetime_hours},
      {"max_file_size_mb", config.files.max_upload_bytes >> 20},
      {"version", kVersion}};
}

json Service::Status() {
  json status = StoredStatus(config_, *store_);
  status["uptime_s"] =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  status["workers"] = config_.workers;
  status["interpreters"] = zygote_.Describe();
  status["packages"] = packages_.Describe();
  status["executions"] = {{"running", admission_.running()},
                          {"queued", admission_.queued()},
                          {"queue_limit", config_.queue},
                          {"per_user_limit", config_.per_user}};
  return status;
}

sandbox::Result<json> Service::RunOne(exec::ExecutionRequest& request) {
  // Warm: in this process, on a child the zygote forked. Cold (no zygote, or it did not answer):
  // in a fresh `codecell __execute` helper, so that no thread of ours ever clones a sandbox.
  std::optional<exec::WarmChild> warm;
  if (std::string socket = zygote_.SocketFor(request.code); !socket.empty()) {
    auto acquired = exec::AcquireWarmChild(socket);
    if (acquired) {
      warm = std::move(acquired.value());
    } else {
      Log({{"level", "warning"}, {"event", "zygote"}, {"message", acquired.error()}});
    }
  }
  if (!warm) return helpers_.Run(exec::RequestToJson(request, config_.data_dir));
  sandbox::UniqueFd cancel(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel.valid()) return sandbox::Result<json>::Fail("eventfd failed");
  {
    std::lock_guard<std::mutex> lock(cancel_mutex_);
    cancel_fds_.insert(cancel.get());
  }
  request.cancel_fd = cancel.get();
  bool code_started = false;
  auto result = exec::RunExecution(environment_, request, std::move(warm), &code_started);
  {
    std::lock_guard<std::mutex> lock(cancel_mutex_);
    cancel_fds_.erase(cancel.get());
  }
  if (!result && !code_started && result.kind() != sandbox::FailureKind::kStorageFull) {
    // The warm child could not be started or set up (e.g. its zygote died just then): the code
    // has not run, so run it cold. A full disk would stop a cold one the same way.
    Log({{"level", "warning"},
         {"event", "zygote"},
         {"message", "warm execution failed, running it cold: " + result.error()}});
    request.cancel_fd = -1;
    return helpers_.Run(exec::RequestToJson(request, config_.data_dir));
  }
  if (!result) return sandbox::Result<json>::Fail(result);
  return result->ToJson();
}

void Service::Routes() {
  httplib::Server& s = *server_;
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_started = std::chrono::steady_clock::now();
    if (config_.api_keys.empty() || req.path == "/healthz") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    std::string header = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (header.rfind(prefix, 0) == 0) {
      std::string key = header.substr(prefix.size());
      for (const auto& k : config_.api_keys) {
        if (ConstantTimeEquals(key, k)) return httplib::Server::HandlerResponse::Unhandled;
      }
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
          Log({{"level", "error"}, {"event", "store_error"}, {"message", e.what()}});
          if (e.disk_full()) {
            return JsonError(res, 507, "insufficient_storage",
                             "the service's storage is full: nothing was recorded");
          }
          return JsonError(res, 500, "internal", "metadata store error");
        } catch (const std::exception& e) {
          Log({{"level", "error"}, {"event", "exception"}, {"message", e.what()}});
          return JsonError(res, 500, "internal", "internal error");
        } catch (...) {
          return JsonError(res, 500, "internal", "internal error");
        }
      });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountRequest(res.status);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                          request_started)
                    .count();
    Log({{"level", "info"},
         {"event", "request"},
         {"method", req.method},
         {"path", req.path},
         {"status", res.status},
         {"duration_ms", std::round(ms * 10) / 10},
         {"remote", req.remote_addr}});
  });

  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, {{"status", "ok"}});
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    store::Usage usage = store_->TotalLiveUsage(files::NowMillis());
    res.set_content(
        metrics_.Render({admission_.queued(), admission_.running(), config_.workers, usage.files,
                         usage.bytes, packages_.stats(), mcp_sessions_.size()}),
        "text/plain; version=0.0.4");
  });
  s.Get("/v1/status",
        [this](const httplib::Request&, httplib::Response& res) { JsonOk(res, 200, Status()); });
  s.Post("/v1/cleanup", [this](const httplib::Request&, httplib::Response& res) {
    json out = RunCleanup(files_, *store_, packages_, &metrics_);
    Log({{"level", "info"}, {"event", "cleanup"}, {"deleted_files", out["deleted_files"]}});
    JsonOk(res, 200, out);
  });

  s.Post("/v1/files", [this](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& reader) {
    if (!req.is_multipart_form_data()) {
      return JsonError(res, 400, "bad_request",
                       "upload with multipart/form-data: a user_id field and a file part");
    }
    const uint64_t limit = config_.files.max_upload_bytes;
    // The multipart framing adds a little; a body far beyond the limit is refused unread.
    if (auto declared = ContentLength(req); declared && *declared > limit + (64u << 10)) {
      metrics_.CountUpload(false);
      return JsonError(
          res, 413, "too_large",
          "the upload is larger than the limit of " + std::to_string(limit >> 20) + " MiB");
    }
    int user_id_fields = 0;
    std::string user_id, part_name;
    std::unique_ptr<files::FileManager::Upload> upload;
    int file_parts = 0;
    std::optional<files::Failure> failure;
    bool read = reader(
        [&](const httplib::MultipartFormData& part) {
          part_name = part.name;
          if (part.name == "user_id" && ++user_id_fields > 1) {
            failure = files::Failure{files::Failure::kBadRequest, "send one user_id field"};
            return false;
          }
          if (part.name == "file") {
            if (++file_parts > 1) {
              failure = files::Failure{files::Failure::kBadRequest, "send exactly one file part"};
              return false;
            }
            auto begun = files_.BeginUpload(part.filename.empty() ? "file" : part.filename);
            if (!begun.ok()) {
              failure = begun.failure;
              return false;
            }
            upload = std::move(*begun.value);
          }
          return true;
        },
        [&](const char* data, size_t size) {
          if (part_name == "file") {
            if (!upload->Write(data, size)) {
              failure = upload->failure();
              return false;
            }
          } else if (part_name == "user_id") {
            if (user_id.size() + size > 256) return false;
            user_id.append(data, size);
          }
          return true;
        });
    if (failure) {
      metrics_.CountUpload(false);
      return FailureResponse(res, *failure);
    }
    if (!read) {
      return JsonError(res, 400, "bad_request",
                       "malformed multipart body (or a part header over 8 KiB, such as a very "
                       "long file name)");
    }
    if (!ValidUserId(user_id)) {
      return JsonError(res, 400, "bad_request", kUserIdRule);
    }
    if (!upload) return JsonError(res, 400, "bad_request", "the upload has no part named 'file'");
    auto stored = upload->Commit(user_id);
    metrics_.CountUpload(stored.ok());
    if (!stored.ok()) return FailureResponse(res, stored.failure);
    JsonOk(res, 201, UploadAnswer(*stored.value, *upload));
  });
  s.Get("/v1/files", [this](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(req, res);
    if (!user) return;
    json list = json::array();
    for (const auto& r : files_.List(*user)) list.push_back(FileObject(r));
    JsonOk(res, 200, {{"files", list}});
  });
  s.Delete("/v1/files", [this](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(req, res);
    if (!user) return;
    JsonOk(res, 200, {{"deleted_count", files_.DeleteAll(*user)}});
  });
  s.Get(R"(/v1/files/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(req, res);
    if (!user) return;
    auto r = files_.Get(*user, req.matches[1]);
    if (!r) return JsonError(res, 404, "not_found", "no such file");
    JsonOk(res, 200, FileObject(*r));
  });
  s.Delete(R"(/v1/files/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(req, res);
    if (!user) return;
    if (!files_.Delete(*user, req.matches[1])) {
      return JsonError(res, 404, "not_found", "no such file");
    }
    res.status = 204;
  });
  s.Get(
      R"(/v1/files/([^/]+)/content)", [this](const httplib::Request& req, httplib::Response& res) {
        auto user = QueryUser(req, res);
        if (!user) return;
        auto r = files_.Get(*user, req.matches[1]);
        if (!r) return JsonError(res, 404, "not_found", "no such file");
        // Opened now: a delete during the download unlinks the name, not these bytes.
        int fd = ::open(files_.PathOf(*r).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return JsonError(res, 404, "not_found", "the file's bytes are gone");
        res.set_header("Content-Disposition", ContentDisposition(r->filename));
        res.set_content_provider(
            r->file_size, r->mime_type,
            [fd](size_t offset, size_t length, httplib::DataSink& sink) {
              char buffer[65536];
              ssize_t n =
                  ::pread(fd, buffer, std::min(length, sizeof buffer), static_cast<off_t>(offset));
              if (n <= 0) return false;
              return sink.write(buffer, static_cast<size_t>(n));
            },
            [fd](bool) { ::close(fd); });
      });

  s.Post("/v1/executions", [this](const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
    if (auto declared = ContentLength(req); declared && *declared > kMaxJsonBody) {
      return JsonError(res, 413, "too_large", "the request body is over 1 MiB");
    }
    std::string body;
    bool too_big = false;
    reader([&](const char* data, size_t size) {
      if (body.size() + size > kMaxJsonBody) {
        too_big = true;
        return false;
      }
      body.append(data, size);
      return true;
    });
    if (too_big) return JsonError(res, 413, "too_large", "the request body is over 1 MiB");
    json j = json::parse(body, nullptr, false);
    Execute(j, res);
  });
}

void Service::Execute(const json& j, httplib::Response& res) {
  if (j.is_discarded() || !j.is_object()) {
    return JsonError(res, 400, "bad_request", "the body must be a JSON object");
  }
  if (!j.contains("user_id") || !j["user_id"].is_string() ||
      !ValidUserId(j["user_id"].get<std::string>())) {
    return JsonError(res, 400, "bad_request", kUserIdRule);
  }
  const std::string user = j["user_id"];
  if (!j.contains("code") || !j["code"].is_string()) {
    return JsonError(res, 400, "bad_request", "code is required and must be a string");
  }
  exec::ExecutionRequest request;
  request.code = j["code"];
  request.limits = config_.limits;
  if (j.contains("timeout") && !j["timeout"].is_null()) {
    if (!j["timeout"].is_number()) {
      return JsonError(res, 400, "bad_request", "timeout must be a number of seconds");
    }
    request.limits.timeout_seconds = j["timeout"].get<double>();
  }
  if (j.contains("memory_mb") && !j["memory_mb"].is_null()) {
    if (!j["memory_mb"].is_number_integer() || j["memory_mb"].get<int64_t>() <= 0) {
      return JsonError(res, 400, "bad_request", "memory_mb must be a positive integer");
    }
    request.limits.memory_mb = j["memory_mb"].get<uint64_t>();
  }
  if (auto msg = exec::ValidateLimits(request.limits, config_.bounds); !msg.empty()) {
    return JsonError(res, 400, "bad_request", msg);
  }
  std::vector<std::string> install_names;
  if (j.contains("install_packages") && !j["install_packages"].is_null()) {
    if (!IsListOfStrings(j["install_packages"]) || j["install_packages"].size() > 50) {
      return JsonError(res, 400, "bad_request",
                       "install_packages must be a list of at most 50 package names");
    }
    install_names = j["install_packages"].get<std::vector<std::string>>();
  }
  std::vector<FileRecord> inputs;
  if (j.contains("file_ids") && !j["file_ids"].is_null()) {
    if (!IsListOfStrings(j["file_ids"])) {
      return JsonError(res, 400, "bad_request", "file_ids must be a list of file ids");
    }
    for (const auto& id : j["file_ids"]) {
      auto r = files_.Get(user, id.get<std::string>());
      if (!r) return JsonError(res, 404, "not_found", "no such file: " + id.get<std::string>());
      inputs.push_back(*r);
    }
  } else {
    inputs = files_.List(user);
  }

  switch (admission_.Enter(user)) {
    case exec::Admission::Verdict::kRun:
      break;
    case exec::Admission::Verdict::kQueueFull:
      res.set_header("Retry-After", "5");
      return JsonError(res, 429, "rate_limited", "all execution workers and the queue are busy");
    case exec::Admission::Verdict::kUserLimit:
      res.set_header("Retry-After", "5");
      return JsonError(res, 429, "rate_limited",
                       "this user already has " + std::to_string(config_.per_user) +
                           " executions running or queued");
    case exec::Admission::Verdict::kShuttingDown:
      return JsonError(res, 503, "not_ready", "the service is shutting down");
  }
  struct Leave {
    exec::Admission& a;
    const std::string& u;
    ~Leave() { a.Leave(u); }
  } leave{admission_, user};

  for (const auto& r : inputs) {
    request.inputs.push_back({r.file_id, r.filename, files_.PathOf(r)});
  }
  // Packages first: asked for, or (below) missing from a failed import.
  packages::InstallReport installs;
  if (!install_names.empty()) installs = packages_.Install(install_names, user);
  packages_.NoteUsage(request.code);
  std::error_code ec;
  // The environment the execution mounts stays in place until it ends (its lease).
  auto run_once = [&]() -> sandbox::Result<json> {
    auto lease = packages_.Acquire();
    if (!lease) return sandbox::Result<json>::Fail(lease.error());
    request.packages_dir = lease.value() ? lease.value()->path() : std::string();
    request.generated_dir = files_.temp_dir() + "/" + exec::NewRandomId("generated-");
    auto ran = RunOne(request);
    if (lease.value()) {
      // The last execution on an environment that a newer one replaced has it removed (by the
      // cleanup thread).
      const bool superseded = lease.value()->name() != packages_.CurrentName();
      lease.value().reset();
      if (superseded) {
        std::lock_guard<std::mutex> guard(stop_mutex_);
        sweep_requested_ = true;
        stop_cv_.notify_all();
      }
    }
    return ran;
  };
  store::ExecutionRecord record;
  record.user_id = user;
  record.started_at = files::NowMillis();
  auto out = run_once();
  bool rerun = false;
  if (out && out->value("status", "") == "error") {
    // As the old bot did: an approved package that is missing is installed, and the code runs
    // once more (the first run's files are dropped).
    const std::string missing = packages::MissingModule(out->value("error", ""));
    if (!missing.empty()) {
      if (auto entry = packages_.InstallableForMissingModule(missing)) {
        packages::InstallReport more = packages_.Install({entry->import_name}, user);
        installs.packages.insert(installs.packages.end(), more.packages.begin(),
                                 more.packages.end());
        installs.seconds += more.seconds;
        if (more.installed_any()) {
          std::filesystem::remove_all(request.generated_dir, ec);
          out = run_once();
          rerun = true;
        }
      } else if (!packages_.settings().allowlist.FindImport(missing)) {
        installs.packages.push_back(
            {missing, "", "", "failed", packages::NotApprovedReason(missing), 0});
      }
    }
  }
  record.finished_at = files::NowMillis();
  if (!out) {
    std::filesystem::remove_all(request.generated_dir, ec);
    record.execution_id = exec::NewRandomId("exec_");
    record.status = "failed";
    RecordExecution(record);
    metrics_.CountExecution("failed", (record.finished_at - record.started_at) / 1000.0);
    Log({{"level", "error"},
         {"event", "execution"},
         {"execution_id", record.execution_id},
         {"user_id", user},
         {"status", "failed"},
         {"message", out.error()}});
    // The code did not run. The reason names host paths: it stays in the log.
    if (out.kind() == sandbox::FailureKind::kStorageFull) {
      return JsonError(res, 507, "insufficient_storage",
                       "the service's storage is full: the execution could not be prepared "
                       "(nothing ran). Delete files, or ask the operator to free space");
    }
    return JsonError(res, 500, "internal",
                     "the execution could not be run (an internal error; the service's log has "
                     "the details under " +
                         record.execution_id + ")");
  }
  json result = std::move(out.value());
  json stored = json::array();
  json skipped = result.value("skipped_files", json::array());
  std::map<std::string, std::string> stored_ids;  // the execution's file_id -> the store's
  files::FileManager::GeneratedBatch batch(files_, user);
  for (const auto& g : result.value("generated_files", json::array())) {
    auto adopted = batch.Adopt(g.value("path", ""), g.value("filename", ""));
    if (adopted.ok()) {
      const FileRecord& r = *adopted.value;
      stored_ids[g.value("file_id", "")] = r.file_id;
      stored.push_back(
          {{"file_id", r.file_id},
           {"filename", r.filename},
           {"file_type", r.file_type},
           {"mime_type", r.mime_type},
           {"size", r.file_size},
           {"expires_at", r.expires_at ? json(files::Rfc3339(*r.expires_at)) : json(nullptr)}});
    } else {
      skipped.push_back({{"filename", g.value("filename", "")},
                         {"size", g.value("size", 0)},
                         {"reason", adopted.failure.message}});
    }
  }
  std::filesystem::remove_all(request.generated_dir, ec);
  result["generated_files"] = stored;
  result["skipped_files"] = skipped;
  result["evicted_files"] = EvictedFiles(batch.evicted());
  if (result.contains("outputs")) exec::RelinkOutputFiles(result["outputs"], stored_ids);
  result["installed_packages"] = installs.InstalledNames();
  result["failed_packages"] = installs.Failed();
  json details = json::array();
  for (const auto& p : installs.packages) details.push_back(p.ToJson());
  result["package_installs"] = details;
  result["package_install_seconds"] = std::round(installs.seconds * 1000) / 1000;
  if (rerun) result["rerun_after_install"] = true;
  record.execution_id = result.value("execution_id", "");
  record.status = result.value("status", "");
  record.return_code = result.value("return_code", 0);
  record.execution_time = result.value("execution_time", 0.0);
  if (result["resources"]["cpu_time"].is_number()) {
    record.cpu_time = result["resources"]["cpu_time"].get<double>();
  }
  if (result["resources"]["peak_memory_bytes"].is_number()) {
    record.peak_memory_bytes = result["resources"]["peak_memory_bytes"].get<uint64_t>();
  }
  record.generated_files = stored.size();
  RecordExecution(record);
  metrics_.CountExecution(record.status, record.execution_time);
  Log({{"level", "info"},
       {"event", "execution"},
       {"execution_id", record.execution_id},
       {"user_id", user},
       {"status", record.status},
       {"return_code", record.return_code},
       {"execution_time", record.execution_time},
       {"inputs", inputs.size()},
       {"generated_files", stored.size()}});
  JsonOk(res, 200, result);
}

void Service::RecordExecution(const store::ExecutionRecord& record) {
  try {
    store_->InsertExecution(record);
  } catch (const store::StoreError& e) {
    // The answer matters more than the history row (read only by the operator's queries): a full
    // disk must not turn the result of code that ran into an error.
    Log({{"level", "error"},
         {"event", "store_error"},
         {"execution_id", record.execution_id},
         {"message", std::string("the execution was not recorded: ") + e.what()}});
  }
}

ToolLimits Service::ToolLimitsNow() const {
  ToolLimits l;
  l.default_timeout_seconds = config_.limits.timeout_seconds;
  l.max_timeout_seconds = config_.bounds.max_timeout_seconds;
  l.memory_mb = config_.limits.memory_mb;
  l.file_lifetime_hours = config_.files.lifetime_hours;
  l.max_generated_files = config_.limits.max_generated_files;
  l.budget_chars = config_.tool_budget_chars;
  return l;
}

json Service::CallTool(const std::string& user, const ParsedToolCall& call) {
  // Both ways in (POST /v1/tool-calls, MCP's tools/call) come through here.
  metrics_.CountToolCall(call.name);
  Log({{"level", "info"},
       {"event", "tool_call"},
       {"user_id", user},
       {"tool", call.name},
       {"malformed", !call.error.empty()}});
  const ToolLimits limits = ToolLimitsNow();
  json attachments = json::array();
  json result = nullptr;
  std::string content;
  const json& args = call.arguments;
  auto text_arg = [&](const char* key) -> std::optional<std::string> {
    if (!args.contains(key) || !args[key].is_string()) return std::nullopt;
    return args[key].get<std::string>();
  };
  // An execution through the same path as POST /v1/executions (admission, limits, files).
  auto execute = [&](json body) {
    body["user_id"] = user;  // never the model's: a user_id in the arguments is ignored
    httplib::Response inner;
    Execute(body, inner);
    json answer = json::parse(inner.body, nullptr, false);
    if (inner.status != 200 || !answer.is_object()) {
      std::string message = answer.is_object() && answer.contains("error")
                                ? answer["error"].value("message", "")
                                : "status " + std::to_string(inner.status);
      content = "Error: the code could not be run: " + message +
                (inner.status == 429 ? ". Try again in a few seconds." : ".");
      return;
    }
    content = ExecutionContent(answer, limits.budget_chars);
    for (const auto& f : answer.value("generated_files", json::array())) {
      const std::string id = f.value("file_id", "");
      attachments.push_back({{"file_id", id},
                             {"filename", f.value("filename", "")},
                             {"mime_type", f.value("mime_type", "")},
                             {"size", f.value("size", 0)},
                             {"download_path", "/v1/files/" + id + "/content?user_id=" + user}});
    }
    result = std::move(answer);
  };
  // A file the model names by id or by name (its own earlier upload list shows both).
  auto find_file = [&](const std::string& ref) -> std::optional<FileRecord> {
    if (auto r = files_.Get(user, ref)) return r;
    for (auto& r : files_.List(user)) {
      if (r.filename == ref) return r;
    }
    return std::nullopt;
  };

  if (!call.error.empty()) {
    content = "Error: " + call.error + ".";
  } else if (call.name == "execute_python_code") {
    auto code = text_arg("code");
    if (!code) {
      content = "Error: execute_python_code needs a \"code\" argument: a string of Python code.";
    } else if (args.contains("timeout") && !args["timeout"].is_null() &&
               !args["timeout"].is_number()) {
      content = "Error: \"timeout\" must be a number of seconds.";
    } else {
      json body = {{"code", *code}};
      if (args.contains("timeout") && args["timeout"].is_number())
        body["timeout"] = args["timeout"];
      if (args.contains("install_packages") && args["install_packages"].is_array()) {
        body["install_packages"] = args["install_packages"];
      }
      execute(std::move(body));
    }
  } else if (call.name == "analyze_data_file") {
    auto ref = text_arg("file_id");
    const std::string kind = text_arg("analysis_type").value_or("summary");
    static const std::set<std::string> kKinds = {"summary", "correlation", "distribution",
                                                 "comprehensive"};
    std::optional<FileRecord> file = ref ? find_file(*ref) : std::nullopt;
    if (!ref) {
      content = "Error: analyze_data_file needs a \"file_id\" argument (see list_files).";
    } else if (kKinds.count(kind) == 0) {
      content =
          "Error: analysis_type must be one of summary, correlation, distribution, "
          "comprehensive.";
    } else if (!file) {
      content = "Error: the user has no file '" + *ref + "'; list_files shows their files.";
    } else {
      execute({{"code", std::string(runner::kAnalyzeSource) + "\nanalyze(" +
                            json(file->file_id).dump() + ", " + json(kind).dump() + ")\n"},
               {"file_ids", json::array({file->file_id})}});
    }
  } else if (call.name == "list_files") {
    auto list = files_.List(user);
    json listed = json::array();
    content = list.empty() ? "The user has no files." : "The user's files:";
    for (const auto& r : list) {
      content += "\n- " + r.filename + " (file_id " + r.file_id + ", " + r.file_type + ", " +
                 std::to_string(r.file_size) + " bytes, expires " +
                 (r.expires_at ? files::Rfc3339(*r.expires_at) : std::string("never")) + ")";
      listed.push_back(FileObject(r));
    }
    result = {{"files", listed}};
  } else if (call.name == "delete_file") {
    auto ref = text_arg("file_id");
    auto file = ref ? files_.Get(user, *ref) : std::nullopt;
    if (!ref) {
      content = "Error: delete_file needs a \"file_id\" argument (see list_files).";
    } else if (!file || !files_.Delete(user, file->file_id)) {
      content = "Error: the user has no file with id '" + *ref + "'; list_files shows their files.";
    } else {
      content = "Deleted " + file->filename + " (file_id " + file->file_id + ").";
    }
  } else {
    content = "Error: there is no tool named '" + call.name +
              "'. The tools are execute_python_code, analyze_data_file, list_files and "
              "delete_file.";
  }
  return {{"message", {{"role", "tool"}, {"tool_call_id", call.id}, {"content", content}}},
          {"attachments", attachments},
          {"result", result}};
}

void Service::ToolRoutes() {
  httplib::Server& s = *server_;
  s.Get("/v1/tools", [this](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, {{"tools", ToolDefinitions(ToolLimitsNow())}});
  });
  s.Post("/v1/tool-calls", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = JsonObjectBody(req, res);
    if (!body) return;
    const json& j = *body;
    // The user is the bot's (authenticated) statement, never the model's arguments.
    if (!j.contains("user_id") || !j["user_id"].is_string() ||
        !ValidUserId(j["user_id"].get<std::string>())) {
      return JsonError(res, 400, "bad_request", kUserIdRule);
    }
    if (!j.contains("tool_call") || !j["tool_call"].is_object()) {
      return JsonError(res, 400, "bad_request",
                       "tool_call is required: the model's tool call as the API returned it");
    }
    ParsedToolCall call = ParseToolCall(j["tool_call"]);
    JsonOk(res, 200, CallTool(j["user_id"], call));
  });
}

json Service::ToolDefinitionsNow() { return ToolDefinitions(ToolLimitsNow()); }

sandbox::Result<json> Service::UploadFile(const std::string& user, const std::string& filename,
                                          const std::string& bytes) {
  using R = sandbox::Result<json>;
  metrics_.CountToolCall("upload_file");  // MCP's tool: the only caller
  auto begun = files_.BeginUpload(filename);
  if (!begun.ok()) return R::Fail(begun.failure.message);
  auto& upload = *begun.value;
  if (!upload->Write(bytes.data(), bytes.size())) return R::Fail(upload->failure().message);
  auto stored = upload->Commit(user);
  metrics_.CountUpload(stored.ok());
  if (!stored.ok()) return R::Fail(stored.failure.message);
  return UploadAnswer(*stored.value, *upload);
}

json Service::ListFiles(const std::string& user) {
  json list = json::array();
  for (const auto& r : files_.List(user)) list.push_back(FileObject(r));
  return list;
}

std::optional<json> Service::FindFile(const std::string& user, const std::string& file_id) {
  auto r = files_.Get(user, file_id);
  if (!r) return std::nullopt;
  return FileObject(*r);
}

sandbox::Result<std::string> Service::ReadFileBytes(const std::string& user,
                                                    const std::string& file_id) {
  using R = sandbox::Result<std::string>;
  auto r = files_.Get(user, file_id);
  if (!r) return R::Fail("no such file");
  std::ifstream in(files_.PathOf(*r), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return R::Fail("cannot read " + r->filename);
  return bytes;
}

namespace {

// MCP's Streamable HTTP answers its transport errors with a JSON-RPC error object.
void McpHttpError(httplib::Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(Dump(McpServer::ErrorResponse(nullptr, code, message)), "application/json");
}

// A browser page on another site must not drive a local server (DNS rebinding): requests that
// carry an Origin are accepted from loopback origins and the configured ones only.
bool OriginAllowed(const std::string& origin, const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) return true;
  static const std::regex loopback(R"(https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)");
  return std::regex_match(origin, loopback);
}

}  // namespace

void Service::McpRoutes() {
  httplib::Server& s = *server_;
  // The user a request names: ?user_id= (URLs are what MCP clients let one configure) or the
  // X-Codecell-User-Id header; "" when it names none. Naming two different users is a 400
  // (nullopt): which one was meant cannot be guessed.
  auto named_user = [](const httplib::Request& req,
                       httplib::Response& res) -> std::optional<std::string> {
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
  };
  // Checks shared by every method; false when it has answered.
  auto admit = [this](const httplib::Request& req, httplib::Response& res) {
    if (!OriginAllowed(req.get_header_value("Origin"), config_.mcp_allowed_origins)) {
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
  };
  // The session a request belongs to; answers 400/404/403 itself.
  auto session_of = [this, named_user](const httplib::Request& req, httplib::Response& res)
      -> std::optional<std::pair<std::string, McpSession>> {
    std::string id = req.get_header_value("Mcp-Session-Id");
    if (id.empty()) {
      McpHttpError(res, 400, -32000,
                   "Mcp-Session-Id header is required (send initialize first to get one)");
      return std::nullopt;
    }
    auto session = mcp_sessions_.Find(id);
    if (!session) {
      McpHttpError(res, 404, -32001, "session not found (it ended or expired): initialize again");
      return std::nullopt;
    }
    auto user = named_user(req, res);
    if (!user) return std::nullopt;
    if (!user->empty() && *user != session->user) {
      McpHttpError(res, 403, -32000, "this session belongs to another user");
      return std::nullopt;
    }
    return std::make_pair(id, *session);
  };

  s.Post("/mcp", [this, admit, session_of, named_user](const httplib::Request& req,
                                                       httplib::Response& res) {
    if (!admit(req, res)) return;
    json message = json::parse(req.body, nullptr, false);
    if (message.is_discarded()) {
      res.status = 400;
      res.set_content(Dump(McpServer::ErrorResponse(nullptr, -32700, "parse error: not JSON")),
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
      auto user = named_user(req, res);
      if (!user) return;
      session.user = user->empty() ? config_.mcp_default_user : *user;
      if (!ValidUserId(session.user)) {
        return McpHttpError(res, 400, -32602,
                            "user_id must be 1-128 characters of A-Z a-z 0-9 _ . : -");
      }
    } else {
      auto found = session_of(req, res);
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
          "text/event-stream", [this, message, session](size_t, httplib::DataSink& sink) mutable {
            auto event = [&sink](const json& j) {
              std::string text = "event: message\ndata: " + Dump(j) + "\n\n";
              return sink.write(text.data(), text.size());
            };
            auto response = mcp_.Handle(message, session, event);
            if (response) event(*response);
            sink.done();
            return true;
          });
      return;
    }
    auto response = mcp_.Handle(message, session);
    if (is_initialize && response && response->contains("result")) {
      session_id = mcp_sessions_.Create(session);
      res.set_header("Mcp-Session-Id", session_id);
      Log({{"level", "info"},
           {"event", "mcp_session"},
           {"user_id", session.user},
           {"protocol", session.protocol_version}});
    }
    if (!response) {
      res.status = 202;  // a notification or a response: nothing to answer
      return;
    }
    JsonOk(res, 200, *response);
  });
  s.Get("/mcp", [admit](const httplib::Request& req, httplib::Response& res) {
    if (!admit(req, res)) return;
    res.set_header("Allow", "POST, DELETE");
    McpHttpError(res, 405, -32000,
                 "this server sends no server-initiated messages: there is no GET stream");
  });
  s.Delete("/mcp", [this, admit, session_of](const httplib::Request& req, httplib::Response& res) {
    if (!admit(req, res)) return;
    auto found = session_of(req, res);
    if (!found) return;
    mcp_sessions_.Erase(found->first);
    res.status = 204;
  });
}

void Service::PackageRoutes() {
  httplib::Server& s = *server_;
  s.Get("/v1/packages", [this](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, packages_.List());
  });
  s.Post("/v1/packages", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = JsonObjectBody(req, res);
    if (!body) return;
    const json& j = *body;
    if (!j.contains("packages") || !IsListOfStrings(j["packages"]) || j["packages"].empty() ||
        j["packages"].size() > 50) {
      return JsonError(res, 400, "bad_request",
                       "packages is required: a list of 1-50 package names");
    }
    std::string requester = "api";
    if (j.contains("user_id") && !j["user_id"].is_null()) {
      if (!j["user_id"].is_string() || !ValidUserId(j["user_id"].get<std::string>())) {
        return JsonError(res, 400, "bad_request", kUserIdRule);
      }
      requester = j["user_id"];
    }
    packages::InstallReport report =
        packages_.Install(j["packages"].get<std::vector<std::string>>(), requester);
    Log({{"level", report.all_ok() ? "info" : "warning"},
         {"event", "packages_install"},
         {"requester", requester},
         {"packages", report.ToJson()["packages"]},
         {"seconds", report.seconds}});
    JsonOk(res, 200, report.ToJson());
  });
  s.Post("/v1/packages/refresh", [this](const httplib::Request&, httplib::Response& res) {
    json out = packages_.Refresh(/*force=*/true);
    Log({{"level", out.value("refreshed", false) ? "info" : "error"},
         {"event", "packages_refresh"},
         {"result", out}});
    JsonOk(res, 200, out);
  });
}

void Service::CleanupLoop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(config_.cleanup_interval_minutes * 60));
  auto next_cleanup = Clock::now() + interval;
  std::unique_lock<std::mutex> lock(stop_mutex_);
  for (;;) {
    stop_cv_.wait_until(lock, next_cleanup, [&] { return stopping_ || sweep_requested_; });
    if (stopping_) break;
    if (sweep_requested_) {
      // Off the request path: removing a large environment took up to ~1.5 s (bench/packages.py).
      sweep_requested_ = false;
      lock.unlock();
      packages_.SweepUnused();
      lock.lock();
      continue;
    }
    if (Clock::now() < next_cleanup) continue;
    next_cleanup = Clock::now() + interval;
    lock.unlock();
    try {
      json out = RunCleanup(files_, *store_, packages_, &metrics_);
      Log({{"level", "info"}, {"event", "cleanup"}, {"deleted_files", out["deleted_files"]}});
    } catch (const std::exception& e) {
      Log({{"level", "error"}, {"event", "cleanup"}, {"message", e.what()}});
    }
    lock.lock();
  }
}

bool Service::Run(std::string& error) {
  struct Ended {
    std::atomic<bool>& flag;
    ~Ended() { flag = true; }
  } ended{run_ended_};
  serving_http_ = true;
  if (!Start(error)) return false;
  httplib::Server& s = *server_;
  // Every queued execution holds an HTTP thread; the extra threads keep status, uploads and
  // health answering while the pool is full.
  size_t threads = config_.workers + config_.queue + 16;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Each route bounds its own body (uploads, JSON routes); /mcp's largest is an upload_file in
  // base64.
  s.set_payload_max_length(McpMaxMessageBytes(config_.files.max_upload_bytes));
  s.set_read_timeout(30);
  s.set_write_timeout(30);
  s.set_keep_alive_max_count(100);
  Routes();
  PackageRoutes();
  ToolRoutes();
  McpRoutes();
  if (!s.bind_to_port(config_.listen_host, config_.listen_port)) {
    error = "cannot listen on " + config_.listen_host + ":" + std::to_string(config_.listen_port);
    return false;
  }
  RaiseListenBacklog(config_.listen_port);
  Log({{"level", "info"},
       {"event", "start"},
       {"listen", config_.listen_host + ":" + std::to_string(config_.listen_port)},
       {"data_dir", config_.data_dir},
       {"workers", config_.workers},
       {"auth", !config_.api_keys.empty()}});
  s.listen_after_bind();
  return true;
}

bool Service::Start(std::string& error) {
  auto init = files_.Init();
  if (!init.ok()) {
    error = init.failure.message;
    return false;
  }
  if (auto packages = packages_.Init(); !packages) {
    // Executions still run (without installed packages); installs report this error.
    Log({{"level", "error"}, {"event", "packages"}, {"message", packages.error()}});
  }
  cleanup_thread_ = std::thread([this] { CleanupLoop(); });
  zygote_.Start();
  return true;
}

void Service::Stop() {
  Log({{"level", "info"},
       {"event", "stopping"},
       {"grace_seconds", config_.shutdown_grace_seconds}});
  // httplib's stop() does nothing before the listener runs: a signal during start-up waits for it.
  for (int i = 0; serving_http_ && i < 200 && !server_->is_running() && !run_ended_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  server_->stop();
  admission_.Shutdown();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration<double>(config_.shutdown_grace_seconds);
  while (admission_.running() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  helpers_.CancelAll();
  {
    std::lock_guard<std::mutex> lock(cancel_mutex_);
    for (int fd : cancel_fds_) (void)::eventfd_write(fd, 1);
  }
  zygote_.Stop();
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

}  // namespace codecell::api
