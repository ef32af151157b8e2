#include "sandbox/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "sandbox/file_io.h"
#include "test_support.h"

namespace codecell::sandbox {
namespace {

using codecell::testing::TempDir;

void Put(const std::string& path, const std::string& content) { std::ofstream(path) << content; }

std::string Get(const std::string& path) {
  auto r = ReadFileToString(path);
  return r ? *r : "<" + r.error() + ">";
}

TEST(CgroupV2, LimitsAndStatsOnAFakeTree) {
  TempDir tree;
  Put(tree.path() + "/cgroup.controllers", "cpuset cpu io memory pids\n");
  CgroupLayout layout = CgroupLayout::V2At(tree.path());
  EXPECT_EQ(layout.mode, CgroupMode::kV2);
  EXPECT_TRUE(layout.memory);
  EXPECT_TRUE(layout.pids);
  EXPECT_TRUE(layout.missing.empty());

  EXPECT_TRUE(layout.cpu_limit);
  auto cg = ExecutionCgroup::Create(layout, "exec1", {256ull << 20, 10, 0.5});
  ASSERT_TRUE(cg) << cg.error();
  std::string dir = tree.path() + "/exec1";
  EXPECT_EQ(Get(dir + "/cpu.max"), "50000 100000");
  EXPECT_EQ(Get(dir + "/memory.max"), "268435456");
  EXPECT_EQ(Get(dir + "/pids.max"), "10");
  EXPECT_EQ(Get(dir + "/memory.oom.group"), "1");
  EXPECT_EQ(Get(dir + "/memory.swap.max"), "0");
  EXPECT_EQ(cg->procs_fds().size(), 1u);
  EXPECT_TRUE(cg->limits_memory());

  Put(dir + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n");
  Put(dir + "/memory.peak", "12345\n");
  Put(dir + "/cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n");
  CgroupStats stats = cg->ReadStats();
  EXPECT_EQ(stats.oom_kills, 2u);
  EXPECT_EQ(stats.peak_memory_bytes.value_or(0), 12345u);
  EXPECT_DOUBLE_EQ(stats.cpu_seconds.value_or(0), 1.5);

  cg->KillAll();  // v2: one write to cgroup.kill
  EXPECT_EQ(Get(dir + "/cgroup.kill"), "1");
}

TEST(CgroupV2, MissingControllersAreNamed) {
  TempDir tree;
  Put(tree.path() + "/cgroup.controllers", "io cpu\n");  // last word, no trailing space
  CgroupLayout layout = CgroupLayout::V2At(tree.path());
  EXPECT_FALSE(layout.memory);
  EXPECT_FALSE(layout.pids);
  EXPECT_TRUE(layout.cpu_limit);
  ASSERT_EQ(layout.missing.size(), 2u);
  EXPECT_NE(layout.missing[0].find("memory"), std::string::npos);
  auto cg = ExecutionCgroup::Create(layout, "exec2", {});
  ASSERT_TRUE(cg) << cg.error();
  EXPECT_FALSE(cg->limits_memory());
  EXPECT_FALSE(cg->limits_processes());
}

TEST(CgroupV2, CreateFailsClearlyWhenTheBaseIsGone) {
  CgroupLayout layout = CgroupLayout::V2At("/nonexistent/codecell-test");
  auto cg = ExecutionCgroup::Create(layout, "exec", {});
  ASSERT_FALSE(cg);
  EXPECT_NE(cg.error().find("No such file"), std::string::npos) << cg.error();
}

TEST(DetectCgroups, HybridHostUsesV1AndIgnoresAnEmptyUnifiedTree) {
  TempDir tree;
  for (const char* c : {"memory", "pids", "cpuacct", "cpu", "unified"}) {
    std::filesystem::create_directories(tree.path() + "/" + c + "/mine");
  }
  Put(tree.path() + "/unified/cgroup.controllers", "");
  std::string t = tree.path();
  std::string mountinfo = "30 25 0:26 / " + t + "/unified rw - cgroup2 cgroup2 rw\n";
  int id = 31;
  for (const char* c : {"memory", "pids", "cpuacct", "cpu"}) {
    mountinfo +=
        std::to_string(id++) + " 25 0:27 / " + t + "/" + c + " rw - cgroup cgroup rw," + c + "\n";
  }
  Put(t + "/mountinfo", mountinfo);
  Put(t + "/self", "4:memory:/mine\n8:pids:/mine\n2:cpuacct:/mine\n1:cpu:/mine\n0::/\n");
  ::unsetenv("CODECELL_CGROUP_V2_BASE");
  CgroupLayout layout = DetectCgroups(t + "/mountinfo", t + "/self");
  EXPECT_EQ(layout.mode, CgroupMode::kV1);
  EXPECT_TRUE(layout.memory && layout.pids && layout.cpu_accounting);
  EXPECT_EQ(layout.v1_memory, t + "/memory/mine/codecell");
  EXPECT_TRUE(std::filesystem::is_directory(layout.v1_pids));

  EXPECT_TRUE(layout.cpu_limit) << layout.Describe();
  auto cg = ExecutionCgroup::Create(layout, "e", {64ull << 20, 5, 1.5});
  ASSERT_TRUE(cg) << cg.error();
  EXPECT_EQ(Get(layout.v1_cpu + "/e/cpu.cfs_quota_us"), "150000");
  EXPECT_EQ(Get(layout.v1_cpu + "/e/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(Get(layout.v1_memory + "/e/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(Get(layout.v1_pids + "/e/pids.max"), "5");
  EXPECT_EQ(cg->procs_fds().size(), 4u);
  Put(layout.v1_memory + "/e/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  Put(layout.v1_memory + "/e/memory.max_usage_in_bytes", "999\n");
  Put(layout.v1_cpuacct + "/e/cpuacct.usage", "2500000000\n");
  CgroupStats stats = cg->ReadStats();
  EXPECT_EQ(stats.oom_kills, 1u);
  EXPECT_EQ(stats.peak_memory_bytes.value_or(0), 999u);
  EXPECT_DOUBLE_EQ(stats.cpu_seconds.value_or(0), 2.5);
}

TEST(DetectCgroups, PureV2HostEnablesControllersAndMakesABase) {
  TempDir tree;
  std::string t = tree.path();
  std::filesystem::create_directories(t + "/cg");
  Put(t + "/cg/cgroup.controllers", "cpu memory pids\n");
  Put(t + "/cg/cgroup.subtree_control", "");
  Put(t + "/mountinfo", "30 25 0:26 / " + t + "/cg rw - cgroup2 cgroup2 rw\n");
  Put(t + "/self", "0::/\n");
  // Our fake base has no cgroup.controllers of its own until the "kernel" writes one.
  std::filesystem::create_directories(t + "/cg/codecell");
  Put(t + "/cg/codecell/cgroup.controllers", "cpu memory pids\n");
  ::unsetenv("CODECELL_CGROUP_V2_BASE");
  CgroupLayout layout = DetectCgroups(t + "/mountinfo", t + "/self");
  ASSERT_EQ(layout.mode, CgroupMode::kV2) << layout.Describe();
  EXPECT_EQ(layout.v2_base, t + "/cg/codecell");
  EXPECT_EQ(Get(t + "/cg/cgroup.subtree_control"), "+memory +pids +cpu");
  EXPECT_TRUE(layout.memory && layout.pids);
}

TEST(DetectCgroups, NoCgroupsSaysWhatIsMissing) {
  TempDir tree;
  Put(tree.path() + "/mountinfo", "22 1 0:21 / /proc rw - proc proc rw\n");
  Put(tree.path() + "/self", "0::/\n");
  ::unsetenv("CODECELL_CGROUP_V2_BASE");
  CgroupLayout layout = DetectCgroups(tree.path() + "/mountinfo", tree.path() + "/self");
  EXPECT_EQ(layout.mode, CgroupMode::kNone);
  ASSERT_FALSE(layout.missing.empty());
  EXPECT_NE(layout.Describe().find("RLIMIT_AS"), std::string::npos);
}

TEST(CgroupHost, RealControllersOnThisMachine) {
  REQUIRE_ROOT();
  CgroupLayout layout = DetectCgroups();
  REQUIRE_OR_SKIP(layout.memory && layout.pids,
                  "this host offers no memory and pids cgroup controllers: " + layout.Describe());
  auto cg =
      ExecutionCgroup::Create(layout, "unit-test-" + std::to_string(::getpid()), {96ull << 20, 7});
  ASSERT_TRUE(cg) << cg.error();
  // v1 keeps one directory per controller, in the order memory, pids, cpuacct.
  std::string pids_dir = cg->dirs()[layout.mode == CgroupMode::kV2 ? 0 : 1];
  EXPECT_EQ(Get(pids_dir + "/pids.max"), "7\n");
  std::string dir0 = cg->dirs()[0];
  { ExecutionCgroup gone = std::move(cg.value()); }
  EXPECT_FALSE(std::filesystem::exists(dir0)) << "cgroup not removed";
}

TEST(FileIo, ErrorPathsCarryErrno) {
  SysResult full = WriteStringToFile("/dev/full", "x");
  EXPECT_EQ(full.err, ENOSPC);
  SysResult missing = WriteStringToFile("/nonexistent-dir/file", "x");
  EXPECT_EQ(missing.err, ENOENT);
  auto read = ReadFileToString("/nonexistent-file");
  EXPECT_FALSE(read);
  auto limited = ReadFileToString("/dev/zero", 100);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->size(), 100u);
}

TEST(FileIo, CopyFileNeverFollowsASymlinkAndSaysWhy) {
  codecell::testing::TempDir tmp;
  const std::string src = tmp.path() + "/src", dst = tmp.path() + "/dst";
  ASSERT_TRUE(WriteStringToFile(src, "bytes").ok());
  ASSERT_TRUE(CopyFile(src, dst, 0600).ok());
  EXPECT_EQ(*ReadFileToString(dst), "bytes");
  EXPECT_EQ(CopyFile(tmp.path() + "/none", dst, 0600).err, ENOENT);
  ASSERT_EQ(::symlink(src.c_str(), (tmp.path() + "/link").c_str()), 0);
  EXPECT_EQ(CopyFile(tmp.path() + "/link", dst, 0600).err, ELOOP);
  // A symlinked target is refused, and what it points at is untouched.
  EXPECT_EQ(CopyFile(dst, tmp.path() + "/link", 0600).err, ELOOP);
  EXPECT_EQ(*ReadFileToString(src), "bytes");
}

// Keeping holes needs a filesystem with holes (ext4, xfs, btrfs, tmpfs): the test's TempDir.
TEST(FileIo, CopyFileKeepsHolesAndTurnsZeroBlocksIntoHoles) {
  codecell::testing::TempDir tmp;
  const std::string sparse = tmp.path() + "/sparse", copy = tmp.path() + "/copy";
  const off_t size = 45 << 20;
  {
    int fd = ::open(sparse.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "head", 4, 0), 4);
    ASSERT_EQ(::pwrite(fd, "middle", 6, 20 << 20), 6);
    ASSERT_EQ(::pwrite(fd, "tail", 4, size - 4), 4);
    ::close(fd);
  }
  struct stat src {};
  ASSERT_EQ(::stat(sparse.c_str(), &src), 0);
  REQUIRE_OR_SKIP(src.st_blocks * 512 < (1 << 20), "the temporary directory keeps no holes");
  ASSERT_TRUE(CopyFile(sparse, copy, 0600).ok());
  struct stat dst {};
  ASSERT_EQ(::stat(copy.c_str(), &dst), 0);
  EXPECT_EQ(dst.st_size, size);
  EXPECT_LT(dst.st_blocks * 512, 1 << 20) << "the copy of a 45 MiB sparse file is not sparse";
  EXPECT_EQ(*ReadFileToString(copy, size), *ReadFileToString(sparse, size));

  // Zeros written out, between data that is not block-aligned: the same bytes, on fewer blocks.
  std::string bytes(3 << 20, '\0');
  bytes.replace(5, 3, "abc");
  bytes.replace((1 << 20) + 4095, 2, "de");  // across a block boundary
  bytes.back() = 'z';
  ASSERT_TRUE(WriteStringToFile(sparse, bytes).ok());
  ASSERT_TRUE(CopyFile(sparse, copy, 0600).ok());
  EXPECT_EQ(*ReadFileToString(copy, 4 << 20), bytes);
  ASSERT_EQ(::stat(copy.c_str(), &dst), 0);
  EXPECT_LT(dst.st_blocks * 512, 256 << 10);

  // A file that ends in a hole keeps its size; an empty file stays empty.
  ASSERT_TRUE(WriteStringToFile(sparse, "").ok());
  ASSERT_EQ(::truncate(sparse.c_str(), 12345), 0);
  ASSERT_TRUE(CopyFile(sparse, copy, 0600).ok());
  EXPECT_EQ(*ReadFileToString(copy), std::string(12345, '\0'));
  ASSERT_TRUE(WriteStringToFile(sparse, "").ok());
  ASSERT_TRUE(CopyFile(sparse, copy, 0600).ok());
  EXPECT_EQ(*ReadFileToString(copy), "");
}

}  // namespace
}  // namespace codecell::sandbox

namespace codecell::sandbox {
namespace {

TEST(SweepStaleCgroups, RemovesLeftoversButNotBusyOnes) {
  REQUIRE_ROOT();
  CgroupLayout layout = DetectCgroups();
  REQUIRE_OR_SKIP(layout.pids, "no pids controller: " + layout.Describe());
  std::string base = layout.mode == CgroupMode::kV2 ? layout.v2_base : layout.v1_pids;
  std::string stale = base + "/stale-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(stale.c_str(), 0755), 0);
  // A busy cgroup: a live child process inside.
  auto busy = ExecutionCgroup::Create(layout, "busy-" + std::to_string(::getpid()), {});
  ASSERT_TRUE(busy) << busy.error();
  pid_t child = ::fork();
  if (child == 0) {
    for (int fd : busy->procs_fds()) (void)!::write(fd, "0", 1);
    ::pause();
    ::_exit(0);
  }
  ::usleep(100000);
  SweepStaleCgroups(layout);  // the default minimum age spares a cgroup made a moment ago
  EXPECT_TRUE(std::filesystem::exists(stale));
  SweepStaleCgroups(layout, 0);
  EXPECT_FALSE(std::filesystem::exists(stale));
  for (const auto& dir : busy->dirs()) EXPECT_TRUE(std::filesystem::exists(dir)) << dir;
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace codecell::sandbox
