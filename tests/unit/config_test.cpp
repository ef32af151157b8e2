#include "api/config.h"

#include <fstream>
#include <utility>
#include <vector>

#include "test_support.h"

namespace codecell::api {
namespace {

using codecell::testing::TempDir;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v :
         {"CODECELL_CONFIG", "CODECELL_LISTEN", "CODECELL_DATA_DIR", "CODECELL_API_KEYS",
          "CODECELL_FILE_LIFETIME_HOURS", "CODECELL_WORKERS", "CODECELL_OVER_QUOTA",
          "CODECELL_MAX_UPLOAD_MB", "CODECELL_QUEUE", "CODECELL_PACKAGES_ALLOWLIST"}) {
      ::unsetenv(v);
    }
  }
  void TearDown() override { SetUp(); }
  std::string WriteToml(const std::string& text) {
    std::string path = dir_.path() + "/codecell.toml";
    std::ofstream(path) << text;
    return path;
  }
  TempDir dir_;
};

TEST_F(ConfigTest, DefaultsMatchTheSpec) {
  auto c = LoadServiceConfig({});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->listen_host, "127.0.0.1");
  EXPECT_EQ(c->listen_port, 8080);
  EXPECT_EQ(c->files.lifetime_hours, 48);
  EXPECT_EQ(c->files.max_upload_bytes, 50ull << 20);
  EXPECT_EQ(c->files.max_files_per_user, 20u);
  EXPECT_EQ(c->files.max_bytes_per_user, 500ull << 20);
  EXPECT_EQ(c->files.over_quota, files::OverQuota::kEvictGenerated);
  EXPECT_EQ(c->limits.timeout_seconds, 60);
  EXPECT_EQ(c->bounds.max_timeout_seconds, 300);
  EXPECT_GE(c->workers, 1u);
  EXPECT_EQ(c->limits.cpus, 1.0);
}

TEST_F(ConfigTest, OverQuotaPolicies) {
  for (const auto& [text, policy] : std::vector<std::pair<std::string, files::OverQuota>>{
           {"evict_generated", files::OverQuota::kEvictGenerated},
           {"evict_oldest", files::OverQuota::kEvictOldest},
           {"reject", files::OverQuota::kReject}}) {
    ConfigOverrides flags;
    flags.config_file = WriteToml("[files]\nover_quota = \"" + text + "\"\n");
    auto c = LoadServiceConfig(flags);
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(c->files.over_quota, policy) << text;
    ::setenv("CODECELL_OVER_QUOTA", text.c_str(), 1);
    auto e = LoadServiceConfig({});
    ::unsetenv("CODECELL_OVER_QUOTA");
    ASSERT_TRUE(e) << e.error();
    EXPECT_EQ(e->files.over_quota, policy) << text;
  }
  ConfigOverrides flags;
  flags.config_file = WriteToml("[files]\nover_quota = \"evict_uploads\"\n");
  auto bad = LoadServiceConfig(flags);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("evict_generated"), std::string::npos) << bad.error();
}

TEST_F(ConfigTest, FileThenEnvironmentThenFlags) {
  std::string path = WriteToml(
      "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\n"
      "[files]\nlifetime_hours = 2.5\nmax_upload_mb = 7\nover_quota = \"evict_oldest\"\n"
      "[executions]\nworkers = 3\n");
  ConfigOverrides flags;
  flags.config_file = path;
  auto from_file = LoadServiceConfig(flags);
  ASSERT_TRUE(from_file) << from_file.error();
  EXPECT_EQ(from_file->listen_port, 9000);
  EXPECT_EQ(from_file->data_dir, "/from/file");
  EXPECT_EQ(from_file->files.lifetime_hours, 2.5);
  EXPECT_EQ(from_file->files.max_upload_bytes, 7ull << 20);
  EXPECT_EQ(from_file->files.over_quota, files::OverQuota::kEvictOldest);
  EXPECT_EQ(from_file->workers, 3u);

  ::setenv("CODECELL_DATA_DIR", "/from/env", 1);
  ::setenv("CODECELL_WORKERS", "5", 1);
  auto from_env = LoadServiceConfig(flags);
  ASSERT_TRUE(from_env) << from_env.error();
  EXPECT_EQ(from_env->data_dir, "/from/env");
  EXPECT_EQ(from_env->workers, 5u);
  EXPECT_EQ(from_env->listen_port, 9000);

  flags.data_dir = "/from/flag";
  flags.listen = "127.0.0.2:9100";
  auto from_flags = LoadServiceConfig(flags);
  ASSERT_TRUE(from_flags) << from_flags.error();
  EXPECT_EQ(from_flags->data_dir, "/from/flag");
  EXPECT_EQ(from_flags->listen_host, "127.0.0.2");
  EXPECT_EQ(from_flags->listen_port, 9100);
}

