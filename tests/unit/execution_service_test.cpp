// The execution service with a fake runner and a fake package environment, over a real SQLite
// store and a real file manager in a temp dir: everything but the sandbox, without root.
#include "exec/execution_service.h"

#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>

#include "api/errors.h"
#include "exec/execution_json.h"
#include "exec/ids.h"
#include "store/store.h"
#include "test_support.h"

namespace codecell::exec {
namespace {

namespace fs = std::filesystem;
using codecell::testing::TempDir;

// Answers each Run with the next scripted step (the last one repeats). A step may block until
// Release(), for the admission tests.
class FakeRunner : public ExecutionRunner {
 public:
  using Step = std::function<Result<ExecutionResult>(ExecutionRequest&)>;

  void Script(std::vector<Step> steps) { steps_.assign(steps.begin(), steps.end()); }
  void BlockRuns() { blocked_ = true; }
  void Release() {
    std::lock_guard<std::mutex> lock(mutex_);
    blocked_ = false;
    cv_.notify_all();
  }
  void WaitForRunning(size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return running_ >= n; });
  }

  Result<ExecutionResult> Run(ExecutionRequest& request) override {
    Step step;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      requests.push_back(request);
      ++running_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !blocked_; });
      --running_;
      if (!steps_.empty()) step = steps_.front();
      if (steps_.size() > 1) steps_.pop_front();
    }
    if (!step) return Ok("");
    return step(request);
  }
  void CancelAll() override { ++cancels; }

  static Result<ExecutionResult> Ok(const std::string& output) {
    ExecutionResult r;
    r.execution_id = NewRandomId("exec_");
    r.status = "ok";
    r.output = output;
    return r;
  }

  std::vector<ExecutionRequest> requests;
  int cancels = 0;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Step> steps_;
  bool blocked_ = false;
  size_t running_ = 0;
};

class FakePackages : public ExecutionPackages {
 public:
  packages::InstallReport Install(const std::vector<std::string>& names,
                                  const std::string&) override {
    packages::InstallReport report;
    for (const auto& n : names) {
      installed.push_back(n);
      report.packages.push_back({n, n, "1.0", "installed", "", 0.5});
    }
    report.seconds = 0.5;
    return report;
  }
  std::optional<std::string> InstallableForMissingModule(const std::string& module) override {
    if (approved.count(module) && !installed_set().count(module)) return module;
    return std::nullopt;
  }
  bool Approved(const std::string& module) override { return approved.count(module) > 0; }
  void NoteUsage(const std::string& code) override { usage.push_back(code); }
  sandbox::Result<std::unique_ptr<Hold>> HoldEnvironment() override {
    using R = sandbox::Result<std::unique_ptr<Hold>>;
    if (!hold_error.empty()) return R::Fail(hold_error, hold_kind);
    auto hold = std::make_unique<Hold>();
    hold->dir = "/fake/env";
    ++holds;
    return R(std::move(hold));
  }

  std::set<std::string> installed_set() const { return {installed.begin(), installed.end()}; }

  std::set<std::string> approved;
  std::vector<std::string> installed, usage;
  std::string hold_error;
  sandbox::FailureKind hold_kind = sandbox::FailureKind::kInternal;
  int holds = 0;
};

struct Fixture {
  TempDir dir;
  std::unique_ptr<store::Store> store = store::OpenSqliteStore(dir.path() + "/codecell.db");
  std::unique_ptr<files::FileManager> files;
  FakeRunner runner;
  FakePackages packages;
  std::unique_ptr<ExecutionService> service;
  std::vector<store::ExecutionRecord> finished;

  explicit Fixture(ExecutionServiceSettings settings = {}) {
    files = std::make_unique<files::FileManager>(*store, dir.path(), files::FilePolicy{});
    EXPECT_TRUE(files->Init().ok());
    settings.scratch_dir = files->temp_dir();
    service = std::make_unique<ExecutionService>(settings, runner, *files, packages, *store);
    service->on_finished = [this](const store::ExecutionRecord& r) { finished.push_back(r); };
  }

