#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "exec/admission.h"
#include "exec/execution.h"
#include "exec/execution_runner.h"
#include "files/file_manager.h"
#include "packages/installer.h"
#include "store/store.h"

namespace codecell::exec {

// A request may ask for this many packages to be installed before its code runs.
inline constexpr size_t kMaxInstallPackages = 50;
inline std::string InstallPackagesRule() {
  return "install_packages must be a list of at most " + std::to_string(kMaxInstallPackages) +
         " package names";
}

// One execution as a door asks for it (HTTP, a tool call, MCP), already parsed from its wire
// format; ExecutionService::Run checks its values.
struct ExecutionSpec {
  std::string code;
  std::optional<double> timeout_seconds;
  std::optional<uint64_t> memory_mb;
  std::vector<std::string> install_packages;
  // The user's files to copy into /mnt/data; nullopt: all of them.
  std::optional<std::vector<std::string>> file_ids;
};

// Where a live view of an execution plugs in (streaming): what is kept of stdout and stderr, as it
// comes. Called from the execution's thread.
struct ExecutionObserver {
  std::function<void(std::string_view)> on_stdout, on_stderr;
};

// What an execution produced once its files are stored: typed until an API renders it.
struct ExecutionOutcome {
  // As the sandbox reported it; generated_files are those it wrote (their host paths are gone),
  // outputs name stored file ids.
  ExecutionResult result;
  std::vector<store::FileRecord> stored;      // generated files now in the user's storage
  std::vector<SkippedGeneratedFile> skipped;  // not stored, with why
  std::vector<store::FileRecord> evicted;     // removed to make room for `stored`
  packages::InstallReport installs;
  bool rerun_after_install = false;  // a missing approved package was installed, then rerun
  size_t inputs = 0;
};

// What executions need of the package environment (packages::PackageManager in the service; a
// fake in tests).
class ExecutionPackages {
 public:
  virtual ~ExecutionPackages() = default;
  virtual packages::InstallReport Install(const std::vector<std::string>& names,
                                          const std::string& user) = 0;
  // The import name to install for a module that failed to import: approved and not installed
  // yet. nullopt otherwise.
  virtual std::optional<std::string> InstallableForMissingModule(const std::string& module) = 0;
  virtual bool Approved(const std::string& module) = 0;
  virtual void NoteUsage(const std::string& code) = 0;
  // The live environment held for one execution: its host directory, "" when there is none. It
  // stays in place until the returned object is destroyed.
  struct Hold {
    virtual ~Hold() = default;
    std::string dir;
  };
  virtual sandbox::Result<std::unique_ptr<Hold>> HoldEnvironment() = 0;
};

// ExecutionPackages over the service's PackageManager. `on_superseded`: the last execution on an
// environment that a newer one replaced has ended (the cleanup component removes it).
class ManagedPackages : public ExecutionPackages {
 public:
  ManagedPackages(packages::PackageManager& manager, std::function<void()> on_superseded)
      : manager_(manager), on_superseded_(std::move(on_superseded)) {}
  packages::InstallReport Install(const std::vector<std::string>& names,
                                  const std::string& user) override;
  std::optional<std::string> InstallableForMissingModule(const std::string& module) override;
  bool Approved(const std::string& module) override;
  void NoteUsage(const std::string& code) override;
  sandbox::Result<std::unique_ptr<Hold>> HoldEnvironment() override;

 private:
  packages::PackageManager& manager_;
  std::function<void()> on_superseded_;
};

struct ExecutionServiceSettings {
  Limits defaults;     // each execution's limits unless it asks for less (or more, within bounds)
  LimitBounds bounds;  // what a request may raise them to
  size_t workers = 1, queue = 32, per_user = 2;
  std::string scratch_dir;  // where generated files wait to be stored (same filesystem as files)
};

// Every door's way to run code: validation of the values, admission, package installs and the
// ImportError retry, the run (warm or cold, see SandboxRunner), storing generated files, the
// history record and the log line. Knows no HTTP. Thread-safe.
class ExecutionService {
 public:
  ExecutionService(ExecutionServiceSettings settings, ExecutionRunner& runner,
                   files::FileManager& files, ExecutionPackages& packages, store::Store& store);

  // Runs `spec` for `user` to the end. An Error when the request is refused (bad input, not
  // found, busy, shutting down) or codecell could not run it (storage full, internal); whatever
  // the code itself did is an outcome.
  Expected<ExecutionOutcome> Run(const std::string& user, const ExecutionSpec& spec,
                                 const ExecutionObserver* observer = nullptr);

  // Refuses new executions and wakes the queued ones (they are refused).
  void Shutdown() { admission_.Shutdown(); }
  // Stops the running ones now (their results say `killed`).
  void CancelRunning() { runner_.CancelAll(); }
  size_t running() const { return admission_.running(); }
  size_t queued() const { return admission_.queued(); }
  const ExecutionServiceSettings& settings() const { return settings_; }

  // Called after each execution, with its history record (metrics).
  std::function<void(const store::ExecutionRecord&)> on_finished;

 private:
  // The request the runner gets: limits, inputs; or why the spec is refused.
  Expected<ExecutionRequest> Prepare(const std::string& user, const ExecutionSpec& spec,
                                     size_t& inputs);
  std::optional<Error> Admit(const std::string& user);
  // One run with the package environment held; the second run after an install reuses it.
  Result<ExecutionResult> RunOnce(ExecutionRequest& request);
  // After an ImportError for an approved package: installs it; true when the code should rerun.
  bool InstallMissing(const ExecutionResult& result, const std::string& user,
                      packages::InstallReport& installs);
  void StoreGeneratedFiles(const std::string& user, ExecutionOutcome& outcome);
  Error Failed(const std::string& user, store::ExecutionRecord& record,
               const sandbox::Result<ExecutionResult>& failure);
  void Record(const store::ExecutionRecord& record);

  ExecutionServiceSettings settings_;
  ExecutionRunner& runner_;
  files::FileManager& files_;
  ExecutionPackages& packages_;
  store::Store& store_;
  Admission admission_;
};

}  // namespace codecell::exec
