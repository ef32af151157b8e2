#include "runner/runner_files.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace codecell::runner {

std::string FilesJson(const std::vector<RunnerInput>& inputs, const std::string& packages_dir,
                      int display_fd) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& in : inputs) {
    files.push_back({{"file_id", in.file_id},
                     {"filename", in.filename},
                     {"path", std::string("/mnt/data/") + in.filename}});
  }
  nlohmann::json out{{"files", files}};
  if (!packages_dir.empty()) out["packages"] = kPackagesInside;
  if (display_fd >= 0) out["display_fd"] = display_fd;
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> InterpreterArgv() {
  return {kSystemPython, "-I", "-B", "-u", std::string(kInsideDir) + "/runner.py"};
}

std::vector<std::string> InterpreterEnv() {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "USER=sandbox",
          "LOGNAME=sandbox", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "MPLBACKEND=Agg",
          std::string("MPLCONFIGDIR=/tmp") + kMatplotlibDirInTmp,
          // BLAS and OpenMP pools would count against the process limit and hang after fork.
          "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"};
}

std::vector<std::pair<std::string, std::string>> PrepareMatplotlibCache(
    const std::string& cache_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto list = [&] {
    std::vector<std::pair<std::string, std::string>> seeds;
    for (const auto& e : fs::directory_iterator(cache_dir, ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind("fontlist-", 0) == 0 && e.is_regular_file()) {
        seeds.emplace_back(e.path().string(), std::string(kMatplotlibDirInTmp) + "/" + name);
      }
    }
    return seeds;
  };
  auto seeds = list();
  if (!seeds.empty()) return seeds;
  // Built beside the final place and renamed into it, so that a concurrent codecell never seeds a
  // half-written cache.
  std::string building = cache_dir + ".building-" + std::to_string(::getpid());
  fs::create_directories(building, ec);
  std::string config = "MPLCONFIGDIR=" + building;
  // Only the system's own code runs here: -I keeps the cwd, user site and PYTHON* out.
  const char* argv[] = {kSystemPython, "-I", "-c",
                        "import matplotlib; matplotlib.use('Agg'); import matplotlib.font_manager",
                        nullptr};
  const char* envp[] = {"PATH=/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8", config.c_str(),
                        nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  pid_t pid = -1;
  if (posix_spawn(&pid, kSystemPython, &actions, nullptr, const_cast<char* const*>(argv),
                  const_cast<char* const*>(envp)) == 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  posix_spawn_file_actions_destroy(&actions);
  // rename() is atomic: another codecell that finished first keeps its cache (ours then fails to
  // replace a non-empty directory and is dropped); nobody ever sees a half-written one.
  fs::rename(building, cache_dir, ec);
  if (ec) fs::remove_all(building, ec);
  return list();
}

}  // namespace codecell::runner
