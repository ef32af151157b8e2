#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "api/config.h"
#include "packages/allowlist.h"
#include "packages/environment.h"
#include "sandbox/seccomp_filter.h"
#include "store/store.h"
#include "test_support.h"

namespace codecell::packages {
namespace {

namespace fs = std::filesystem;
using codecell::testing::TempDir;

TEST(Allowlist, NormalizesNamesAsPep503) {
  EXPECT_EQ(NormalizeName("Scikit_Learn"), "scikit-learn");
  EXPECT_EQ(NormalizeName("zope.interface"), "zope-interface");
  EXPECT_EQ(NormalizeName("a-_.b"), "a-b");
}

TEST(Allowlist, DefaultMapsImportNamesToDistributions) {
  Allowlist list = Allowlist::Default();
  for (auto [import_name, distribution] : {std::pair{"sklearn", "scikit-learn"},
                                           {"cv2", "opencv-python-headless"},
                                           {"PIL", "pillow"},
                                           {"yaml", "pyyaml"},
                                           {"skimage", "scikit-image"},
                                           {"dateutil", "python-dateutil"}}) {
    auto entry = list.Find(import_name);
    ASSERT_TRUE(entry) << import_name;
    EXPECT_EQ(entry->distribution, distribution);
    // The distribution's own name finds the same entry, in any spelling.
    auto by_dist = list.Find(distribution);
    ASSERT_TRUE(by_dist) << distribution;
    EXPECT_EQ(by_dist->import_name, import_name);
  }
  EXPECT_TRUE(list.Find("Scikit_Learn"));
  EXPECT_GE(list.entries().size(), 45u);
  EXPECT_FALSE(list.Find("requests"));
  EXPECT_FALSE(list.Find("os"));
}

TEST(Allowlist, FindImportUsesTheTopLevelPackage) {
  Allowlist list = Allowlist::Default();
  auto entry = list.FindImport("sklearn.linear_model");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->distribution, "scikit-learn");
  EXPECT_FALSE(list.FindImport("scikit"));
}

TEST(Allowlist, RefusesWhatIsNotANameOrRequirement) {
  Allowlist list;
  EXPECT_EQ(list.Add("plotly", "plotly==5.18.0"), "");
  EXPECT_EQ(list.Find("plotly")->requirement, "plotly==5.18.0");
  EXPECT_NE(list.Add("1bad", "x"), "");
  EXPECT_NE(list.Add("ok", "https://evil.example/x.whl"), "");
  EXPECT_NE(list.Add("ok", "x @ file:///etc/passwd"), "");
  EXPECT_NE(list.Add("ok", "--index-url=http://x"), "");
  EXPECT_FALSE(ValidPackageName("--pre"));
  EXPECT_FALSE(ValidPackageName("../x"));
  EXPECT_FALSE(ValidPackageName("x==1"));
  EXPECT_TRUE(ValidPackageName("more-itertools"));
}

TEST(Allowlist, MissingModuleReadsTheLastTraceback) {
  EXPECT_EQ(MissingModule("Traceback...\nModuleNotFoundError: No module named 'plotly.express'\n"),
            "plotly");
  EXPECT_EQ(MissingModule("ModuleNotFoundError: No module named 'a'\n"
                          "ModuleNotFoundError: No module named 'b'\n"),
            "b");
  EXPECT_EQ(MissingModule("ImportError: cannot import name 'x'"), "");
  EXPECT_EQ(MissingModule("ModuleNotFoundError: No module named '../etc'"), "");
}

void Touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

TEST(PackageEnvironment, InstallsAreNewEnvironmentsAndOldOnesGoWhenUnused) {
  REQUIRE_ROOT();  // chown to the installer's uid
  TempDir tmp;
  PackageEnvironment env(tmp.path() + "/packages");
  ASSERT_TRUE(env.Init().ok());
  auto none = env.Acquire();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none.value());  // no environment yet

