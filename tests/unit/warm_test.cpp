// Unit tests of the pieces warm interpreters are built from: descriptor passing, the spec sent to a
// warm child, the choice of zygote, the process strings a warm child shows, adopted cgroups and
// the [interpreters] settings. The zygote itself is exercised end to end by tests/warm.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "api/config.h"
#include "exec/zygote_client.h"
#include "exec/zygote_supervisor.h"
#include "sandbox/cgroups.h"
#include "sandbox/cmdline.h"
#include "sandbox/fd_passing.h"
#include "sandbox/file_io.h"
#include "sandbox/spec_wire.h"
#include "sandbox/warm_init.h"
#include "test_support.h"

namespace codecell {
namespace {

using sandbox::UniqueFd;
using testing::TempDir;

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

TEST(FdPassing, BodyAndDescriptorsArrive) {
  SocketPair pair;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  std::string body(300000, 'x');  // larger than a socket buffer: sent in pieces
  body.back() = 'y';
  pid_t writer = ::fork();
  if (writer == 0) {
    int fds[] = {write_end.get()};
    ::_exit(sandbox::SendMessage(pair.a.get(), body, fds) ? 0 : 1);
  }
  auto message = sandbox::ReceiveMessage(pair.b.get());
  ASSERT_TRUE(message) << message.error();
  int status = 0;
  ::waitpid(writer, &status, 0);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(message->body, body);
  ASSERT_EQ(message->fds.size(), 1u);
  // The passed descriptor is the pipe's write end: what we write through it comes out.
  ASSERT_EQ(::write(message->fds[0].get(), "ok", 2), 2);
  char got[2] = {};
  ASSERT_EQ(::read(read_end.get(), got, 2), 2);
  EXPECT_EQ(std::string(got, 2), "ok");
  EXPECT_NE(::fcntl(message->fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(FdPassing, EndOfFileAndOversizedBodiesFail) {
  {
    SocketPair pair;
    pair.a.reset();
    auto message = sandbox::ReceiveMessage(pair.b.get());
    ASSERT_FALSE(message);
    EXPECT_NE(message.error().find("closed"), std::string::npos) << message.error();
  }
  {
    SocketPair pair;
    ASSERT_TRUE(sandbox::SendMessage(pair.a.get(), std::string(100, 'x'), {}));
    auto message = sandbox::ReceiveMessage(pair.b.get(), 10);
    ASSERT_FALSE(message);
    EXPECT_NE(message.error().find("refused"), std::string::npos) << message.error();
  }
  {
    SocketPair pair;
    std::vector<int> too_many(sandbox::kMaxPassedFds + 1, 0);
    EXPECT_FALSE(sandbox::SendMessage(pair.a.get(), "x", too_many));
  }
  {
    SocketPair pair;
    pair.b.reset();  // EPIPE, reported (MSG_NOSIGNAL: no SIGPIPE)
    auto sent = sandbox::SendMessage(pair.a.get(), "x", {});
    ASSERT_FALSE(sent);
    EXPECT_NE(sent.error().find("Broken pipe"), std::string::npos) << sent.error();
  }
}

TEST(SpecWire, RoundTripKeepsEveryField) {
  sandbox::SandboxSpec spec;
  spec.rootfs.root = "/w/root";
  spec.rootfs.dirs = {"/w/root/etc", "/w/root/tmp"};
  spec.rootfs.binds = {{"/usr", "/w/root/usr", true},
                       {"/etc/hosts", "/w/root/x", false},
                       {"/srv/env", "/w/root/opt/codecell/packages", true, true}};
  spec.rootfs.symlinks = {{"usr/bin", "/w/root/bin"}};
  spec.rootfs.files = {{"/w/root/etc/passwd", std::string("a\0b\xff", 4)}};
  spec.rootfs.meta_files = {{"/w/root/run/codecell/code.py", "print('é')"}};
  spec.rootfs.tmp_seed_files = {{"/cache/fontlist.json", "/w/root/tmp/.matplotlib/f.json"}};
  spec.rootfs.overlay_options = "lowerdir=lower,upperdir=ws/upper,workdir=ws/work";
  spec.rootfs.owner_uid = 900003;
  spec.rootfs.owner_gid = 900004;
  spec.hostname = "codecell";
  spec.uid = 900003;
  spec.gid = 900004;
  spec.rlimits.processes = 17;
  spec.rlimits.address_space_bytes = 1ull << 33;

  sandbox::SandboxSpec back;
  auto text =
      sandbox::SpecToJson(spec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  ASSERT_TRUE(sandbox::SpecFromJson(nlohmann::json::parse(text), back));
  EXPECT_EQ(back.rootfs.root, "/w/root");
  EXPECT_EQ(back.rootfs.dirs, spec.rootfs.dirs);
  ASSERT_EQ(back.rootfs.binds.size(), 3u);
  EXPECT_FALSE(back.rootfs.binds[1].is_dir);
  EXPECT_FALSE(back.rootfs.binds[1].writable);
  EXPECT_TRUE(back.rootfs.binds[2].writable);
  EXPECT_EQ(back.rootfs.symlinks[0].path, "/w/root/bin");
  EXPECT_EQ(back.rootfs.files[0].content.substr(0, 3), std::string("a\0b", 3));
  EXPECT_EQ(back.rootfs.meta_files[0].content, "print('é')");
  EXPECT_EQ(back.rootfs.tmp_seed_files[0].path, "/w/root/tmp/.matplotlib/f.json");
  EXPECT_EQ(back.rootfs.overlay_options, spec.rootfs.overlay_options);
  EXPECT_EQ(back.rootfs.owner_gid, 900004u);
  EXPECT_EQ(back.uid, 900003u);
  EXPECT_EQ(back.rlimits.processes, 17u);
  EXPECT_EQ(back.rlimits.address_space_bytes, 1ull << 33);
}

TEST(SpecWire, MalformedSpecsAreRefusedWithTheReason) {
  sandbox::SandboxSpec spec;
  auto bad = sandbox::SpecFromJson(nlohmann::json::parse(R"({"rootfs": {"root": 5}})"), spec);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("malformed sandbox spec"), std::string::npos) << bad.error();
  EXPECT_FALSE(sandbox::SpecFromJson(nlohmann::json::parse("[]"), spec));
}

TEST(SpecWire, IdsAndLimitsMustBeUnsignedIntegersInRange) {
  // Found by tests/fuzz/fuzz_spec_wire: nlohmann converts 9e105 to uid_t with undefined
  // behaviour; a negative or fractional id or limit must be refused, not wrapped.
  sandbox::SandboxSpec spec;
  spec.uid = spec.gid = spec.rootfs.owner_uid = spec.rootfs.owner_gid = 900001;
  const nlohmann::json good = sandbox::SpecToJson(spec);
  ASSERT_TRUE(sandbox::SpecFromJson(good, spec));
  for (const nlohmann::json& value :
       {nlohmann::json(9e105), nlohmann::json(-1), nlohmann::json(1.5),
        nlohmann::json(uint64_t{1} << 32), nlohmann::json("900001")}) {
    nlohmann::json bad = good;
    bad["uid"] = value;
    EXPECT_FALSE(sandbox::SpecFromJson(bad, spec)) << value;
    bad = good;
    bad["rlimits"]["processes"] = value.is_number_unsigned() ? nlohmann::json(-7) : value;
    EXPECT_FALSE(sandbox::SpecFromJson(bad, spec)) << value;
  }
}

TEST(ZygoteSockets, OnlyThoseOfDeadServicesAreSwept) {
  TempDir dir;
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);  // reaped: its pid names nobody now
  const std::string stale = dir.path() + "/zygote-" + std::to_string(dead) + "-full.sock";
  const std::string live = dir.path() + "/zygote-" + std::to_string(::getpid()) + "-base.sock";
  const std::string other = dir.path() + "/zygote-notapid.sock";
  for (const auto& p : {stale, live, other}) std::ofstream(p) << "";
  EXPECT_EQ(exec::SweepStaleZygoteSockets(dir.path()), 1u);
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(std::filesystem::exists(other));
}

TEST(ZygoteChoice, HeavyImportsGoToTheFullZygote) {
  const auto preload = runner::DefaultPreload();
  EXPECT_FALSE(exec::WantsFullPreload("print('hi')", preload));
  EXPECT_FALSE(exec::WantsFullPreload("import json, math\nprint(json.dumps([math.pi]))", preload));
  EXPECT_TRUE(exec::WantsFullPreload("import pandas as pd", preload));
  EXPECT_TRUE(exec::WantsFullPreload("from matplotlib import pyplot", preload));
  EXPECT_TRUE(exec::WantsFullPreload("import scipy.stats", preload));
  EXPECT_TRUE(exec::WantsFullPreload("x = 1; import numpy", preload));
  EXPECT_TRUE(exec::WantsFullPreload("df = load_file('a.csv')", preload));
  EXPECT_TRUE(exec::WantsFullPreload("m = __import__('json')", preload));
  // Whole words only: names that merely contain a package's name stay on the base zygote.
  EXPECT_FALSE(exec::WantsFullPreload("numpyish = 1\nmy_pandas_count = 2", preload));
  EXPECT_FALSE(exec::WantsFullPreload("print('hi')", {}));
}

TEST(ZygoteClient, AMissingZygoteIsAClearError) {
  auto child = exec::AcquireWarmChild("/nonexistent/codecell-zygote.sock");
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().find("no zygote at /nonexistent/codecell-zygote.sock"), std::string::npos)
      << child.error();
  EXPECT_FALSE(exec::AcquireWarmChild(std::string(200, 'x')));  // longer than sun_path
}

TEST(WarmInit, TheEmbeddedProgramIsAnElfExecutable) {
  std::string_view image = sandbox::WarmInitImage();
  ASSERT_GT(image.size(), 1000u);
  EXPECT_EQ(image.substr(0, 4), std::string_view("\x7f"
                                                 "ELF",
                                                 4));
  auto memfd = sandbox::WarmInitMemfd();
  ASSERT_TRUE(memfd) << memfd.error();
  struct stat st {};
  ASSERT_EQ(::fstat(memfd->get(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), image.size());
  // Sealed: nobody can change what every warm child's pid 1 runs.
  EXPECT_EQ(::write(memfd->get(), "x", 1), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST(CgroupV2, AdoptSetsLimitsAndCountsCpuFromAdoption) {
  TempDir tree;
  std::ofstream(tree.path() + "/cgroup.controllers") << "cpu memory pids\n";
  auto layout = sandbox::CgroupLayout::V2At(tree.path());
  auto idle = sandbox::ExecutionCgroup::Create(layout, "warm-1", {.cpus = 1});
  ASSERT_TRUE(idle) << idle.error();
  std::string dir = tree.path() + "/warm-1";
  std::ofstream(dir + "/cpu.stat") << "usage_usec 400000\n";  // spent while idle
  idle->Release();                                            // handed to the client
  ASSERT_TRUE(std::filesystem::exists(dir));

  auto adopted = sandbox::ExecutionCgroup::Adopt(layout, "warm-1", {128ull << 20, 9, 0});
  ASSERT_TRUE(adopted) << adopted.error();
  EXPECT_EQ(*sandbox::ReadFileToString(dir + "/memory.max"), "134217728");
  EXPECT_EQ(*sandbox::ReadFileToString(dir + "/pids.max"), "9");
  EXPECT_EQ(*sandbox::ReadFileToString(dir + "/cpu.max"), "max 100000");  // cpus 0 lifts it
  std::ofstream(dir + "/cpu.stat") << "usage_usec 650000\n";
  EXPECT_DOUBLE_EQ(adopted->ReadStats().cpu_seconds.value_or(-1), 0.25);

  EXPECT_FALSE(sandbox::ExecutionCgroup::Adopt(layout, "warm-gone", {}));
}

TEST(ProcessStrings, AWarmChildShowsTheInterpretersCommandLineAndEnvironment) {
  // In a child: the areas are this test binary's own argv and environment, found where the kernel
  // says they are (/proc/self/stat fields 48-51: arg_start, arg_end, env_start, env_end).
  pid_t pid = ::fork();
  if (pid == 0) {
    auto stat = sandbox::ReadFileToString("/proc/self/stat");
    if (!stat) ::_exit(2);
    std::istringstream fields(stat->substr(stat->rfind(')') + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
    if (f.size() < 50) ::_exit(3);
    auto area = [&](size_t begin_field) {
      char* p = reinterpret_cast<char*>(std::stoull(f[begin_field - 3]));
      char* end = reinterpret_cast<char*>(std::stoull(f[begin_field - 2]));
      std::vector<char*> strings;
      for (; p < end; p += std::strlen(p) + 1) strings.push_back(p);
      strings.push_back(nullptr);
      return strings;
    };
    std::vector<char*> args = area(48), env = area(50);
    sandbox::RegisterProcessStrings(static_cast<int>(args.size() - 1), args.data(), env.data());
    const char* argv[] = {"/usr/bin/python3", "-I", "/run/codecell/runner.py", nullptr};
    const char* envp[] = {"PATH=/usr/bin", nullptr};
    sandbox::SetProcessStrings(argv, envp);
    auto cmdline = sandbox::ReadFileToString("/proc/self/cmdline");
    auto environ_text = sandbox::ReadFileToString("/proc/self/environ");
    bool ok = cmdline && cmdline->starts_with(std::string("/usr/bin/python3\0-I\0", 20)) &&
              environ_text && environ_text->starts_with(std::string("PATH=/usr/bin\0", 14)) &&
              environ_text->find("HOME=") == std::string::npos;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "/proc/self/cmdline or environ did not show the replacement strings";
}

TEST(WarmSettings, TomlAndEnvironment) {
  for (const char* v : {"CODECELL_WARM_INTERPRETERS", "CODECELL_ZYGOTE_POOL", "CODECELL_PRELOAD",
                        "CODECELL_CONFIG"}) {
    ::unsetenv(v);
  }
  auto defaults = api::LoadServiceConfig({});
  ASSERT_TRUE(defaults) << defaults.error();
  EXPECT_TRUE(defaults->warm.enabled);
  EXPECT_EQ(defaults->warm.pool_size, 4u);
  EXPECT_EQ(defaults->warm.preload, runner::DefaultPreload());

  TempDir dir;
  std::string path = dir.path() + "/c.toml";
  std::ofstream(path) << "[interpreters]\nwarm = false\npool = 7\npreload = [\"numpy\"]\n";
  api::ConfigOverrides flags;
  flags.config_file = path;
  auto from_file = api::LoadServiceConfig(flags);
  ASSERT_TRUE(from_file) << from_file.error();
  EXPECT_FALSE(from_file->warm.enabled);
  EXPECT_EQ(from_file->warm.pool_size, 7u);
  EXPECT_EQ(from_file->warm.preload, std::vector<std::string>{"numpy"});

  ::setenv("CODECELL_WARM_INTERPRETERS", "1", 1);
  ::setenv("CODECELL_PRELOAD", "pandas, scipy.stats", 1);
  auto from_env = api::LoadServiceConfig(flags);
  ASSERT_TRUE(from_env) << from_env.error();
  EXPECT_TRUE(from_env->warm.enabled);
  EXPECT_EQ(from_env->warm.preload, (std::vector<std::string>{"pandas", "scipy.stats"}));

  ::setenv("CODECELL_WARM_INTERPRETERS", "maybe", 1);
  auto bad = api::LoadServiceConfig({});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("CODECELL_WARM_INTERPRETERS"), std::string::npos);
  ::setenv("CODECELL_WARM_INTERPRETERS", "true", 1);
  ::setenv("CODECELL_ZYGOTE_POOL", "0", 1);
  EXPECT_FALSE(api::LoadServiceConfig({}));
  std::ofstream(path) << "[interpreters]\npool = 100\n";
  ::unsetenv("CODECELL_ZYGOTE_POOL");
  auto too_big = api::LoadServiceConfig(flags);
  ASSERT_FALSE(too_big);
  EXPECT_NE(too_big.error().find("interpreters.pool"), std::string::npos);
  for (const char* v : {"CODECELL_WARM_INTERPRETERS", "CODECELL_ZYGOTE_POOL", "CODECELL_PRELOAD"}) {
    ::unsetenv(v);
  }
}

}  // namespace
}  // namespace codecell
