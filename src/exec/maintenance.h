#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "files/file_manager.h"
#include "packages/installer.h"
#include "store/store.h"

namespace codecell::exec {

// The service's housekeeping, in one thread of its own: expired files every interval, the package
// environment's refresh when it is due, and old environments removed as soon as the last
// execution on them ends.
class Maintenance {
 public:
  Maintenance(files::FileManager& files, store::Store& store, packages::PackageManager& packages,
              double interval_minutes)
      : files_(files), store_(store), packages_(packages), interval_minutes_(interval_minutes) {}
  ~Maintenance() { Stop(); }

  // One cleanup now (POST /v1/cleanup, `codecell cleanup`): {"deleted_files", "venv_recreated",
  // "timestamp", "package_refresh"?}.
  static nlohmann::json RunCleanup(files::FileManager& files, store::Store& store,
                                   packages::PackageManager& packages);
  nlohmann::json RunCleanup();

  void Start();
  void Stop();
  // An execution released an environment that a newer one replaced.
  void RequestSweep();

  // After each cleanup, with the number of files deleted (metrics).
  std::function<void(size_t)> on_cleanup;

 private:
  void Loop();

  files::FileManager& files_;
  store::Store& store_;
  packages::PackageManager& packages_;
  double interval_minutes_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool sweep_requested_ = false;
};

}  // namespace codecell::exec
