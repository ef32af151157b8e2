#pragma once

#include <string>
#include <vector>

#include "exec/execution.h"
#include "exec/zygote_supervisor.h"
#include "files/file_manager.h"
#include "packages/installer.h"
#include "sandbox/sys_result.h"

namespace codecell::api {

// One API key and the users it may act for: any user (the default), or only user ids that start
// with `user_prefix`, or only those in `users` (both set: either). A key bound to users may not
// call the operator's routes (cleanup, package installs without a user, refresh, metrics).
struct ApiKey {
  std::string key;
  std::string user_prefix;
  std::vector<std::string> users;

  bool any_user() const { return user_prefix.empty() && users.empty(); }
  bool MayActFor(const std::string& user_id) const;
};

struct ServiceConfig {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string data_dir = "/var/lib/codecell";
  std::vector<ApiKey> api_keys;
  files::FilePolicy files;
  size_t workers = 0;  // 0: four per core
  size_t queue = 32;
  size_t per_user = 2;
  exec::Limits limits;       // defaults for each execution
  exec::LimitBounds bounds;  // what a request may raise them to
  double cleanup_interval_minutes = 60;
  double shutdown_grace_seconds = 30;
  exec::WarmSettings warm;             // [interpreters]: the zygote and its pool
  packages::PackageSettings packages;  // [packages]: approved packages on demand
  size_t tool_budget_chars = 8000;     // [tools] budget_chars: per stream in a tool message
  // [mcp]: Streamable HTTP at /mcp. Origins allowed besides loopback ones (DNS rebinding), and
  // the user of a session whose client names none.
  std::vector<std::string> mcp_allowed_origins;
  std::string mcp_default_user = "mcp";
  std::string config_file;  // where the TOML came from ("" = none)
};

struct ConfigOverrides {  // from flags; empty = not given
  std::string config_file, listen, data_dir;
  std::vector<std::string> api_keys;
};

// Defaults < TOML file < CODECELL_* environment < flags. Fails with a message naming the key.
sandbox::Result<ServiceConfig> LoadServiceConfig(const ConfigOverrides& flags);

bool IsLoopback(const std::string& host);

// "a, b,c" -> {"a", "b", "c"}: items trimmed of spaces and tabs, empty ones dropped (API keys,
// preload lists).
std::vector<std::string> SplitCommas(const std::string& text);

}  // namespace codecell::api
