#include "packages/installer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <regex>
#include <sstream>

#include "runner/runner_files.h"

namespace codecell::packages {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

store::Millis NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Rfc3339(store::Millis ms) {
  time_t seconds = static_cast<time_t>(ms / 1000);
  tm utc{};
  ::gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

// From an environment's name (NewEnvironmentName: 20261128T051200Z-1a2b3c4d) to RFC 3339.
std::string CreatedAt(const std::string& name) {
  if (name.size() < 16 || name[8] != 'T' || name[15] != 'Z') return "";
  return name.substr(0, 4) + "-" + name.substr(4, 2) + "-" + name.substr(6, 2) + "T" +
         name.substr(9, 2) + ":" + name.substr(11, 2) + ":" + name.substr(13, 2) + "Z";
}

double Round3(double v) { return std::round(v * 1000) / 1000; }

// pip's "ERROR: ..." lines say why; without them, the end of what it printed.
std::string PipFailureReason(const exec::ExecutionResult& result) {
  const std::string& status = result.status;
  const std::string& err = result.error;
  if (status == "timeout") return "the install took too long (packages.install_timeout)";
  if (status == "oom") return "the install ran out of memory (packages.install_memory_mb)";
  std::vector<std::string> errors, tail;
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("ERROR: ", 0) == 0) errors.push_back(line.substr(7));
    if (!line.empty()) tail.push_back(line);
  }
  std::string reason;
  const auto& chosen = errors.empty() ? tail : errors;
  size_t first = chosen.size() > 4 ? chosen.size() - 4 : 0;
  for (size_t i = first; i < chosen.size(); ++i) reason += (reason.empty() ? "" : " ") + chosen[i];
  if (reason.empty())
    reason = "pip failed (exit status " + std::to_string(result.return_code) + ")";
  if (reason.size() > 1000) reason = reason.substr(0, 1000) + "...";
  return "pip: " + reason;
}

// Versions pip accepts in a constraint (PEP 440, public and local parts).
bool PlainVersion(const std::string& v) {
  static const std::regex pep440(
      R"(^[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?(\+[A-Za-z0-9.]+)?$)");
  return std::regex_match(v, pep440);
}

std::set<std::string> Identifiers(const std::string& code) {
  std::set<std::string> out;
  std::string word;
  for (char c : code) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_') {
      word.push_back(c);
    } else if (!word.empty()) {
      out.insert(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.insert(word);
  return out;
}

}  // namespace

json PackageOutcome::ToJson() const {
  json j = {{"name", asked},
            {"distribution", distribution.empty() ? json(nullptr) : json(distribution)},
            {"version", version.empty() ? json(nullptr) : json(version)},
            {"status", status},
            {"seconds", Round3(seconds)}};
  if (!reason.empty()) j["reason"] = reason;
  return j;
}

bool InstallReport::installed_any() const {
  for (const auto& p : packages) {
    if (p.status == "installed") return true;
  }
  return false;
}

bool InstallReport::all_ok() const {
  for (const auto& p : packages) {
    if (p.status == "failed") return false;
  }
  return true;
}

json InstallReport::InstalledNames() const {
  json out = json::array();
  for (const auto& p : packages) {
    if (p.status != "failed") out.push_back(p.distribution);
  }
  return out;
}

json InstallReport::Failed() const {
  json out = json::array();
  for (const auto& p : packages) {
    if (p.status == "failed") out.push_back({{"name", p.asked}, {"reason", p.reason}});
  }
  return out;
}

json InstallReport::ToJson() const {
  json list = json::array();
  for (const auto& p : packages) list.push_back(p.ToJson());
  return {{"installed_packages", InstalledNames()},
          {"failed_packages", Failed()},
          {"packages", list},
          {"install_seconds", Round3(seconds)}};
}

