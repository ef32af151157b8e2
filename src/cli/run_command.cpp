#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "exec/execution.h"
#include "exec/ids.h"
#include "packages/environment.h"
#include "sandbox/file_io.h"

namespace codecell::cli {
namespace {

struct RunOptions {
  std::string code;
  std::string code_file;
  std::vector<std::string> files;
  exec::Limits limits;
  std::string output_dir;
  std::string data_dir;
  std::string zygote_socket;
  bool json = false;
};

int Fail(const RunOptions& o, const std::string& code, const std::string& message) {
  if (o.json) {
    nlohmann::json e = {{"error", {{"code", code}, {"message", message}}}};
    std::cout << e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  }
  std::cerr << "codecell: " << message << std::endl;
  return code == "bad_request" ? 2 : 1;
}

std::string HumanBytes(uint64_t bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buffer;
}

int Run(RunOptions& o) {
  if (o.code.empty() == o.code_file.empty()) {
    return Fail(o, "bad_request", "give the code either with -c CODE or as a FILE (not both)");
  }
  if (o.code_file == "-") {
    std::ostringstream text;
    text << std::cin.rdbuf();
    o.code = text.str();
  } else if (!o.code_file.empty()) {
    std::ifstream in(o.code_file, std::ios::binary);
    if (!in) return Fail(o, "bad_request", "cannot read " + o.code_file);
    std::ostringstream text;
    text << in.rdbuf();
    o.code = text.str();
  }
  if (auto msg = exec::ValidateLimits(o.limits, exec::LimitBounds{}); !msg.empty()) {
    return Fail(o, "bad_request", msg);
  }
  exec::ExecutionRequest request;
  request.code = o.code;
  request.limits = o.limits;
  for (const auto& path : o.files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return Fail(o, "bad_request", "--file " + path + ": not a readable regular file");
    }
    request.inputs.push_back(
        {exec::NewRandomId("file_"), std::filesystem::path(path).filename().string(), path});
  }
  if (!o.json) {
    // A closed stdout of our own only means nothing more is shown; the run goes on.
    request.on_stdout = [](std::string_view b) { (void)sandbox::WriteAll(1, b); };
    request.on_stderr = [](std::string_view b) { (void)sandbox::WriteAll(2, b); };
  }
  auto env = exec::ExecutionEnvironment::Prepare(o.data_dir);
  if (!env) return Fail(o, "internal", env.error());
  env->zygote_socket = o.zygote_socket;
  // Tests that must exercise the warm path set this, so that a silent fall back to a cold
  // interpreter cannot make them pass.
  const char* require_warm = std::getenv("CODECELL_REQUIRE_WARM");
  env->require_warm = require_warm != nullptr && std::string(require_warm) == "1";
  if (env->require_warm && env->zygote_socket.empty()) {
    return Fail(o, "internal",
                "CODECELL_REQUIRE_WARM=1 but no zygote was named (--zygote or "
                "CODECELL_ZYGOTE_SOCKET)");
  }
  if (!env->cgroups.missing.empty() && !o.json) {
    std::cerr << "codecell: warning: " << env->cgroups.Describe() << "\n";
  }
  // Packages installed through codecell (`codecell packages install`, or the service) in this
  // data dir: held for the run, so that a refresh cannot remove them under it.
  auto packages = packages::PackageEnvironment(o.data_dir + "/packages").Acquire();
  if (!packages) return Fail(o, "internal", packages.error());
  if (packages.value()) request.packages_dir = packages.value()->path();
  // Generated files land in a fresh directory; it is removed again if nothing was generated.
  std::string staging = o.output_dir.empty() ? "codecell-output" : o.output_dir;
  auto result = exec::RunExecution(env.value(), [&] {
    request.generated_dir = staging + "/.incoming-" + exec::NewRandomId("");
    return request;
  }());
  if (!result) {
    std::error_code ec;
    std::filesystem::remove_all(request.generated_dir, ec);
    return Fail(o, "internal", result.error());
  }
  // Move the files to <output-dir>/<execution_id>/.
  std::error_code ec;
  std::string final_dir = staging + "/" + result->execution_id;
  if (!result->generated_files.empty()) {
    std::filesystem::rename(request.generated_dir, final_dir, ec);
    if (ec) return Fail(o, "internal", "cannot move generated files: " + ec.message());
    for (auto& f : result->generated_files) {
      f.host_path = std::filesystem::absolute(final_dir + "/" + f.filename).string();
    }
  } else {
    std::filesystem::remove_all(request.generated_dir, ec);
    if (o.output_dir.empty()) std::filesystem::remove(staging, ec);  // only if empty
  }

