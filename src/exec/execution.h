#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exec/notebook_output.h"
#include "exec/zygote_client.h"
#include "sandbox/cgroups.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/slots.h"
#include "sandbox/sys_result.h"

namespace codecell::exec {

using sandbox::Result;

// Per-execution limits (SPEC "Limits"); a request may lower them, and raise them only up to the
// configured maxima (see LimitBounds).
struct Limits {
  double timeout_seconds = 60;
  uint64_t memory_mb = 1024;
  uint64_t max_processes = 64;
  // CPU bandwidth in cores (cgroup cpu.max / CFS quota); 0 = unlimited. One core by default, so
  // that with one worker per core a busy execution cannot slow the others down.
  double cpus = 1;
  uint64_t tmp_mb = 256;
  uint64_t workspace_mb = 512;
  size_t max_output_chars = 100000;
  size_t max_generated_files = 50;
  uint64_t max_generated_file_bytes = 50ull << 20;
  // What the host keeps of the display pipe (notebook output, exec/notebook_output.h): the
  // runner cuts its texts far below this, so only a flood from the code itself reaches it.
  size_t max_display_bytes = 4u << 20;
  size_t max_display_items = 500;
};

struct LimitBounds {
  double max_timeout_seconds = 300;
  uint64_t max_memory_mb = 4096;
  uint64_t max_processes = 1024;
  double max_cpus = 64;
  uint64_t max_tmp_mb = 4096;
  uint64_t max_workspace_mb = 4096;
};

// An error message naming the offending limit and its range, or "" when all are in range.
std::string ValidateLimits(const Limits& limits, const LimitBounds& bounds);

struct InputFile {
  std::string file_id;
  std::string filename;   // display name; placed in /mnt/data under it (or "name (2).ext")
  std::string host_path;  // copied, never modified
};

struct ExecutionRequest {
  std::string code;
  std::vector<InputFile> inputs;
  Limits limits;
  std::string generated_dir;  // generated files are copied here (relative paths kept)
  // When readable, the execution is stopped: status `killed` (used on service shutdown).
  int cancel_fd = -1;
  // Live pass-through of what is kept of stdout / stderr (optional).
  std::function<void(std::string_view)> on_stdout, on_stderr;
  // The shared package environment (a host directory, see packages/), mounted read-only at
  // runner::kPackagesInside; the runner puts its site directory on sys.path. Empty: none.
  std::string packages_dir;
  // The package installer's run: `packages_dir` is mounted writable and left off the runner's
  // sys.path (pip sets its own), the sandbox shares the host's network (pip reaches its index;
  // inet sockets allowed), runs as env.installer_uid instead of a slot uid, and `wheel_dir`
  // (optional) is mounted read-only at runner::kWheelsInside. Always cold.
  bool installer = false;
  std::string wheel_dir;
};

struct GeneratedFile {
  std::string file_id, filename, file_type, mime_type, host_path;
  uint64_t size = 0;
};

struct SkippedGeneratedFile {
  std::string filename, reason;
  uint64_t size = 0;
};

struct ExecutionResult {
  std::string execution_id;
  std::string status;  // ok | error | timeout | oom | killed
  std::string output, error;
  int return_code = 0;
  double execution_time = 0;
  bool output_truncated = false, error_truncated = false;
  std::vector<GeneratedFile> generated_files;
  std::vector<SkippedGeneratedFile> skipped_files;
  // Notebook output: streams, values, figures and the error, in order (SPEC v2).
  std::vector<OutputItem> outputs;
  bool outputs_truncated = false;
  std::optional<double> cpu_time;
  std::optional<uint64_t> peak_memory_bytes;
  // "warm": a pre-forked child of the zygote ran it; "cold": a fresh interpreter.
  std::string interpreter = "cold";

  bool success() const { return status == "ok" && return_code == 0; }
  nlohmann::json ToJson() const;
};

// What every execution of this process shares, prepared once.
struct ExecutionEnvironment {
  std::string data_dir;
  std::string work_root;  // <data_dir>/work
  sandbox::CgroupLayout cgroups;
  sandbox::SeccompProgram seccomp;
  sandbox::SeccompProgram installer_seccomp;  // the same, with inet sockets allowed
  sandbox::SlotConfig slots;
  // The package installer's own unprivileged uid (and gid): below the slots' range, used by one
  // install at a time (installs are serialized per data dir).
  uid_t installer_uid = 899999;
  std::vector<std::pair<std::string, std::string>> tmp_seed_files;
  // Warm interpreters: the zygote's socket (empty: always cold). When the zygote cannot be reached
  // the execution runs cold, unless require_warm, which makes it fail instead (tests use that to
  // prove which path they exercised).
  std::string zygote_socket;
  bool require_warm = false;
  // False in the service: its threads must never clone a sandbox themselves, so every execution
  // it runs in-process comes with a warm child (cold ones go through `codecell __execute`).
  bool allow_cold = true;

  // Needs root. Enters a private mount namespace (call before starting threads), detects cgroups,
  // compiles the seccomp filter, builds matplotlib's font cache, sweeps leftovers of dead runs.
  static Result<ExecutionEnvironment> Prepare(const std::string& data_dir);
};

// Runs one execution to the end, on `warm` when given, else on a child of env.zygote_socket, else
// (allow_cold) on a fresh interpreter. Fails (no result) only when codecell itself could not run
// it; whatever the user's code does is a result. `code_started` (optional) tells a failure before
// the code could run (false: safe to retry) from one after.
Result<ExecutionResult> RunExecution(const ExecutionEnvironment& env,
                                     const ExecutionRequest& request,
                                     std::optional<WarmChild> warm = std::nullopt,
                                     bool* code_started = nullptr);

}  // namespace codecell::exec