PackageManager::PackageManager(PackageSettings settings, const std::string& data_dir,
                               store::Store& store, InstallerRunner runner, uid_t installer_uid)
    : settings_(std::move(settings)),
      env_(data_dir + "/packages"),
      store_(store),
      runner_(std::move(runner)),
      installer_uid_(installer_uid) {}

sandbox::Status PackageManager::Init() {
  if (auto s = env_.Init(); !s.ok()) {
    return sandbox::Status::Fail("cannot create " + env_.root() + ": " + sandbox::Describe(s));
  }
  system_ = PackageEnvironment::SystemDistributions();
  {
    auto lock = env_.LockBuild();
    if (!lock) return sandbox::Status::Fail(lock.error());
    env_.SweepUnused(&lock.value());
  }
  ReloadInstalled();
  return sandbox::OkStatus();
}

void PackageManager::ReloadInstalled() {
  std::map<std::string, std::string> installed;
  if (std::string name = env_.CurrentName(); !name.empty()) {
    for (const auto& d : PackageEnvironment::ListDistributions(env_.root() + "/envs/" + name)) {
      installed[d.name] = d.version;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  installed_ = std::move(installed);
  stats_.installed = installed_.size();
}

std::string PackageManager::Constraints() const {
  // What the system provides stays what executions import (the environment comes after it on
  // sys.path): pip must pick versions of the rest that work with it, never another version of it.
  std::string text;
  for (const auto& d : system_) {
    if (PlainVersion(d.version)) text += d.name + "==" + d.version + "\n";
  }
  return text;
}

PackageManager::PipRun PackageManager::RunPip(const std::string& partial,
                                              const std::vector<std::string>& requirements) {
  json args = {"install",
               "--prefix",
               runner::kPackagesInside,
               "--only-binary=:all:",
               "--no-cache-dir",
               "--disable-pip-version-check",
               "--no-input",
               "--progress-bar",
               "off",
               "--no-warn-script-location",
               "--constraint",
               "/tmp/constraints.txt"};
  if (settings_.index_url.empty()) {
    args.push_back("--no-index");
  } else {
    args.push_back("--index-url");
    args.push_back(settings_.index_url);
  }
  if (!settings_.extra_index_url.empty()) {
    args.push_back("--extra-index-url");
    args.push_back(settings_.extra_index_url);
  }
  if (!settings_.wheel_dir.empty()) {
    args.push_back("--find-links");
    args.push_back(runner::kWheelsInside);
  }
  args.push_back("--");
  for (const auto& r : requirements) args.push_back(r);
  json config = {
      {"prefix", runner::kPackagesInside}, {"constraints", Constraints()}, {"args", args}};
  // pip runs in the sandboxed interpreter. What is installed already must count as installed, so
  // the environment's site directories go on sys.path, but as plain entries: their .pth files
  // (code of earlier packages) do not run here.
  std::string code =
      "import json, sys, sysconfig\n"
      "config = json.loads(" +
      json(config.dump()).dump() +
      ")\n"
      "scheme = sysconfig.get_preferred_scheme('prefix')\n"
      "for key in ('purelib', 'platlib'):\n"
      "    path = sysconfig.get_path(key, scheme, vars={'base': config['prefix'],\n"
      "                                                 'platbase': config['prefix']})\n"
      "    if path not in sys.path:\n"
      "        sys.path.append(path)\n"
      "with open('/tmp/constraints.txt', 'w') as f:\n"
      "    f.write(config['constraints'])\n"
      "from pip._internal.cli.main import main\n"
      "sys.exit(main(config['args']))\n";

  exec::ExecutionRequest request;
  request.code = code;
  request.installer = true;
  request.packages_dir = partial;
  request.wheel_dir = settings_.wheel_dir;
  request.limits.timeout_seconds = settings_.install_timeout_seconds;
  request.limits.memory_mb = settings_.install_memory_mb;
  request.limits.tmp_mb = settings_.install_tmp_mb;
  request.limits.max_processes = 256;
  request.limits.cpus = 0;
  request.limits.workspace_mb = 16;
  request.limits.max_output_chars = 200000;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.pip_runs;
  }
  auto result = runner_(request);
  if (!result) return {false, "the installer could not run: " + result.error()};
  if (result->status != "ok" || result->return_code != 0) {
    return {false, PipFailureReason(result.value())};
  }
  return {true, ""};
}

void PackageManager::InstallBatch(const std::vector<Allowlist::Entry>& entries,
                                  const std::string& requester,
                                  std::map<std::string, PackageOutcome>& outcomes,
                                  const BuildLock* held) {
  const auto started = Clock::now();
  auto fail_all = [&](const std::string& reason) {
    for (const auto& e : entries) {
      outcomes[e.distribution] = {e.distribution, e.distribution, "", "failed", reason, 0};
    }
  };
  Result<BuildLock> own = held != nullptr ? Result<BuildLock>(BuildLock()) : env_.LockBuild();
  if (!own) return fail_all(own.error());
  const BuildLock& lock_ref = held != nullptr ? *held : own.value();
  // Another process may have installed some of them while we waited for the lock.
  ReloadInstalled();
  std::vector<Allowlist::Entry> todo;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    for (const auto& e : entries) {
      if (auto it = installed_.find(e.distribution); it != installed_.end()) {
        outcomes[e.distribution] = {
            e.distribution, e.distribution, it->second, "already_installed", "", 0};
      } else {
        todo.push_back(e);
      }
    }
  }
  if (todo.empty()) return;
  auto partial = env_.CreatePartial(lock_ref, /*copy_current=*/true, installer_uid_,
                                    static_cast<gid_t>(installer_uid_));
  if (!partial) return fail_all(partial.error());
  std::vector<std::string> requirements;
  for (const auto& e : todo) requirements.push_back(e.requirement);
  PipRun run = RunPip(partial.value(), requirements);
  if (!run.ok) {
    env_.Discard(partial.value());
    if (todo.size() > 1) {
      // One bad package must not sink the others asked with it.
      for (const auto& e : todo) {
        std::map<std::string, PackageOutcome> one;
        InstallBatch({e}, requester, one, &lock_ref);
        outcomes.insert(one.begin(), one.end());
      }
      return;
    }
    fail_all(run.reason);
    return;
  }
  auto name = env_.Commit(lock_ref, partial.value());
  if (!name) {
    env_.Discard(partial.value());
    return fail_all(name.error());
  }
  ReloadInstalled();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  std::map<std::string, store::PackageRecord> known;
  for (auto& r : store_.ListPackages()) known[r.name] = r;
  std::set<std::string> asked;
  for (const auto& e : todo) asked.insert(e.distribution);
  const store::Millis now = NowMillis();
  const std::map<std::string, std::string> installed =
      RecordLiveEnvironment(known, asked, requester, now, /*reinstalled=*/false);
  if (!store_.GetMeta("packages_last_refresh_ms")) {  // the first environment: its age starts
    store_.SetMeta("packages_last_refresh", Rfc3339(now));
    store_.SetMeta("packages_last_refresh_ms", std::to_string(now));
  }
  for (const auto& e : todo) {
    auto it = installed.find(e.distribution);
    outcomes[e.distribution] = {
        e.distribution, e.distribution, it == installed.end() ? "" : it->second, "installed", "",
        seconds};
  }
  env_.SweepUnused(&lock_ref);
}