  if (o.json) {
    std::cout << result->ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
    return 0;
  }
  const auto& r = result.value();
  std::ostringstream line;
  line.setf(std::ios::fixed);
  line.precision(3);
  line << "\n[codecell] " << r.status << " | return code " << r.return_code << " | "
       << r.execution_time << " s";
  if (r.cpu_time) line << " | cpu " << *r.cpu_time << " s";
  if (r.peak_memory_bytes) line << " | peak " << HumanBytes(*r.peak_memory_bytes);
  if (r.output_truncated) line << " | stdout cut at " << o.limits.max_output_chars << " chars";
  if (r.error_truncated) line << " | stderr cut at " << o.limits.max_output_chars << " chars";
  if (r.status != "ok" && r.status != "error") {
    // The sentence that ends `error` is not part of what the code printed: show it here.
    auto last = r.error.rfind('\n');
    line << " | " << (last == std::string::npos ? r.error : r.error.substr(last + 1));
  }
  if (!r.generated_files.empty()) {
    line << "\n[codecell] " << r.generated_files.size() << " file(s) saved in " << final_dir << ":";
    for (const auto& f : r.generated_files) line << " " << f.filename;
  }
  for (const auto& s : r.skipped_files) {
    line << "\n[codecell] skipped " << s.filename << ": " << s.reason;
  }
  std::cerr << line.str() << std::endl;
  return 0;
}

}  // namespace

std::string DefaultDataDir() {
  const char* env = std::getenv("CODECELL_DATA_DIR");
  return env && *env ? env : "/var/lib/codecell";
}

std::function<int()> AddRunCommand(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  options->data_dir = DefaultDataDir();
  CLI::App* run = app.add_subcommand(
      "run",
      "Run Python code once in the sandbox, no service needed. Exit code 0 when the run was "
      "carried out (whatever the code did), 1 when codecell could not run it, 2 for bad usage.");
  run->add_option("-c,--code", options->code, "the Python code to run");
  run->add_option("file", options->code_file,
                  "a file holding the Python code to run (- reads it from stdin)");
  run->add_option("--file", options->files,
                  "a file to place in /mnt/data under its name (repeatable)");
  // The help states the defaults and bounds the sandbox applies, read from where they are set.
  const exec::Limits defaults;
  const exec::LimitBounds bounds;
  auto num = [](double x) {
    std::ostringstream out;
    out << x;
    return out.str();
  };
  run->add_option("--timeout", options->limits.timeout_seconds,
                  "wall-clock limit in seconds (default " + num(defaults.timeout_seconds) +
                      ", max " + num(bounds.max_timeout_seconds) + ")");
  run->add_option("--memory-mb", options->limits.memory_mb,
                  "memory limit in MiB (default " + num(defaults.memory_mb) + ")");
  run->add_option("--processes", options->limits.max_processes,
                  "process/thread limit (default " + num(defaults.max_processes) + ")");
  run->add_option("--cpus", options->limits.cpus,
                  "CPU bandwidth in cores (default " + num(defaults.cpus) + "; 0 = unlimited)");
  run->add_option("--tmp-mb", options->limits.tmp_mb,
                  "size of /tmp in MiB (default " + num(defaults.tmp_mb) + ")");
  run->add_option(
      "--workspace-mb", options->limits.workspace_mb,
      "space for writes under /mnt/data in MiB (default " + num(defaults.workspace_mb) + ")");
  run->add_option("--output-dir", options->output_dir,
                  "where generated files are saved, in <dir>/<execution_id>/ (default "
                  "./codecell-output)");
  run->add_option("--data-dir", options->data_dir,
                  "codecell's state directory (default $CODECELL_DATA_DIR or /var/lib/codecell)");
  run->add_flag("--json", options->json, "print the execution result as one JSON object");
  if (const char* socket = std::getenv("CODECELL_ZYGOTE_SOCKET")) options->zygote_socket = socket;
  run->add_option("--zygote", options->zygote_socket,
                  "run on a warm interpreter of the zygote at this socket (`codecell zygote`; "
                  "default $CODECELL_ZYGOTE_SOCKET), falling back to a fresh one if it is gone");
  return [options] { return Run(*options); };
}

}  // namespace codecell::cli
