#include "exec/execution_service.h"

#include <filesystem>
#include <map>

#include "base/log.h"
#include "base/user_id.h"
#include "exec/ids.h"
#include "exec/notebook_output.h"

namespace codecell::exec {

namespace {

constexpr int kBusyRetryAfterSeconds = 5;

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// The environment a hold names is removed once nothing holds it: the last execution on one that
// a newer environment replaced asks for that (off the request path: removing a large environment
// took up to ~1.5 s, bench/packages.py).
struct ManagedHold : ExecutionPackages::Hold {
  std::optional<packages::EnvironmentLease> lease;
  packages::PackageManager* manager = nullptr;
  std::function<void()>* on_superseded = nullptr;
  ~ManagedHold() override {
    if (!lease) return;
    const bool superseded = lease->name() != manager->CurrentName();
    lease.reset();
    if (superseded && *on_superseded) (*on_superseded)();
  }
};

}  // namespace

packages::InstallReport ManagedPackages::Install(const std::vector<std::string>& names,
                                                 const std::string& user) {
  return manager_.Install(names, user);
}

std::optional<std::string> ManagedPackages::InstallableForMissingModule(const std::string& module) {
  auto entry = manager_.InstallableForMissingModule(module);
  if (!entry) return std::nullopt;
  return entry->import_name;
}

bool ManagedPackages::Approved(const std::string& module) {
  return manager_.settings().allowlist.FindImport(module).has_value();
}

void ManagedPackages::NoteUsage(const std::string& code) { manager_.NoteUsage(code); }

sandbox::Result<std::unique_ptr<ExecutionPackages::Hold>> ManagedPackages::HoldEnvironment() {
  using R = sandbox::Result<std::unique_ptr<Hold>>;
  auto lease = manager_.Acquire();
  if (!lease) return R::Fail(lease.error(), lease.kind());
  auto hold = std::make_unique<ManagedHold>();
  if (lease.value()) {
    hold->dir = lease.value()->path();
    hold->lease = std::move(lease.value());
    hold->manager = &manager_;
    hold->on_superseded = &on_superseded_;
  }
  return R(std::unique_ptr<Hold>(std::move(hold)));
}

ExecutionService::ExecutionService(ExecutionServiceSettings settings, ExecutionRunner& runner,
                                   files::FileManager& files, ExecutionPackages& packages,
                                   store::Store& store)
    : settings_(std::move(settings)),
      runner_(runner),
      files_(files),
      packages_(packages),
      store_(store),
      admission_(settings_.workers, settings_.queue, settings_.per_user) {}

Expected<ExecutionRequest> ExecutionService::Prepare(const std::string& user,
                                                     const ExecutionSpec& spec, size_t& inputs) {
  if (!ValidUserId(user)) return Error::BadInput(kUserIdRule);
  ExecutionRequest request;
  request.code = spec.code;
  request.limits = settings_.defaults;
  if (spec.timeout_seconds) request.limits.timeout_seconds = *spec.timeout_seconds;
  if (spec.memory_mb) request.limits.memory_mb = *spec.memory_mb;
  if (auto message = ValidateLimits(request.limits, settings_.bounds); !message.empty()) {
    return Error::BadInput(message);
  }
  if (spec.install_packages.size() > kMaxInstallPackages) {
    return Error::BadInput(InstallPackagesRule());
  }
  std::vector<store::FileRecord> records;
  if (spec.file_ids) {
    for (const auto& id : *spec.file_ids) {
      auto record = files_.Get(user, id);
      if (!record) return Error::NotFound("no such file: " + id);
      records.push_back(*record);
    }
  } else {
    records = files_.List(user);
  }
  for (const auto& r : records) {
    request.inputs.push_back({r.file_id, r.filename, files_.PathOf(r)});
  }
  inputs = records.size();
  return request;
}

std::optional<Error> ExecutionService::Admit(const std::string& user) {
  switch (admission_.Enter(user)) {
    case Admission::Verdict::kRun:
      return std::nullopt;
    case Admission::Verdict::kQueueFull:
      return Error::Busy("all execution workers and the queue are busy", kBusyRetryAfterSeconds);
    case Admission::Verdict::kUserLimit:
      return Error::Busy("this user already has " + std::to_string(settings_.per_user) +
                             " executions running or queued",
                         kBusyRetryAfterSeconds);
    case Admission::Verdict::kShuttingDown:
      return Error{ErrorKind::kUnavailable, "the service is shutting down"};
  }
  return Error{ErrorKind::kInternal, "unknown admission verdict"};
}

Result<ExecutionResult> ExecutionService::RunOnce(ExecutionRequest& request) {
  auto hold = packages_.HoldEnvironment();
  if (!hold) return Result<ExecutionResult>::Fail(hold.error(), hold.kind());
  request.packages_dir = hold.value()->dir;
  request.generated_dir = settings_.scratch_dir + "/" + NewRandomId("generated-");
  return runner_.Run(request);
}

bool ExecutionService::InstallMissing(const ExecutionResult& result, const std::string& user,
                                      packages::InstallReport& installs) {
  const std::string missing = packages::MissingModule(result.error);
  if (missing.empty()) return false;
  if (auto import_name = packages_.InstallableForMissingModule(missing)) {
    packages::InstallReport more = packages_.Install({*import_name}, user);
    installs.packages.insert(installs.packages.end(), more.packages.begin(), more.packages.end());
    installs.seconds += more.seconds;
    return more.installed_any();
  }
  if (!packages_.Approved(missing)) {
    installs.packages.push_back(
        {missing, "", "", "failed", packages::NotApprovedReason(missing), 0});
  }
  return false;
}

Expected<ExecutionOutcome> ExecutionService::Run(const std::string& user, const ExecutionSpec& spec,
                                                 const ExecutionObserver* observer) {
  ExecutionOutcome outcome;
  auto prepared = Prepare(user, spec, outcome.inputs);
  if (!prepared) return prepared.error();
  ExecutionRequest& request = prepared.value();
  if (observer) {
    request.on_stdout = observer->on_stdout;
    request.on_stderr = observer->on_stderr;
  }
  if (auto refused = Admit(user)) return *refused;
  struct Leave {
    Admission& admission;
    const std::string& user;
    ~Leave() { admission.Leave(user); }
  } leave{admission_, user};

  // Packages first: asked for, or (below) missing from a failed import.
  if (!spec.install_packages.empty()) {
    outcome.installs = packages_.Install(spec.install_packages, user);
  }
  packages_.NoteUsage(request.code);
  store::ExecutionRecord record;
  record.user_id = user;
  record.started_at = files::NowMillis();
  auto ran = RunOnce(request);
  // As the old bot did: an approved package that is missing is installed, and the code runs once
  // more (the first run's files are dropped).
  if (ran && ran->status == "error" && InstallMissing(ran.value(), user, outcome.installs)) {
    RemoveTree(request.generated_dir);
    ran = RunOnce(request);
    outcome.rerun_after_install = true;
  }
  record.finished_at = files::NowMillis();
  if (!ran) {
    RemoveTree(request.generated_dir);
    return Failed(user, record, ran);
  }
  outcome.result = std::move(ran.value());
  StoreGeneratedFiles(user, outcome);
  RemoveTree(request.generated_dir);

  const ExecutionResult& result = outcome.result;
  record.execution_id = result.execution_id;
  record.status = result.status;
  record.return_code = result.return_code;
  record.execution_time = result.execution_time;
  record.cpu_time = result.cpu_time;
  record.peak_memory_bytes = result.peak_memory_bytes;
  record.generated_files = outcome.stored.size();
  Record(record);
  LogJson({{"level", "info"},
           {"event", "execution"},
           {"execution_id", record.execution_id},
           {"user_id", user},
           {"status", record.status},
           {"return_code", record.return_code},
           {"execution_time", record.execution_time},
           {"inputs", outcome.inputs},
           {"generated_files", outcome.stored.size()}});
  return outcome;
}

void ExecutionService::StoreGeneratedFiles(const std::string& user, ExecutionOutcome& outcome) {
  ExecutionResult& result = outcome.result;
  outcome.skipped = result.skipped_files;
  std::map<std::string, std::string> stored_ids;  // the execution's file_id -> the store's
  files::FileManager::GeneratedBatch batch(files_, user);
  for (const auto& g : result.generated_files) {
    auto adopted = batch.Adopt(g.host_path, g.filename);
    if (adopted.ok()) {
      stored_ids[g.file_id] = adopted.value->file_id;
      outcome.stored.push_back(*adopted.value);
    } else {
      outcome.skipped.push_back({g.filename, adopted.failure.message, g.size});
    }
  }
  outcome.evicted = batch.evicted();
  RelinkOutputFiles(result.outputs, stored_ids);
}

Error ExecutionService::Failed(const std::string& user, store::ExecutionRecord& record,
                               const sandbox::Result<ExecutionResult>& failure) {
  record.execution_id = NewRandomId("exec_");
  record.status = "failed";
  Record(record);
  LogJson({{"level", "error"},
           {"event", "execution"},
           {"execution_id", record.execution_id},
           {"user_id", user},
           {"status", "failed"},
           {"message", failure.error()}});
  // The code did not run. The reason names host paths: it stays in the log.
  if (failure.kind() == sandbox::FailureKind::kStorageFull) {
    return {ErrorKind::kStorageFull,
            "the service's storage is full: the execution could not be prepared (nothing ran). "
            "Delete files, or ask the operator to free space",
            failure.error()};
  }
  return {ErrorKind::kInternal,
          "the execution could not be run (an internal error; the service's log has the details "
          "under " +
              record.execution_id + ")",
          failure.error()};
}

void ExecutionService::Record(const store::ExecutionRecord& record) {
  try {
    store_.InsertExecution(record);
  } catch (const store::StoreError& e) {
    // The answer matters more than the history row (read only by the operator's queries): a full
    // disk must not turn the result of code that ran into an error.
    LogJson({{"level", "error"},
             {"event", "store_error"},
             {"execution_id", record.execution_id},
             {"message", std::string("the execution was not recorded: ") + e.what()}});
  }
  if (on_finished) on_finished(record);
}

}  // namespace codecell::exec
