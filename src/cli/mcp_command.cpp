#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/config.h"
#include "api/mcp.h"
#include "api/service.h"
#include "base/user_id.h"
#include "cli/commands.h"

namespace codecell::cli {
namespace {

using json = nlohmann::json;

struct McpOptions {
  api::ConfigOverrides flags;
  std::string user;
};

constexpr size_t kMaxConcurrentRequests = 32;
constexpr const char* kCommand = "codecell mcp";

// stdio carries the protocol: the process's own fds 0 and 1 are moved aside (close-on-exec) and
// replaced by /dev/null and stderr, so that nothing else this process starts or prints (zygotes,
// helpers, a stray write) can read a client's message or corrupt the stream.
struct ProtocolFds {
  int in = -1, out = -1;
};

std::optional<ProtocolFds> TakeStdio() {
  ProtocolFds fds;
  fds.in = ::fcntl(0, F_DUPFD_CLOEXEC, 3);
  fds.out = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fds.in < 0 || fds.out < 0 || null < 0 || ::dup2(null, 0) < 0 || ::dup2(2, 1) < 0) {
    return std::nullopt;
  }
  ::close(null);
  return fds;
}

// Writes whole lines to the client, one message per line, from any thread.
class LineWriter {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}
  void Write(const json& message) {
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::lock_guard<std::mutex> lock(mutex_);
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the client went away; its requests' work ends with the process
      done += static_cast<size_t>(n);
    }
  }

 private:
  int fd_;
  std::mutex mutex_;
};

int Mcp(const McpOptions& o) {
  std::string user = o.user;
  if (user.empty()) {
    const char* env = std::getenv("CODECELL_MCP_USER");
    user = env && *env ? env : "mcp";
  }
  if (!ValidUserId(user)) {
    std::cerr << kCommand << ": --user must be 1-128 characters of A-Z a-z 0-9 _ . : -"
              << std::endl;
    return 2;
  }
  auto fds = TakeStdio();
  if (!fds) {
    std::cerr << kCommand << ": cannot set up stdio: " << std::strerror(errno) << std::endl;
    return 1;
  }
  sigset_t stop_signals = BlockStopSignals();
  int exit_code = 0;
  auto service = OpenService(o.flags, kCommand, exit_code);
  if (!service) return exit_code;
  std::string error;
  if (!service->Start(error)) {
    std::cerr << kCommand << ": " << error << std::endl;
    service->Stop();
    return 1;
  }

  std::atomic<bool> input_ended{false};
  std::thread signals([&] {
    int sig = 0;
    ::sigwait(&stop_signals, &sig);
    service->Stop();
    // A signal while the client is still connected: the reader is blocked in read(2), and the
    // executions have been stopped, so there is nothing left to finish.
    if (!input_ended) std::_Exit(0);
  });

  LineWriter writer(fds->out);
  api::McpServer server(service->mcp_backend(), CODECELL_VERSION);
  api::McpSession session{user, ""};
  std::mutex running_mutex;
  std::condition_variable running_cv;
  size_t running = 0;

  const size_t max_line = api::McpMaxMessageBytes(service->mcp_backend().MaxUploadBytes());
  FILE* in = ::fdopen(fds->in, "r");
  char* line = nullptr;
  size_t capacity = 0;
  ssize_t length;
  while (in != nullptr && (length = ::getline(&line, &capacity, in)) >= 0) {
    std::string text(line, static_cast<size_t>(length));
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    if (text.size() > max_line) {
      writer.Write(api::McpServer::ErrorResponse(
          nullptr, -32600,
          "message over " + std::to_string(max_line >> 20) +
              " MiB (an upload_file of the largest allowed file, in base64, fits)"));
      continue;
    }
    json message = json::parse(text, nullptr, false);
    if (message.is_discarded()) {
      writer.Write(api::McpServer::ErrorResponse(nullptr, -32700, "parse error: not JSON"));
      continue;
    }
    const bool is_request = message.is_object() && message.contains("id") &&
                            message.contains("method") && message["method"].is_string();
    // initialize changes the session, so it is answered before the next line is read; other
    // requests run beside each other (a ping answers while code runs).
    if (!is_request || message["method"] == "initialize") {
      if (auto response = server.Handle(message, session)) writer.Write(*response);
      continue;
    }
    {
      std::unique_lock<std::mutex> lock(running_mutex);
      running_cv.wait(lock, [&] { return running < kMaxConcurrentRequests; });
      ++running;
    }
    std::thread([&, message, session_copy = session]() mutable {
      auto notify = [&writer](const json& n) { writer.Write(n); };
      if (auto response = server.Handle(message, session_copy, notify)) writer.Write(*response);
      std::lock_guard<std::mutex> lock(running_mutex);
      --running;
      running_cv.notify_all();
    }).detach();
  }
  std::free(line);
  input_ended = true;
  {
    std::unique_lock<std::mutex> lock(running_mutex);
    running_cv.wait(lock, [&] { return running == 0; });
  }
  ::kill(::getpid(), SIGTERM);  // the signal thread stops the service
  signals.join();
  return 0;
}

}  // namespace

std::function<int()> AddMcpCommand(CLI::App& app) {
  auto o = std::make_shared<McpOptions>();
  CLI::App* mcp = app.add_subcommand(
      "mcp",
      "Serve the Model Context Protocol over stdio (newline-delimited JSON-RPC on stdin and "
      "stdout; logs on stderr) for one user: the tools execute_python_code, analyze_data_file, "
      "list_files, delete_file and upload_file, and the user's files as codecell://files/ "
      "resources. Runs executions itself (as root), with the same settings as serve; the "
      "service offers the same at /mcp (Streamable HTTP). See docs/mcp.md.");
  mcp->add_option("--user", o->user,
                  "the user whose files the session uses (default $CODECELL_MCP_USER, else mcp)");
  mcp->add_option("--config", o->flags.config_file, "TOML config file (or $CODECELL_CONFIG)");
  mcp->add_option("--data-dir", o->flags.data_dir,
                  "state: SQLite metadata, files, work dirs (default /var/lib/codecell)");
  return [o] { return Mcp(*o); };
}

}  // namespace codecell::cli
