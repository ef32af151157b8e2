#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "exec/execution.h"
#include "packages/allowlist.h"
#include "packages/environment.h"
#include "store/store.h"

namespace codecell::packages {

// [packages] in the configuration (docs/packages.md).
struct PackageSettings {
  bool enabled = true;
  std::string index_url = "https://pypi.org/simple";  // "": no index (only wheel_dir)
  std::string extra_index_url;
  std::string wheel_dir;  // a directory of wheels (pip --find-links), mounted read-only
  double install_timeout_seconds = 300;
  uint64_t install_memory_mb = 2048;
  uint64_t install_tmp_mb = 2048;  // pip unpacks wheels in its /tmp
  double refresh_days = 7;         // 0: never
  Allowlist allowlist = Allowlist::Default();
};

// One asked-for package's fate.
struct PackageOutcome {
  std::string asked;         // as the caller wrote it
  std::string distribution;  // normalized; "" when it is not approved
  std::string version;
  std::string status;  // installed | already_installed | failed
  std::string reason;  // failed only
  double seconds = 0;  // spent installing it (shared by the packages of one pip run)
  nlohmann::json ToJson() const;
};

struct InstallReport {
  std::vector<PackageOutcome> packages;
  double seconds = 0;
  bool all_ok() const;
  bool installed_any() const;             // pip put something new in place
  nlohmann::json InstalledNames() const;  // distributions now available
  nlohmann::json Failed() const;          // [{"name", "reason"}]
  nlohmann::json ToJson() const;
};

struct PackageStats {
  uint64_t installs = 0, failures = 0, pip_runs = 0, refreshes_ok = 0, refreshes_failed = 0;
  double install_seconds = 0;
  size_t installed = 0;  // distributions in the live environment
};

// Runs the installer's execution (a cold sandbox, see ExecutionRequest::installer): the service
// goes through a helper process, the CLI runs it itself.
using InstallerRunner =
    std::function<sandbox::Result<exec::ExecutionResult>(exec::ExecutionRequest&)>;

// Approved packages on demand: resolves names against the allowlist, installs with a sandboxed
// pip into the next environment and switches to it, records what is installed, refreshes.
// Thread-safe. Installs are serialized (a mutex here, an flock across processes); concurrent
// requests for one distribution share its install.
class PackageManager {
 public:
  PackageManager(PackageSettings settings, const std::string& data_dir, store::Store& store,
                 InstallerRunner runner, uid_t installer_uid);

  // Creates the directories and removes leftovers of crashed builds.
  sandbox::Status Init();
  const PackageSettings& settings() const { return settings_; }

  // `requester`: a user id, or "cli".
  InstallReport Install(const std::vector<std::string>& names, const std::string& requester);

  // The approved entry for a module that failed to import, when its distribution is not
  // installed yet (the service then installs it and runs the code again).
  std::optional<Allowlist::Entry> InstallableForMissingModule(const std::string& module);

  // A shared lock on the live environment for one execution (nullopt: none exists).
  sandbox::Result<std::optional<EnvironmentLease>> Acquire() const { return env_.Acquire(); }
  // Marks installed packages whose import names `code` mentions as used now (kept by refresh).
  void NoteUsage(const std::string& code);

  // Rebuilds the environment from scratch with the requested packages used within refresh_days,
  // beside the live one, and switches; a failure leaves the live one. `force`: even when not due.
  nlohmann::json Refresh(bool force);
  bool RefreshDue();
  // Removes old environments no execution holds any more.
  void SweepUnused() const { env_.SweepUnused(nullptr); }

  nlohmann::json Describe();  // /v1/status "packages"
  nlohmann::json List();      // GET /v1/packages
  PackageStats stats();
  bool environment_exists() const { return !env_.CurrentName().empty(); }
  std::string CurrentName() const { return env_.CurrentName(); }
  std::vector<store::PackageRecord> Records() { return store_.ListPackages(); }

 private:
  struct PipRun {
    bool ok = false;
    std::string reason;
  };
  // Under the build lock: pip installs `requirements` into `partial`.
  PipRun RunPip(const std::string& partial, const std::vector<std::string>& requirements);
  // Installs `entries` (none installed yet) as one pip run, falling back to one run each when a
  // run of several fails; fills `outcomes` by distribution.
  // `held`: the build lock, when the caller has it already (flock locks belong to the open file:
  // locking it again from this process would wait for ourselves).
  void InstallBatch(const std::vector<Allowlist::Entry>& entries, const std::string& requester,
                    std::map<std::string, PackageOutcome>& outcomes,
                    const BuildLock* held = nullptr);
  void ReloadInstalled();  // after a switch
  // Replaces the store's records with the live environment's distributions, keeping what `known`
  // says of each (installed_at only while its version is the same, unless `reinstalled`); marks
  // `asked` as requested by `requester`. Returns distribution -> version.
  std::map<std::string, std::string> RecordLiveEnvironment(
      const std::map<std::string, store::PackageRecord>& known, const std::set<std::string>& asked,
      const std::string& requester, store::Millis now, bool reinstalled);
  std::string Constraints() const;

  PackageSettings settings_;
  PackageEnvironment env_;
  store::Store& store_;
  InstallerRunner runner_;
  uid_t installer_uid_;
  std::vector<Distribution> system_;

  std::mutex build_mutex_;  // one build at a time in this process (the flock orders processes)
  std::mutex mutex_;        // the members below
  std::map<std::string, std::string> installed_;  // distribution -> version, live environment
  std::map<std::string, std::shared_future<PackageOutcome>> in_flight_;
  // distribution -> when its install failed and why; not retried for kRetryFailedAfter.
  static constexpr std::chrono::minutes kRetryFailedAfter{5};
  std::map<std::string, std::chrono::steady_clock::time_point> last_noted_;  // NoteUsage
  std::map<std::string, std::pair<std::chrono::steady_clock::time_point, std::string>>
      recent_failures_;
  PackageStats stats_;
};

}  // namespace codecell::packages