  store::FileRecord Upload(const std::string& user, const std::string& name) {
    auto up = files->BeginUpload(name);
    EXPECT_TRUE(up.ok());
    EXPECT_TRUE((*up.value)->Write("a,b\n1,2\n", 8));
    auto committed = (*up.value)->Commit(user);
    EXPECT_TRUE(committed.ok()) << committed.failure.message;
    return *committed.value;
  }

  Expected<ExecutionOutcome> Run(const std::string& user, ExecutionSpec spec) {
    return service->Run(user, spec);
  }
};

ExecutionSpec Code(std::string code) {
  ExecutionSpec spec;
  spec.code = std::move(code);
  return spec;
}

TEST(ExecutionService, RunsTheCodeAndRecordsItsHistory) {
  Fixture f;
  f.runner.Script({[](ExecutionRequest& r) { return FakeRunner::Ok("ran: " + r.code); }});
  auto out = f.Run("u1", Code("print(1)"));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->result.output, "ran: print(1)");
  ASSERT_EQ(f.runner.requests.size(), 1u);
  const ExecutionRequest& sent = f.runner.requests[0];
  EXPECT_EQ(sent.packages_dir, "/fake/env");
  EXPECT_EQ(sent.limits.timeout_seconds, Limits{}.timeout_seconds);
  EXPECT_EQ(sent.limits.memory_mb, Limits{}.memory_mb);
  EXPECT_EQ(f.packages.usage, std::vector<std::string>{"print(1)"});
  auto record = f.store->GetExecution(out->result.execution_id);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->user_id, "u1");
  EXPECT_EQ(record->status, "ok");
  EXPECT_LE(record->started_at, record->finished_at);
  ASSERT_EQ(f.finished.size(), 1u);
  EXPECT_EQ(f.finished[0].execution_id, out->result.execution_id);
  EXPECT_EQ(f.service->running(), 0u);
}

TEST(ExecutionService, RequestedLimitsReachTheRunnerWithinBounds) {
  Fixture f;
  ExecutionSpec spec = Code("x");
  spec.timeout_seconds = 5;
  spec.memory_mb = 256;
  ASSERT_TRUE(f.Run("u1", spec).ok());
  ASSERT_EQ(f.runner.requests.size(), 1u);
  EXPECT_EQ(f.runner.requests[0].limits.timeout_seconds, 5);
  EXPECT_EQ(f.runner.requests[0].limits.memory_mb, 256u);
}

TEST(ExecutionService, OutOfRangeLimitsAreBadInputAndNothingRuns) {
  Fixture f;
  ExecutionSpec too_long = Code("x");
  too_long.timeout_seconds = LimitBounds{}.max_timeout_seconds + 1;
  ExecutionSpec no_time = Code("x");
  no_time.timeout_seconds = 0;
  ExecutionSpec too_big = Code("x");
  too_big.memory_mb = LimitBounds{}.max_memory_mb + 1;
  for (const auto& spec : {too_long, no_time, too_big}) {
    auto out = f.Run("u1", spec);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().kind, ErrorKind::kBadInput) << out.error().message;
    EXPECT_EQ(api::HttpStatus(out.error().kind), 400);
  }
  EXPECT_TRUE(f.runner.requests.empty());
  EXPECT_TRUE(f.finished.empty());
}

TEST(ExecutionService, InvalidUserIdsAreBadInput) {
  Fixture f;
  const std::vector<std::string> users = {"", "../u1", "a b", std::string(200, 'x'),
                                          std::string("u\0", 2)};
  for (const auto& user : users) {
    auto out = f.Run(user, Code("x"));
    ASSERT_FALSE(out.ok()) << user;
    EXPECT_EQ(out.error().kind, ErrorKind::kBadInput);
  }
  EXPECT_TRUE(f.runner.requests.empty());
  EXPECT_TRUE(f.Run("user-1_ok.2", Code("x")).ok());
}