std::map<std::string, std::string> PackageManager::RecordLiveEnvironment(
    const std::map<std::string, store::PackageRecord>& known, const std::set<std::string>& asked,
    const std::string& requester, store::Millis now, bool reinstalled) {
  std::map<std::string, std::string> installed;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    installed = installed_;
  }
  std::vector<store::PackageRecord> records;
  for (const auto& [dist, version] : installed) {
    store::PackageRecord r;
    if (auto it = known.find(dist); it != known.end()) r = it->second;
    if (reinstalled || r.name.empty() || r.version != version) r.installed_at = now;
    r.name = dist;
    r.version = version;
    if (asked.count(dist) != 0 && !r.requested) {
      r.requested = true;
      r.first_requester = requester;
    }
    records.push_back(r);
  }
  store_.ReplacePackages(records);
  return installed;
}

InstallReport PackageManager::Install(const std::vector<std::string>& names,
                                      const std::string& requester) {
  const auto started = Clock::now();
  InstallReport report;
  std::vector<Allowlist::Entry> mine;
  std::map<std::string, std::shared_future<PackageOutcome>> theirs;
  std::map<std::string, std::promise<PackageOutcome>> promises;
  std::vector<std::pair<std::string, std::optional<Allowlist::Entry>>> asked;
  std::map<std::string, PackageOutcome> outcomes_cached;
  for (const auto& name : names) {
    std::optional<Allowlist::Entry> entry;
    if (settings_.enabled && ValidPackageName(name)) entry = settings_.allowlist.Find(name);
    asked.emplace_back(name, entry);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, entry] : asked) {
      if (!entry) continue;
      const std::string& dist = entry->distribution;
      if (installed_.count(dist) != 0 || theirs.count(dist) != 0 || promises.count(dist) != 0) {
        continue;
      }
      bool system = std::any_of(system_.begin(), system_.end(),
                                [&](const Distribution& d) { return d.name == dist; });
      if (system) continue;
      if (auto failed = recent_failures_.find(dist); failed != recent_failures_.end()) {
        const auto age = Clock::now() - failed->second.first;
        if (age < kRetryFailedAfter) {
          // A model that retries in a loop (or code that imports it in every execution) must not
          // run pip each time.
          const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(age).count();
          outcomes_cached[dist] = {dist,
                                   dist,
                                   "",
                                   "failed",
                                   failed->second.second + " (this install failed " +
                                       std::to_string(seconds) +
                                       " s ago; it is tried again 5 minutes after a failure)",
                                   0};
          ++stats_.failures;
          continue;
        }
        recent_failures_.erase(failed);
      }
      if (auto it = in_flight_.find(dist); it != in_flight_.end()) {
        theirs[dist] = it->second;
      } else {
        promises[dist] = {};
        in_flight_[dist] = promises[dist].get_future().share();
        mine.push_back(*entry);
      }
    }
  }
  std::map<std::string, PackageOutcome> outcomes = std::move(outcomes_cached);
  if (!mine.empty()) {
    try {
      std::lock_guard<std::mutex> build(build_mutex_);
      InstallBatch(mine, requester, outcomes);
    } catch (const std::exception& e) {
      // The promises below must be kept whatever happened: other requests wait on them.
      for (const auto& entry : mine) {
        outcomes[entry.distribution] = {entry.distribution,
                                        entry.distribution,
                                        "",
                                        "failed",
                                        std::string("the install failed: ") + e.what(),
                                        0};
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [dist, promise] : promises) {
      auto it = outcomes.find(dist);
      PackageOutcome outcome = it != outcomes.end()
                                   ? it->second
                                   : PackageOutcome{dist, dist, "", "failed", "not installed", 0};
      if (outcome.status == "installed") {
        ++stats_.installs;
      } else if (outcome.status == "failed") {
        ++stats_.failures;
        recent_failures_[dist] = {Clock::now(), outcome.reason};
      }
      stats_.install_seconds += outcome.seconds;
      promise.set_value(outcome);
      in_flight_.erase(dist);
    }
  }
  for (auto& [dist, future] : theirs) {
    PackageOutcome outcome = future.get();
    // Someone else's install: it cost this request only the wait.
    if (outcome.status == "installed") outcome.status = "already_installed";
    outcomes[dist] = outcome;
  }
  for (const auto& [name, entry] : asked) {
    PackageOutcome outcome;
    outcome.asked = name;
    if (!settings_.enabled) {
      outcome.status = "failed";
      outcome.reason = "package installation is disabled (setting packages.enabled)";
    } else if (!ValidPackageName(name)) {
      outcome.status = "failed";
      outcome.reason = "'" + name +
                       "' is not a package name (letters, digits, '.', '_' and '-'; no version "
                       "specifiers: versions are pinned in the allowlist)";
    } else if (!entry) {
      outcome.status = "failed";
      outcome.reason = NotApprovedReason(name);
    } else if (auto it = outcomes.find(entry->distribution); it != outcomes.end()) {
      outcome = it->second;
      outcome.asked = name;
    } else {
      outcome.distribution = entry->distribution;
      outcome.status = "already_installed";
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto in_env = installed_.find(entry->distribution); in_env != installed_.end()) {
        outcome.version = in_env->second;
      } else {
        for (const auto& d : system_) {
          if (d.name == entry->distribution) outcome.version = d.version;
        }
      }
    }
    if (outcome.distribution.empty() && entry) outcome.distribution = entry->distribution;
    report.packages.push_back(outcome);
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return report;
}

