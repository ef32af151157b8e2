#pragma once

#include <string>
#include <utility>
#include <vector>

namespace codecell::runner {

// src/runner/runner.py, compiled in (see cmake/embed_runner.cmake).
extern const char* const kRunnerSource;
// src/runner/analyze.py: defines analyze(file_ref, analysis_type); the analyze_data_file tool runs
// it as an execution's code, followed by one call.
extern const char* const kAnalyzeSource;
// src/runner/warm_up.py: the zygote runs it once, before forking, to import and exercise the
// preloads (runner/embedded_python.h).
extern const char* const kWarmUpSource;

// Where the runner's files are bound inside the sandbox, and the interpreter used.
inline constexpr const char* kInsideDir = "/run/codecell";
inline constexpr const char* kSystemPython = "/usr/bin/python3";
// Per-sandbox matplotlib config/cache dir inside /tmp (relative to /tmp).
inline constexpr const char* kMatplotlibDirInTmp = "/.matplotlib";

struct RunnerInput {
  std::string file_id;
  std::string filename;  // name inside /mnt/data
};

// Where the shared package environment is mounted (read-only; writable for its installer), and
// the installer's optional wheel directory.
inline constexpr const char* kPackagesInside = "/opt/codecell/packages";
inline constexpr const char* kWheelsInside = "/opt/codecell/wheels";

// files.json for the runner: {"files": [{"file_id", "filename", "path"}], "packages": prefix?,
// "display_fd": n?}. `packages_dir` non-empty: the runner adds the environment at kPackagesInside
// to sys.path. `display_fd` >= 0: the runner reports notebook output on that descriptor.
std::string FilesJson(const std::vector<RunnerInput>& inputs, const std::string& packages_dir = "",
                      int display_fd = -1);

// `python3 -I -B -u /run/codecell/runner.py`: isolated mode (no user site, no PYTHON* variables,
// no script dir on sys.path), no bytecode writes, unbuffered so that output printed before a
// timeout or a kill is not lost in a buffer.
std::vector<std::string> InterpreterArgv();

// The interpreter's whole environment, built from scratch: nothing of the caller's (the host's
// secrets live there).
std::vector<std::string> InterpreterEnv();

// Builds matplotlib's font cache once on the host under <cache_dir> (a fresh interpreter spends
// ~260 ms building it otherwise; measured) and returns (host file, path inside /tmp) pairs to seed
// into each sandbox's /tmp. Empty when matplotlib is not installed.
std::vector<std::pair<std::string, std::string>> PrepareMatplotlibCache(
    const std::string& cache_dir);

}  // namespace codecell::runner