TEST(ExecutionService, TooManyPackagesIsBadInput) {
  Fixture f;
  ExecutionSpec spec = Code("x");
  spec.install_packages.assign(kMaxInstallPackages + 1, "tabulate");
  auto out = f.Run("u1", spec);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::kBadInput);
  EXPECT_TRUE(f.packages.installed.empty());
  spec.install_packages.resize(kMaxInstallPackages);
  EXPECT_TRUE(f.Run("u1", spec).ok());
  EXPECT_EQ(f.packages.installed.size(), kMaxInstallPackages);
}

TEST(ExecutionService, InputsAreTheUsersOwnFiles) {
  Fixture f;
  auto mine = f.Upload("u1", "mine.csv");
  auto theirs = f.Upload("u2", "theirs.csv");
  ASSERT_TRUE(f.Run("u1", Code("x")).ok());
  ASSERT_EQ(f.runner.requests.back().inputs.size(), 1u);
  EXPECT_EQ(f.runner.requests.back().inputs[0].file_id, mine.file_id);
  EXPECT_EQ(f.runner.requests.back().inputs[0].filename, "mine.csv");
  EXPECT_TRUE(fs::exists(f.runner.requests.back().inputs[0].host_path));

  // Naming another user's file is the same as naming one that does not exist.
  ExecutionSpec spec = Code("x");
  spec.file_ids = std::vector<std::string>{theirs.file_id};
  auto out = f.Run("u1", spec);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(f.runner.requests.size(), 1u);

  spec.file_ids = std::vector<std::string>{};
  ASSERT_TRUE(f.Run("u1", spec).ok());
  EXPECT_TRUE(f.runner.requests.back().inputs.empty());
}

