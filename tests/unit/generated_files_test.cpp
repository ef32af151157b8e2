#include "exec/generated_files.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "exec/workspace.h"
#include "test_support.h"

namespace codecell::exec {
namespace {

namespace fs = std::filesystem;
using codecell::testing::TempDir;

void Put(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string Get(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Layers {
  TempDir tmp;
  std::string upper = tmp.path() + "/upper", lower = tmp.path() + "/lower",
              dest = tmp.path() + "/dest";
  Layers() {
    fs::create_directories(upper);
    fs::create_directories(lower);
  }
};

TEST(CollectGeneratedFiles, NewModifiedAndNestedFilesAreCollected) {
  Layers l;
  Put(l.lower + "/data.csv", "a,b\n1,2\n");
  Put(l.upper + "/data.csv", "a,b\n1,2\n3,4\n");  // modified input
  Put(l.upper + "/plot.png", "PNG");
  Put(l.upper + "/out/deep/result.json", "{}");
  Collection c = CollectGeneratedFiles(l.upper, l.lower, l.dest, {});
  ASSERT_TRUE(c.error.empty()) << c.error;
  ASSERT_EQ(c.files.size(), 3u);
  EXPECT_EQ(c.files[0].relative_path, "data.csv");
  EXPECT_EQ(c.files[1].relative_path, "out/deep/result.json");
  EXPECT_EQ(c.files[2].relative_path, "plot.png");
  EXPECT_EQ(Get(l.dest + "/data.csv"), "a,b\n1,2\n3,4\n");
  EXPECT_EQ(Get(l.dest + "/out/deep/result.json"), "{}");
  EXPECT_TRUE(c.skipped.empty());
}

// What overlayfs's copy-up keeps of the lower file: its mtime.
void CopyMtime(const std::string& from, const std::string& to) {
  struct stat st {};
  ASSERT_EQ(::stat(from.c_str(), &st), 0);
  const timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, to.c_str(), times, 0), 0);
}

void SetMtime(const std::string& path, time_t seconds) {
  const timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

TEST(CollectGeneratedFiles, OnlyCopiedUpIsNotGeneratedButWrittenWithTheSameBytesIs) {
  Layers l;
  Put(l.lower + "/same.csv", "x\n1\n");
  Put(l.upper + "/same.csv", "x\n1\n");  // opened for writing (or chmod): copied up, not written
  Put(l.lower + "/sized.csv", "x\n1\n");
  Put(l.upper + "/sized.csv", "x\n2\n");  // same size, other bytes: modified
  Put(l.lower + "/rewritten.txt", "same");
  Put(l.upper + "/rewritten.txt", "same");  // written again with the same bytes: a new mtime
  Put(l.lower + "/touched.txt", "t");
  Put(l.upper + "/touched.txt", "t");
  for (const char* name : {"/same.csv", "/sized.csv", "/rewritten.txt", "/touched.txt"}) {
    SetMtime(l.lower + name, 1700000000);
  }
  CopyMtime(l.lower + "/same.csv", l.upper + "/same.csv");
  CopyMtime(l.lower + "/sized.csv", l.upper + "/sized.csv");
  SetMtime(l.upper + "/touched.txt", 1700000001);  // os.utime / touch: same bytes, new mtime
  Collection c = CollectGeneratedFiles(l.upper, l.lower, l.dest, {});
  ASSERT_EQ(c.files.size(), 3u);
  EXPECT_EQ(c.files[0].relative_path, "rewritten.txt");
  EXPECT_EQ(c.files[1].relative_path, "sized.csv");
  EXPECT_EQ(c.files[2].relative_path, "touched.txt");
  EXPECT_EQ(Get(l.dest + "/rewritten.txt"), "same");
}

TEST(CollectGeneratedFiles, AFileThatDoesNotFitIsSkippedWithAReasonAndTheRestAreKept) {
  REQUIRE_ROOT();
  // A full disk: the destination on a 64 KiB tmpfs, in a private mount namespace so that it
  // never shows on the host even if this test dies.
  ASSERT_TRUE(EnterPrivateMountNamespace());
  Layers l;
  fs::create_directories(l.dest);
  ASSERT_EQ(::mount("tmpfs", l.dest.c_str(), "tmpfs", 0, "size=64k"), 0) << std::strerror(errno);
  Put(l.upper + "/a_small.txt", "fits");
  Put(l.upper + "/b_big.bin", std::string(1 << 20, 'x'));
  Put(l.upper + "/c_small.txt", "fits too, after the partial copy of b_big.bin was removed");
  Collection c = CollectGeneratedFiles(l.upper, l.lower, l.dest, {});
  ::umount2(l.dest.c_str(), MNT_DETACH);
  ASSERT_TRUE(c.error.empty()) << c.error;
  ASSERT_EQ(c.files.size(), 2u);
  EXPECT_EQ(c.files[0].relative_path, "a_small.txt");
  EXPECT_EQ(c.files[1].relative_path, "c_small.txt");
  ASSERT_EQ(c.skipped.size(), 1u);
  EXPECT_EQ(c.skipped[0].relative_path, "b_big.bin");
  EXPECT_EQ(c.skipped[0].size, 1u << 20);
  EXPECT_EQ(c.skipped[0].reason, "not stored: the service's storage is full");
}

TEST(CollectGeneratedFiles, SymlinksAreNeverFollowed) {
  Layers l;
  Put(l.tmp.path() + "/host-secret", "SECRET");
  ASSERT_EQ(::symlink((l.tmp.path() + "/host-secret").c_str(), (l.upper + "/link.txt").c_str()), 0);
  ASSERT_EQ(::symlink(l.tmp.path().c_str(), (l.upper + "/linkdir").c_str()), 0);
  Collection c = CollectGeneratedFiles(l.upper, l.lower, l.dest, {});
  EXPECT_TRUE(c.files.empty());
  ASSERT_EQ(c.skipped.size(), 2u);
  EXPECT_EQ(c.skipped[0].reason, "symlink");
  EXPECT_EQ(c.skipped[1].reason, "symlink");
  EXPECT_FALSE(fs::exists(l.dest + "/link.txt"));
  EXPECT_FALSE(fs::exists(l.dest + "/linkdir"));
}

TEST(CollectGeneratedFiles, WhiteoutsAreDeletionsNotFiles) {
  REQUIRE_ROOT();
  Layers l;
  Put(l.lower + "/gone.csv", "x");
  ASSERT_EQ(::mknod((l.upper + "/gone.csv").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);
  ASSERT_EQ(::mkfifo((l.upper + "/pipe").c_str(), 0644), 0);
  Collection c = CollectGeneratedFiles(l.upper, l.lower, l.dest, {});
  EXPECT_TRUE(c.files.empty());
  ASSERT_EQ(c.skipped.size(), 1u);
  EXPECT_EQ(c.skipped[0].relative_path, "pipe");
  EXPECT_EQ(c.skipped[0].reason, "not a regular file");
}

TEST(CollectGeneratedFiles, CountAndSizeLimitsSkipTheRest) {
  Layers l;
  Put(l.upper + "/a.txt", "1");
  Put(l.upper + "/b.txt", "22");
  Put(l.upper + "/big.bin", std::string(100, 'x'));
  Put(l.upper + "/c.txt", "3");
  Collection c = CollectGeneratedFiles(l.upper, l.lower, l.dest, {2, 50});
  ASSERT_EQ(c.files.size(), 2u);
  EXPECT_EQ(c.files[0].relative_path, "a.txt");
  EXPECT_EQ(c.files[1].relative_path, "b.txt");
  ASSERT_EQ(c.skipped.size(), 2u);
  EXPECT_EQ(c.skipped[0].relative_path, "big.bin");
  EXPECT_NE(c.skipped[0].reason.find("larger"), std::string::npos);
  EXPECT_EQ(c.skipped[1].relative_path, "c.txt");
  EXPECT_NE(c.skipped[1].reason.find("2 files"), std::string::npos);
}

TEST(Workspace, InputsGetUniqueNamesOwnedByTheSlotAndStaleDirsAreSwept) {
  REQUIRE_ROOT();
  // Workspace mounts a tmpfs: keep it out of the host's mount table even if this test dies.
  ASSERT_TRUE(EnterPrivateMountNamespace());
  TempDir tmp;
  Put(tmp.path() + "/src/data.csv", "a\n1\n");
  auto ws = Workspace::Create(tmp.path() + "/work", "exec_test", 1 << 20, 900995, 900995);
  ASSERT_TRUE(ws) << ws.error();
  auto first = ws->AddInput(tmp.path() + "/src/data.csv", "data.csv");
  auto second = ws->AddInput(tmp.path() + "/src/data.csv", "data.csv");
  auto evil = ws->AddInput(tmp.path() + "/src/data.csv", "../../etc/passwd");
  ASSERT_TRUE(first && second && evil);
  EXPECT_EQ(*first, "data.csv");
  EXPECT_EQ(*second, "data (2).csv");
  EXPECT_EQ(*evil, "_.._etc_passwd");
  struct stat st {
  }, source{};
  ASSERT_EQ(::stat((ws->lower() + "/data (2).csv").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 900995u);
  // The source's mtime to the second, so that a write in the same clock tick still changes it.
  ASSERT_EQ(::stat((tmp.path() + "/src/data.csv").c_str(), &source), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, source.st_mtim.tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, 0);
  EXPECT_FALSE(ws->AddInput(tmp.path() + "/missing", "x"));

  // A leftover of a dead run (no lock held) goes; the live workspace stays.
  fs::create_directories(tmp.path() + "/work/exec_dead/lower");
  Put(tmp.path() + "/work/exec_dead/lock", "");
  Workspace::SweepStale(tmp.path() + "/work");  // too young to judge: kept
  EXPECT_TRUE(fs::exists(tmp.path() + "/work/exec_dead"));
  Workspace::SweepStale(tmp.path() + "/work", 0);
  EXPECT_FALSE(fs::exists(tmp.path() + "/work/exec_dead"));
  EXPECT_TRUE(fs::exists(ws->lower()));
  std::string dir = ws->dir();
  { Workspace gone = std::move(ws.value()); }
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace codecell::exec