std::optional<Allowlist::Entry> PackageManager::InstallableForMissingModule(
    const std::string& module) {
  if (!settings_.enabled) return std::nullopt;
  auto entry = settings_.allowlist.FindImport(module);
  if (!entry) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  if (installed_.count(entry->distribution) != 0) return std::nullopt;
  // Debian's (e.g. `import sklearn.nonexistent`): installing would change nothing.
  for (const auto& d : system_) {
    if (d.name == entry->distribution) return std::nullopt;
  }
  return entry;
}

void PackageManager::NoteUsage(const std::string& code) {
  std::vector<std::string> used;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (installed_.empty()) return;
    // One write per package per interval at most: refresh only needs the day, not the minute.
    const auto interval = std::min<Clock::duration>(
        std::chrono::minutes(10),
        std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(settings_.refresh_days * 86400 / 10)));
    const auto now = Clock::now();
    std::set<std::string> words = Identifiers(code);
    for (const auto& [import_name, requirement] : settings_.allowlist.entries()) {
      if (words.count(import_name) == 0) continue;
      std::string dist = NormalizeName(RequirementName(requirement));
      if (installed_.count(dist) == 0) continue;
      auto noted = last_noted_.find(dist);
      if (noted != last_noted_.end() && now - noted->second < interval) continue;
      last_noted_[dist] = now;
      used.push_back(dist);
    }
  }
  if (!used.empty()) store_.TouchPackages(used, NowMillis());
}

