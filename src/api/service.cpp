#include "api/service.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>
#include <thread>

#include "api/routes.h"
#include "base/log.h"

namespace codecell::api {
namespace {

using nlohmann::json;

constexpr const char* kVersion = CODECELL_VERSION;

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

}  // namespace

Service::Service(ServiceConfig config, std::unique_ptr<store::Store> store, std::string self_exe,
                 exec::ExecutionEnvironment environment)
    : config_(std::move(config)),
      store_(std::move(store)),
      files_(*store_, config_.data_dir, config_.files),
      helpers_(self_exe),
      zygote_(self_exe, config_.data_dir, config_.warm),
      environment_(std::move(environment)),
      runner_(environment_, zygote_, helpers_),
      packages_(
          config_.packages, config_.data_dir, *store_,
          // pip's sandbox, through a helper process like every cold execution.
          [this](exec::ExecutionRequest& r) {
            return helpers_.Run({r, config_.data_dir, environment_.installer_uid});
          },
          environment_.installer_uid),
      maintenance_(files_, *store_, packages_, config_.cleanup_interval_minutes),
      managed_packages_(packages_, [this] { maintenance_.RequestSweep(); }),
      executions_(ExecutionSettings(), runner_, files_, managed_packages_, *store_),
      tools_(executions_, files_, metrics_, ToolLimitsNow()),
      mcp_(tools_, kVersion),
      server_(std::make_unique<httplib::Server>()) {
  executions_.on_finished = [this](const store::ExecutionRecord& r) {
    const double seconds =
        r.status == "failed" ? (r.finished_at - r.started_at) / 1000.0 : r.execution_time;
    metrics_.CountExecution(r.status, seconds);
  };
  maintenance_.on_cleanup = [this](size_t deleted) { metrics_.CountCleanup(deleted); };
}

Service::~Service() { maintenance_.Stop(); }

exec::ExecutionServiceSettings Service::ExecutionSettings() const {
  exec::ExecutionServiceSettings s;
  s.defaults = config_.limits;
  s.bounds = config_.bounds;
  s.workers = config_.workers;
  s.queue = config_.queue;
  s.per_user = config_.per_user;
  s.scratch_dir = files_.temp_dir();
  return s;
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
  status["executions"] = {{"running", executions_.running()},
                          {"queued", executions_.queued()},
                          {"queue_limit", config_.queue},
                          {"per_user_limit", config_.per_user}};
  return status;
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
  // Without it every request after the first on a keep-alive connection waited ~40 ms: Nagle's
  // algorithm holding the answer's last segment against the client's delayed ACK (measured: a
  // status request took 43 ms reused, 1 ms fresh).
  s.set_tcp_nodelay(true);
  parts_.reset(new ServiceParts{config_, *store_, files_, packages_, executions_, maintenance_,
                                tools_, mcp_, mcp_sessions_, metrics_,
                                [this] { return Status(); }});
  AddServerHooks(s, *parts_);
  AddStatusRoutes(s, *parts_);
  AddFileRoutes(s, *parts_);
  AddExecutionRoutes(s, *parts_);
  AddPackageRoutes(s, *parts_);
  AddMcpRoutes(s, *parts_);
  if (!s.bind_to_port(config_.listen_host, config_.listen_port)) {
    error = "cannot listen on " + config_.listen_host + ":" + std::to_string(config_.listen_port);
    return false;
  }
  RaiseListenBacklog(config_.listen_port);
  LogJson({{"level", "info"},
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
    LogJson({{"level", "error"}, {"event", "packages"}, {"message", packages.error()}});
  }
  maintenance_.Start();
  zygote_.Start();
  return true;
}

void Service::Stop() {
  LogJson({{"level", "info"},
           {"event", "stopping"},
           {"grace_seconds", config_.shutdown_grace_seconds}});
  // httplib's stop() does nothing before the listener runs: a signal during start-up waits for it.
  for (int i = 0; serving_http_ && i < 200 && !server_->is_running() && !run_ended_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  server_->stop();
  executions_.Shutdown();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration<double>(config_.shutdown_grace_seconds);
  while (executions_.running() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  executions_.CancelRunning();
  zygote_.Stop();
  maintenance_.Stop();
}

}  // namespace codecell::api