TEST_F(ConfigTest, BadValuesNameTheirKey) {
  ConfigOverrides flags;
  flags.config_file = WriteToml("[files]\nlifetime_hours = \"long\"\n");
  auto c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("files.lifetime_hours"), std::string::npos) << c.error();

  flags.config_file = WriteToml("[executions]\ncpus = 0.05\n");
  c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("cpus must be between"), std::string::npos) << c.error();

  flags.config_file = WriteToml("listen = [\n");
  c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("line"), std::string::npos) << c.error();

  flags.config_file.clear();
  ::setenv("CODECELL_WORKERS", "many", 1);
  c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("CODECELL_WORKERS"), std::string::npos);
  ::unsetenv("CODECELL_WORKERS");

  flags.listen = "127.0.0.1:99999";
  c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("port"), std::string::npos);
}

TEST_F(ConfigTest, RefusesANonLoopbackAddressWithoutKeys) {
  ConfigOverrides flags;
  flags.listen = "0.0.0.0:8080";
  auto c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("without API keys"), std::string::npos);
  flags.api_keys = {"k1"};
  EXPECT_TRUE(LoadServiceConfig(flags));
  ::setenv("CODECELL_API_KEYS", "a,b", 1);
  flags.api_keys.clear();
  auto with_env = LoadServiceConfig(flags);
  ASSERT_TRUE(with_env);
  ASSERT_EQ(with_env->api_keys.size(), 2u);
  EXPECT_EQ(with_env->api_keys[0].key, "a");
  EXPECT_EQ(with_env->api_keys[1].key, "b");
  EXPECT_TRUE(with_env->api_keys[1].any_user());
}

TEST_F(ConfigTest, AnUnknownKeyIsAnErrorNotASilentDefault) {
  ConfigOverrides flags;
  for (const std::string text :
       {"[files]\nlifetime_hour = 2\n", "listn = \"127.0.0.1:1\"\n", "[file]\nlifetime_hours = 2\n",
        "files = 3\n", "[files.deeper]\nx = 1\n"}) {
    flags.config_file = WriteToml(text);
    auto c = LoadServiceConfig(flags);
    ASSERT_FALSE(c) << text;
    EXPECT_NE(c.error().find("unknown key"), std::string::npos) << c.error();
  }
  // The allowlist's table holds import names, not settings.
  flags.config_file = WriteToml("[packages.allowlist]\ntabulate = \"tabulate\"\n");
  auto c = LoadServiceConfig(flags);
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->packages.allowlist.FindImport("tabulate").has_value());
}

TEST_F(ConfigTest, NumbersOutsideTheirRangeOrNotNumbersNameTheRange) {
  ConfigOverrides flags;
  for (const std::string text : {"[executions]\nqueue = nan\n", "[executions]\nqueue = -1\n",
                                 "[executions]\nqueue = true\n", "[executions]\nqueue = \"5\"\n"}) {
    flags.config_file = WriteToml(text);
    auto c = LoadServiceConfig(flags);
    ASSERT_FALSE(c) << text;
    EXPECT_NE(c.error().find("executions.queue must be a number between 0 and 100000"),
              std::string::npos)
        << c.error();
  }
  flags.config_file = WriteToml("[executions]\nqueue = 7\nmemory_mb = 512.0\n");
  auto c = LoadServiceConfig(flags);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->queue, 7u);
  EXPECT_EQ(c->limits.memory_mb, 512u);
  for (const char* bad : {"nan", "1e9", "", "3x"}) {
    ::setenv("CODECELL_QUEUE", bad, 1);
    auto e = LoadServiceConfig({});
    ::unsetenv("CODECELL_QUEUE");
    if (*bad == '\0') {
      EXPECT_TRUE(e) << "an empty variable is unset";
      continue;
    }
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("CODECELL_QUEUE must be a number"), std::string::npos) << e.error();
  }
}

