#pragma once

#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "runner/zygote.h"

namespace codecell::exec {

struct WarmSettings {
  bool enabled = true;
  size_t pool_size = 4;                                         // per zygote
  std::vector<std::string> preload = runner::DefaultPreload();  // the "full" zygote's
};

// The modules the "base" zygote imports: the standard library pieces the runner and most short
// snippets use. Forking and ending a child of this ~20 MiB interpreter costs about 0.5 ms where a
// child of the ~140 MiB "full" one (numpy, pandas, matplotlib...) costs 10-13 ms, measured here.
std::vector<std::string> BasePreload();

// True when `code` may use one of `preload`'s packages (a whole-word mention of a top-level
// package name, of load_file, or of a dynamic import): such code goes to the "full" zygote. A
// miss only costs time: the code then imports the package itself.
bool WantsFullPreload(std::string_view code, const std::vector<std::string>& preload);

// Removes `dir`/zygote-<pid>-<name>.sock files whose service (pid) is gone: a SIGKILLed service's
// zygotes die with it (PR_SET_PDEATHSIG) without removing their sockets. Returns how many went.
size_t SweepStaleZygoteSockets(const std::string& dir);

// Keeps two `codecell zygote` processes running for the service, "base" and "full": starts each
// with a from-scratch environment, waits for its ready line, and restarts it (1 s, 2 s, ... up to
// 30 s apart) whenever it dies. Executions that find no ready zygote run cold.
class ZygoteSupervisor {
 public:
  ZygoteSupervisor(std::string self_exe, std::string data_dir, WarmSettings settings);
  ~ZygoteSupervisor();

  void Start();
  void Stop();

  // The socket of a ready zygote for `code` (its preferred one, else the other), or "".
  std::string SocketFor(std::string_view code) const;
  // For /v1/status: {"mode": "warm"|"degraded"|"cold", "reason", "pools": [...]}.
  nlohmann::json Describe() const;

 private:
  struct Zygote {
    std::string name, socket_path;
    std::vector<std::string> preload;
    std::thread thread;
    bool ready = false;
    pid_t pid = -1;
    unsigned restarts = 0;
    std::string reason = "starting";
    nlohmann::json ready_info;
  };
  void Loop(Zygote& zygote);

  const std::string self_exe_, data_dir_;
  const WarmSettings settings_;
  // Also guards each Zygote's fields (the analysis cannot name a member of a member's element).
  mutable Mutex mutex_;
  CondVar cv_;
  bool stopping_ CODECELL_GUARDED_BY(mutex_) = false;
  std::vector<std::unique_ptr<Zygote>> zygotes_;  // [0] base, [1] full
};

}  // namespace codecell::exec