bool PackageManager::RefreshDue() {
  if (settings_.refresh_days <= 0 || !environment_exists()) return false;
  auto last = store_.GetMeta("packages_last_refresh_ms");
  if (!last) return false;
  char* end = nullptr;
  const long long last_ms = std::strtoll(last->c_str(), &end, 10);
  if (end == last->c_str() || *end != '\0') return true;  // unreadable: rebuild and rewrite it
  const double age_days = static_cast<double>(NowMillis() - last_ms) / 86400000.0;
  return age_days >= settings_.refresh_days;
}

json PackageManager::Refresh(bool force) {
  if (!force && !RefreshDue()) return {{"refreshed", false}, {"reason", "not due"}};
  std::lock_guard<std::mutex> build(build_mutex_);
  const auto started = Clock::now();
  auto lock = env_.LockBuild();
  auto fail = [&](const std::string& error) {
    store_.SetMeta("packages_refresh_error", error);
    std::lock_guard<std::mutex> guard(mutex_);
    ++stats_.refreshes_failed;
    return json{{"refreshed", false}, {"error", error}, {"environment", env_.CurrentName()}};
  };
  if (!lock) return fail(lock.error());
  const store::Millis now = NowMillis();
  const store::Millis cutoff =
      now - static_cast<store::Millis>(settings_.refresh_days * 86400000.0);
  std::vector<store::PackageRecord> kept;
  json kept_names = json::array(), dropped = json::array();
  std::vector<std::string> requirements;
  for (const auto& r : store_.ListPackages()) {
    if (!r.requested) continue;
    auto entry = settings_.allowlist.Find(r.name);
    const store::Millis used = r.last_used.value_or(r.installed_at);
    if (entry && (settings_.refresh_days <= 0 || used >= cutoff)) {
      kept.push_back(r);
      kept_names.push_back(r.name);
      requirements.push_back(entry->requirement);
    } else {
      dropped.push_back(r.name);
    }
  }
  auto partial = env_.CreatePartial(lock.value(), /*copy_current=*/false, installer_uid_,
                                    static_cast<gid_t>(installer_uid_));
  if (!partial) return fail(partial.error());
  if (!requirements.empty()) {
    PipRun run = RunPip(partial.value(), requirements);
    if (!run.ok) {
      env_.Discard(partial.value());
      return fail(run.reason);
    }
  }
  auto name = env_.Commit(lock.value(), partial.value());
  if (!name) {
    env_.Discard(partial.value());
    return fail(name.error());
  }
  ReloadInstalled();
  std::map<std::string, store::PackageRecord> known;
  for (const auto& r : kept) known[r.name] = r;
  RecordLiveEnvironment(known, {}, "", now, /*reinstalled=*/true);
  store_.SetMeta("packages_last_refresh", Rfc3339(now));
  store_.SetMeta("packages_last_refresh_ms", std::to_string(now));
  store_.SetMeta("packages_refresh_error", "");
  {
    std::lock_guard<std::mutex> guard(mutex_);
    ++stats_.refreshes_ok;
  }
  env_.SweepUnused(&lock.value());
  return {{"refreshed", true},
          {"environment", name.value()},
          {"kept", kept_names},
          {"dropped", dropped},
          {"seconds", Round3(std::chrono::duration<double>(Clock::now() - started).count())}};
}