TEST_F(ConfigTest, TheEnvironmentSpeaksEachTypeItsOwnWay) {
  ::setenv("CODECELL_WARM_INTERPRETERS", "0", 1);
  ::setenv("CODECELL_PRELOAD", "numpy, pandas", 1);
  ::setenv("CODECELL_PACKAGES_INDEX_URL", "none", 1);
  ::setenv("CODECELL_PACKAGES_ALLOWLIST", "yaml=PyYAML, tabulate=tabulate", 1);
  auto c = LoadServiceConfig({});
  ASSERT_TRUE(c) << c.error();
  EXPECT_FALSE(c->warm.enabled);
  EXPECT_EQ(c->warm.preload, (std::vector<std::string>{"numpy", "pandas"}));
  EXPECT_EQ(c->packages.index_url, "");
  EXPECT_TRUE(c->packages.allowlist.FindImport("tabulate").has_value());
  ::setenv("CODECELL_WARM_INTERPRETERS", "maybe", 1);
  auto bad = LoadServiceConfig({});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("CODECELL_WARM_INTERPRETERS must be true or false"), std::string::npos)
      << bad.error();
  ::setenv("CODECELL_WARM_INTERPRETERS", "1", 1);
  ::setenv("CODECELL_PACKAGES_ALLOWLIST", "tabulate", 1);
  bad = LoadServiceConfig({});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("CODECELL_PACKAGES_ALLOWLIST"), std::string::npos) << bad.error();
  ::setenv("CODECELL_PACKAGES_WHEEL_DIR", "relative/wheels", 1);
  ::unsetenv("CODECELL_PACKAGES_ALLOWLIST");
  bad = LoadServiceConfig({});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("must be an absolute path"), std::string::npos) << bad.error();
  for (const char* v : {"CODECELL_WARM_INTERPRETERS", "CODECELL_PRELOAD",
                        "CODECELL_PACKAGES_INDEX_URL", "CODECELL_PACKAGES_WHEEL_DIR"}) {
    ::unsetenv(v);
  }
}

TEST_F(ConfigTest, KeysBoundToTenantsActOnlyForTheirUsers) {
  ConfigOverrides flags;
  flags.config_file = WriteToml(
      "api_keys = [\"operator\", {key = \"bot1\", user_prefix = \"bot1:\"},\n"
      "            {key = \"bot2\", users = [\"alice\", \"bob\"]},\n"
      "            {key = \"both\", user_prefix = \"x-\", users = [\"carol\"]}]\n");
  auto c = LoadServiceConfig(flags);
  ASSERT_TRUE(c) << c.error();
  ASSERT_EQ(c->api_keys.size(), 4u);
  const ApiKey &op = c->api_keys[0], &bot1 = c->api_keys[1], &bot2 = c->api_keys[2],
               &both = c->api_keys[3];
  EXPECT_TRUE(op.any_user());
  EXPECT_TRUE(op.MayActFor("anyone"));
  EXPECT_FALSE(bot1.any_user());
  EXPECT_TRUE(bot1.MayActFor("bot1:alice"));
  EXPECT_FALSE(bot1.MayActFor("bot1:"));  // the prefix alone names no user
  EXPECT_FALSE(bot1.MayActFor("bot2:alice"));
  EXPECT_FALSE(bot1.MayActFor("xbot1:alice"));
  EXPECT_TRUE(bot2.MayActFor("alice"));
  EXPECT_FALSE(bot2.MayActFor("alicex"));
  EXPECT_FALSE(bot2.MayActFor("bot1:alice"));
  EXPECT_TRUE(both.MayActFor("x-1"));
  EXPECT_TRUE(both.MayActFor("carol"));
  EXPECT_FALSE(both.MayActFor("dave"));

  for (const std::string bad :
       {"api_keys = [{key = \"k\", user_prefix = \"\"}]\n",
        "api_keys = [{key = \"k\", users = []}]\n",
        "api_keys = [{key = \"k\", users = [\"no spaces\"]}]\n",
        "api_keys = [{user_prefix = \"a:\"}]\n", "api_keys = [{key = \"k\", prefix = \"a:\"}]\n",
        "api_keys = [\"k\", \"k\"]\n", "api_keys = [{key = \"k\", user_prefix = \"a b\"}]\n",
        "api_keys = \"k\"\n"}) {
    flags.config_file = WriteToml(bad);
    auto refused = LoadServiceConfig(flags);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().find("api_keys"), std::string::npos) << refused.error();
  }
}

TEST_F(ConfigTest, ARejectedApiKeyIsNeverEchoed) {
  ConfigOverrides flags;
  flags.config_file = WriteToml("api_keys = [\"sekrit-key\", \"\"]\n");
  auto c = LoadServiceConfig(flags);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("api_keys"), std::string::npos);
  EXPECT_EQ(c.error().find("sekrit"), std::string::npos) << c.error();
}

}  // namespace
}  // namespace codecell::api