  auto lock = env.LockBuild();
  ASSERT_TRUE(lock);
  auto first = env.CreatePartial(lock.value(), true, 899999, 899999);
  ASSERT_TRUE(first) << first.error();
  struct stat st {};
  ASSERT_EQ(::stat(first->c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 899999u);  // pip may write here
  Touch(*first + "/local/lib/python3.11/dist-packages/alpha/__init__.py");
  fs::create_directories(*first + "/local/lib/python3.11/dist-packages/alpha-1.0.dist-info");
  // A half-built environment is never what Acquire gives.
  EXPECT_FALSE(env.Acquire().value());
  auto name1 = env.Commit(lock.value(), *first);
  ASSERT_TRUE(name1) << name1.error();
  EXPECT_EQ(env.CurrentName(), *name1);
  const std::string path1 = env.root() + "/envs/" + *name1;
  const std::string alpha = path1 + "/local/lib/python3.11/dist-packages/alpha/__init__.py";
  ASSERT_EQ(::stat(alpha.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // handed to root once live
  auto dists = PackageEnvironment::ListDistributions(path1);
  ASSERT_EQ(dists.size(), 1u);
  EXPECT_EQ(dists[0].name, "alpha");
  EXPECT_EQ(dists[0].version, "1.0");

  // An execution holds the first environment while the next one goes live.
  auto held = env.Acquire();
  ASSERT_TRUE(held && held.value());
  EXPECT_EQ(held.value()->path(), path1);
  auto second = env.CreatePartial(lock.value(), true, 899999, 899999);
  ASSERT_TRUE(second);
  const std::string copied = *second + "/local/lib/python3.11/dist-packages/alpha/__init__.py";
  struct stat st2 {};
  ASSERT_EQ(::stat(copied.c_str(), &st2), 0);
  EXPECT_EQ(st2.st_ino, st.st_ino);  // a hard link, not a copy
  EXPECT_EQ(st2.st_uid, 0u);         // pip cannot write into the live environment's inode
  auto name2 = env.Commit(lock.value(), *second);
  ASSERT_TRUE(name2);
  EXPECT_NE(*name1, *name2);
  EXPECT_EQ(env.SweepUnused(&lock.value()), 0u);  // still held
  EXPECT_TRUE(fs::exists(alpha));
  held.value().reset();
  EXPECT_EQ(env.SweepUnused(&lock.value()), 1u);
  EXPECT_FALSE(fs::exists(path1));
  EXPECT_TRUE(fs::exists(env.root() + "/envs/" + *name2));

  // A failed build leaves the live environment alone; a crashed one is swept with the lock.
  auto failed = env.CreatePartial(lock.value(), true, 899999, 899999);
  ASSERT_TRUE(failed);
  env.Discard(*failed);
  EXPECT_FALSE(fs::exists(*failed));
  auto crashed = env.CreatePartial(lock.value(), false, 899999, 899999);
  ASSERT_TRUE(crashed);
  EXPECT_EQ(env.SweepUnused(nullptr), 0u);  // without the lock a partial may be in progress
  EXPECT_TRUE(fs::exists(*crashed));
  EXPECT_EQ(env.SweepUnused(&lock.value()), 1u);
  EXPECT_EQ(env.CurrentName(), *name2);
}

TEST(PackageEnvironment, SystemDistributionsIncludeDebiansStack) {
  auto system = PackageEnvironment::SystemDistributions();
  bool numpy = false;
  for (const auto& d : system) numpy = numpy || d.name == "numpy";
  REQUIRE_OR_SKIP(fs::exists("/usr/lib/python3/dist-packages/numpy"), "python3-numpy missing");
  EXPECT_TRUE(numpy);
}

TEST(PackagesConfig, TomlAllowlistAddsToTheDefaultOrReplacesIt) {
  TempDir tmp;
  const std::string file = tmp.path() + "/c.toml";
  std::ofstream(file) << "[packages]\nindex_url = \"\"\nwheel_dir = \"/srv/wheels\"\n"
                         "refresh_days = 2\n[packages.allowlist]\nccdemo = \"cc-demo==1.0\"\n";
  api::ConfigOverrides flags;
  flags.config_file = file;
  auto c = api::LoadServiceConfig(flags);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->packages.index_url, "");
  EXPECT_EQ(c->packages.wheel_dir, "/srv/wheels");
  EXPECT_EQ(c->packages.refresh_days, 2);
  EXPECT_EQ(c->packages.allowlist.Find("ccdemo")->requirement, "cc-demo==1.0");
  EXPECT_TRUE(c->packages.allowlist.Find("sklearn"));

  std::ofstream(file) << "[packages]\ndefault_allowlist = false\n[packages.allowlist]\nx = \"x\"\n";
  c = api::LoadServiceConfig(flags);
  ASSERT_TRUE(c) << c.error();
  EXPECT_FALSE(c->packages.allowlist.Find("sklearn"));
  EXPECT_TRUE(c->packages.allowlist.Find("x"));

  std::ofstream(file) << "[packages.allowlist]\nx = \"http://evil/x.whl\"\n";
  c = api::LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("packages.allowlist"), std::string::npos) << c.error();
}

TEST(PackagesSeccomp, TheInstallerVariantAllowsOnlyInetBesideUnix) {
  auto plain = sandbox::BuildSandboxSeccompProgram();
  auto installer = sandbox::BuildSandboxSeccompProgram(true);
  ASSERT_TRUE(plain) << plain.error();
  ASSERT_TRUE(installer) << installer.error();
  EXPECT_GT(installer->instructions.size(), plain->instructions.size());
  EXPECT_EQ(std::count(installer->denied_syscalls.begin(), installer->denied_syscalls.end(),
                       std::string("socket")),
            1);
}

}  // namespace
}  // namespace codecell::packages