PackageStats PackageManager::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

json PackageManager::Describe() {
  PackageStats s = stats();
  std::string name = env_.CurrentName();
  auto meta = [&](const char* key) -> json {
    auto v = store_.GetMeta(key);
    return v && !v->empty() ? json(*v) : json(nullptr);
  };
  return {{"enabled", settings_.enabled},
          {"environment", name.empty() ? json(nullptr) : json(name)},
          {"path", env_.root() + "/current"},
          {"installed", s.installed},
          {"installs", s.installs},
          {"install_failures", s.failures},
          {"install_seconds", Round3(s.install_seconds)},
          {"pip_runs", s.pip_runs},
          {"refreshes", {{"ok", s.refreshes_ok}, {"failed", s.refreshes_failed}}},
          {"refresh_days", settings_.refresh_days},
          {"last_refresh", meta("packages_last_refresh")},
          {"refresh_error", meta("packages_refresh_error")},
          {"index_url", settings_.index_url},
          {"wheel_dir", settings_.wheel_dir.empty() ? json(nullptr) : json(settings_.wheel_dir)}};
}

json PackageManager::List() {
  json records = json::array();
  for (const auto& r : store_.ListPackages()) {
    records.push_back({{"name", r.name},
                       {"version", r.version},
                       {"installed_at", Rfc3339(r.installed_at)},
                       {"last_used", r.last_used ? json(Rfc3339(*r.last_used)) : json(nullptr)},
                       {"first_requester", r.first_requester},
                       {"requested", r.requested}});
  }
  std::string name = env_.CurrentName();
  return {{"environment",
           {{"exists", !name.empty()},
            {"name", name.empty() ? json(nullptr) : json(name)},
            {"path", name.empty() ? json(nullptr) : json(env_.root() + "/envs/" + name)},
            {"created_at", name.empty() ? json(nullptr) : json(CreatedAt(name))},
            {"last_refresh", Describe()["last_refresh"]}}},
          {"packages", records},
          {"allowlist", settings_.allowlist.entries()}};
}

}  // namespace codecell::packages