TEST(ExecutionService, AFullQueueIsBusyWithARetryHint) {
  ExecutionServiceSettings settings;
  settings.workers = 1;
  settings.queue = 0;
  settings.per_user = 4;
  Fixture f(settings);
  f.runner.BlockRuns();
  auto first = std::async(std::launch::async, [&] { return f.Run("u1", Code("slow")); });
  f.runner.WaitForRunning(1);
  auto refused = f.Run("u2", Code("x"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::kBusy);
  EXPECT_GT(api::RetryAfterSeconds(refused.error()), 0);
  EXPECT_EQ(api::HttpStatus(refused.error().kind), 429);
  f.runner.Release();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(f.Run("u2", Code("x")).ok());  // the slot is free again
}

TEST(ExecutionService, AUserOverTheirOwnLimitIsBusyOthersRun) {
  ExecutionServiceSettings settings;
  settings.workers = 2;
  settings.queue = 4;
  settings.per_user = 1;
  Fixture f(settings);
  f.runner.BlockRuns();
  auto first = std::async(std::launch::async, [&] { return f.Run("u1", Code("slow")); });
  f.runner.WaitForRunning(1);
  auto refused = f.Run("u1", Code("x"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::kBusy);
  EXPECT_NE(refused.error().message.find("this user already has 1"), std::string::npos);
  auto other = std::async(std::launch::async, [&] { return f.Run("u2", Code("x")); });
  f.runner.WaitForRunning(2);
  f.runner.Release();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(other.get().ok());
}

TEST(ExecutionService, AfterShutdownEveryRunIsUnavailable) {
  Fixture f;
  f.service->Shutdown();
  auto out = f.Run("u1", Code("x"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(api::HttpStatus(out.error().kind), 503);
  EXPECT_TRUE(f.runner.requests.empty());
  f.service->CancelRunning();
  EXPECT_EQ(f.runner.cancels, 1);
}

Result<ExecutionResult> MissingModuleError(ExecutionRequest&) {
  ExecutionResult r = FakeRunner::Ok("").value();
  r.status = "error";
  r.return_code = 1;
  r.error = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'tabulate'\n";
  return r;
}

TEST(ExecutionService, AnApprovedMissingModuleIsInstalledAndTheCodeRerun) {
  Fixture f;
  f.packages.approved = {"tabulate"};
  f.runner.Script({MissingModuleError, [](ExecutionRequest&) { return FakeRunner::Ok("table"); }});
  auto out = f.Run("u1", Code("import tabulate"));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out->rerun_after_install);
  EXPECT_EQ(out->result.status, "ok");
  EXPECT_EQ(out->result.output, "table");
  EXPECT_EQ(f.packages.installed, std::vector<std::string>{"tabulate"});
  ASSERT_EQ(out->installs.packages.size(), 1u);
  EXPECT_EQ(out->installs.packages[0].status, "installed");
  EXPECT_EQ(f.runner.requests.size(), 2u);
  EXPECT_EQ(f.packages.holds, 2);
  // Only the second run is the execution: one record, one log line.
  EXPECT_EQ(f.finished.size(), 1u);
}

TEST(ExecutionService, AModuleThatIsNotApprovedIsReportedAndNotRetried) {
  Fixture f;
  f.runner.Script({MissingModuleError});
  auto out = f.Run("u1", Code("import tabulate"));
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->rerun_after_install);
  EXPECT_EQ(out->result.status, "error");
  EXPECT_EQ(f.runner.requests.size(), 1u);
  ASSERT_EQ(out->installs.packages.size(), 1u);
  EXPECT_EQ(out->installs.packages[0].status, "failed");
  EXPECT_EQ(out->installs.packages[0].reason, packages::NotApprovedReason("tabulate"));
}

TEST(ExecutionService, AnInstalledModuleThatStillFailsIsNotRetriedForever) {
  Fixture f;
  f.packages.approved = {"tabulate"};
  f.runner.Script({MissingModuleError});  // every run fails the same way
  auto out = f.Run("u1", Code("import tabulate"));
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->rerun_after_install);
  EXPECT_EQ(out->result.status, "error");
  EXPECT_EQ(f.runner.requests.size(), 2u);
}

TEST(ExecutionService, ARunnerFailureIsInternalAndKeepsHostPathsInTheLog) {
  Fixture f;
  f.runner.Script({[](ExecutionRequest&) {
    return Result<ExecutionResult>::Fail("mount /var/lib/codecell/work/x failed: EINVAL");
  }});
  auto out = f.Run("u1", Code("x"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::kInternal);
  EXPECT_EQ(api::HttpStatus(out.error().kind), 500);
  EXPECT_EQ(out.error().message.find("/var/lib"), std::string::npos) << out.error().message;
  EXPECT_NE(out.error().detail.find("/var/lib/codecell/work/x"), std::string::npos);
  // The attempt is in the history, under the id the message names.
  ASSERT_EQ(f.finished.size(), 1u);
  EXPECT_EQ(f.finished[0].status, "failed");
  EXPECT_NE(out.error().message.find(f.finished[0].execution_id), std::string::npos);
  EXPECT_TRUE(f.store->GetExecution(f.finished[0].execution_id).has_value());
  EXPECT_EQ(f.service->running(), 0u);
}

TEST(ExecutionService, AFullDiskIsStorageFull) {
  Fixture f;
  f.runner.Script({[](ExecutionRequest&) {
    return Result<ExecutionResult>::Fail("write /x: ENOSPC", sandbox::FailureKind::kStorageFull);
  }});
  auto out = f.Run("u1", Code("x"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::kStorageFull);
  EXPECT_EQ(api::HttpStatus(out.error().kind), 507);
}

TEST(ExecutionService, APackageEnvironmentThatCannotBeHeldFailsTheExecution) {
  Fixture f;
  f.packages.hold_error = "environment gone";
  f.packages.hold_kind = sandbox::FailureKind::kStorageFull;
  auto out = f.Run("u1", Code("x"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::kStorageFull);
  EXPECT_TRUE(f.runner.requests.empty());
  f.packages.hold_error.clear();
  EXPECT_TRUE(f.Run("u1", Code("x")).ok());
}

// The runner's part of a generated file: written into the request's generated_dir.
Result<ExecutionResult> MakesAFile(ExecutionRequest& request) {
  ExecutionResult r = FakeRunner::Ok("").value();
  fs::create_directories(request.generated_dir);
  GeneratedFile g;
  g.file_id = "gen_1";
  g.filename = "plot.png";
  g.host_path = request.generated_dir + "/plot.png";
  std::ofstream(g.host_path) << "\x89PNG fake";
  g.size = fs::file_size(g.host_path);
  r.generated_files.push_back(g);
  OutputItem shown;
  shown.type = OutputItem::Type::kDisplayData;
  shown.filename = "plot.png";
  shown.file_id = "gen_1";
  r.outputs.push_back(shown);
  return r;
}

TEST(ExecutionService, GeneratedFilesAreStoredForTheUserAndTheScratchIsRemoved) {
  Fixture f;
  f.runner.Script({MakesAFile});
  auto out = f.Run("u1", Code("plot"));
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->stored.size(), 1u);
  EXPECT_EQ(out->stored[0].filename, "plot.png");
  EXPECT_TRUE(out->skipped.empty());
  auto listed = f.files->List("u1");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].file_id, out->stored[0].file_id);
  EXPECT_TRUE(f.files->List("u2").empty());
  // The displayed figure names the stored file, not the execution's own id.
  ASSERT_EQ(out->result.outputs.size(), 1u);
  EXPECT_EQ(out->result.outputs[0].file_id, out->stored[0].file_id);
  EXPECT_FALSE(fs::exists(f.runner.requests[0].generated_dir));
  EXPECT_EQ(f.finished[0].generated_files, 1u);
}

TEST(ExecutionService, TheObserverSeesTheOutputAsItComes) {
  Fixture f;
  f.runner.Script({[](ExecutionRequest& r) {
    if (r.on_stdout) r.on_stdout("partial ");
    if (r.on_stderr) r.on_stderr("warn");
    return FakeRunner::Ok("partial done");
  }});
  std::string seen_out, seen_err;
  ExecutionObserver observer{[&](std::string_view s) { seen_out += s; },
                             [&](std::string_view s) { seen_err += s; }};
  ASSERT_TRUE(f.service->Run("u1", Code("x"), &observer).ok());
  EXPECT_EQ(seen_out, "partial ");
  EXPECT_EQ(seen_err, "warn");
}

// Each kind maps to one answer per door; the statuses are SPEC's.
TEST(ExecutionServiceErrors, EachKindHasOneHttpStatusAndCode) {
  const std::vector<std::tuple<ErrorKind, int, std::string>> expected = {
      {ErrorKind::kBadInput, 400, "bad_request"},
      {ErrorKind::kForbidden, 403, "forbidden"},
      {ErrorKind::kNotFound, 404, "not_found"},
      {ErrorKind::kTooLarge, 413, "too_large"},
      {ErrorKind::kOverQuota, 429, "rate_limited"},
      {ErrorKind::kBusy, 429, "rate_limited"},
      {ErrorKind::kUnavailable, 503, "not_ready"},
      {ErrorKind::kStorageFull, 507, "insufficient_storage"},
      {ErrorKind::kInternal, 500, "internal"},
  };
  for (const auto& [kind, status, code] : expected) {
    EXPECT_EQ(api::HttpStatus(kind), status);
    EXPECT_EQ(api::HttpErrorCode(kind), code);
  }
  Error busy = Error::Busy("all busy", 0);
  EXPECT_EQ(api::RetryAfterSeconds(busy), 5);
  EXPECT_EQ(api::RetryAfterSeconds(Error::BadInput("x")), 0);
  EXPECT_EQ(api::ToolErrorContent(busy),
            "Error: the code could not be run: all busy. Try again in "
            "a few seconds.");
}

// The codec that crosses the helper process boundary gives back what it was given.
TEST(ExecutionJson, RequestAndResultRoundTrip) {
  HelperRequest helper;
  helper.data_dir = "/var/lib/codecell";
  helper.installer_uid = 4242;
  ExecutionRequest& request = helper.request;
  request.code = "print('é')\n";
  request.limits.timeout_seconds = 12.5;
  request.limits.memory_mb = 333;
  request.limits.cpus = 0.5;
  request.limits.max_generated_files = 7;
  request.inputs = {{"file_1", "a b.csv", "/x/y"}};
  request.generated_dir = "/g";
  request.packages_dir = "/p";
  request.installer = true;
  request.wheel_dir = "/w";
  HelperRequest back = nlohmann::json(helper).get<HelperRequest>();
  EXPECT_EQ(nlohmann::json(back), nlohmann::json(helper));
  EXPECT_EQ(back.request.code, request.code);
  EXPECT_EQ(back.request.limits.memory_mb, 333u);
  EXPECT_EQ(back.request.limits.cpus, 0.5);
  EXPECT_EQ(back.request.inputs[0].filename, "a b.csv");
  EXPECT_TRUE(back.request.installer);
  EXPECT_EQ(back.installer_uid, 4242u);

  ExecutionResult result;
  result.execution_id = "exec_1";
  result.status = "timeout";
  result.output = "out";
  result.error = "err";
  result.return_code = -9;
  result.execution_time = 1.25;
  result.output_truncated = true;
  result.generated_files = {{"gen_1", "a.png", "image", "image/png", "/h/a.png", 10}};
  result.skipped_files = {{"big.bin", "too large", 1u << 30}};
  OutputItem item;
  item.type = OutputItem::Type::kError;
  item.ename = "ValueError";
  item.evalue = "bad";
  item.traceback = {"line 1", "line 2"};
  OutputItem value;
  value.type = OutputItem::Type::kExecuteResult;
  // A JSON object: the mime types come back in name order.
  value.data = {{"text/html", "<b>1</b>"}, {"text/plain", "1"}};
  OutputItem figure;
  figure.type = OutputItem::Type::kDisplayData;
  figure.data = {{"text/plain", "<Figure>"}};
  figure.file_id = "gen_1";
  figure.mime_type = "image/png";
  OutputItem stream;
  stream.name = "stdout";
  stream.text = "hi\n";
  result.outputs = {stream, value, figure, item};
  result.cpu_time = 0.75;
  result.peak_memory_bytes = 12345;
  result.interpreter = "warm";
  ExecutionResult again = nlohmann::json(result).get<ExecutionResult>();
  EXPECT_EQ(nlohmann::json(again), nlohmann::json(result));
  EXPECT_EQ(again.generated_files[0].host_path, "/h/a.png");
  EXPECT_EQ(again.skipped_files[0].size, 1u << 30);
  ASSERT_EQ(again.outputs.size(), 4u);
  EXPECT_EQ(again.outputs[1].data, value.data);
  EXPECT_EQ(again.outputs[2].file_id, "gen_1");
  EXPECT_EQ(again.outputs[3].traceback.size(), 2u);
  EXPECT_EQ(again.peak_memory_bytes, 12345u);
  EXPECT_EQ(again.interpreter, "warm");
}

TEST(ExecutionJson, AMistypedFieldIsAnExceptionNotACrash) {
  nlohmann::json j = nlohmann::json(ExecutionResult{});
  j["return_code"] = "zero";
  EXPECT_THROW(j.get<ExecutionResult>(), nlohmann::json::exception);
  nlohmann::json missing = nlohmann::json::object();
  EXPECT_THROW(missing.get<HelperRequest>(), nlohmann::json::exception);
}

}  // namespace
}  // namespace codecell::exec
