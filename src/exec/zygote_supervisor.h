#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace codecell::exec {

struct WarmSettings {
  bool enabled = true;
  size_t pool_size = 4;
  std::vector<std::string> preload;  // empty with `preload_given` false: the zygote's default
  bool preload_given = false;
};

// Keeps one `codecell zygote` running for the service: starts it with a from-scratch environment,
// waits for its ready line, and restarts it (1 s, 2 s, ... up to 30 s apart) whenever it dies.
// While it is starting or gone, socket() is empty and executions run cold.
class ZygoteSupervisor {
 public:
  ZygoteSupervisor(std::string self_exe, std::string data_dir, WarmSettings settings);
  ~ZygoteSupervisor();

  void Start();
  void Stop();

  // The socket to use for the next execution, or "" while there is no ready zygote.
  std::string socket() const;
  // For /v1/status: {"mode": "warm"|"cold"|"disabled", "reason", "pid", "restarts", ...}.
  nlohmann::json Describe() const;

 private:
  void Loop();

  const std::string self_exe_, data_dir_, socket_path_;
  const WarmSettings settings_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  bool stopping_ = false;
  bool ready_ = false;
  pid_t pid_ = -1;
  unsigned restarts_ = 0;
  std::string reason_ = "the zygote is starting";
  nlohmann::json ready_info_;
};

}  // namespace codecell::exec
