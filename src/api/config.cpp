#include "api/config.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <functional>
#include <sstream>
#include <thread>

namespace codecell::api {
namespace {

using R = sandbox::Result<ServiceConfig>;

bool ParseListen(const std::string& text, ServiceConfig& c, std::string& error) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    error = "listen must be HOST:PORT (got '" + text + "')";
    return false;
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) {
    error = "listen port must be 1-65535 (got '" + text + "')";
    return false;
  }
  c.listen_host = host;
  c.listen_port = static_cast<int>(port);
  return true;
}

// "import=requirement, ..." (CODECELL_PACKAGES_ALLOWLIST) or a TOML table: added to the list.
std::string AddAllowlistEntries(const std::vector<std::pair<std::string, std::string>>& entries,
                                packages::Allowlist& list) {
  for (const auto& [import_name, requirement] : entries) {
    if (auto e = list.Add(import_name, requirement); !e.empty()) return e;
  }
  return "";
}

std::string ParsePackages(const toml::table& t, const std::string& file,
                          packages::PackageSettings& p) {
  auto section = t["packages"];
  if (!section) return "";
  if (!section.is_table()) return file + ": packages must be a table";
  for (const char* key : {"enabled", "default_allowlist"}) {
    if (auto v = section[key]; v && !v.is_boolean()) {
      return file + ": packages." + key + " must be true or false";
    }
  }
  p.enabled = section["enabled"].value_or(p.enabled);
  for (auto [key, out] : {std::pair<const char*, std::string*>{"index_url", &p.index_url},
                          {"extra_index_url", &p.extra_index_url},
                          {"wheel_dir", &p.wheel_dir}}) {
    if (auto v = section[key]) {
      if (!v.is_string()) return file + ": packages." + key + " must be a string";
      *out = *v.value<std::string>();
    }
  }
  struct Range {
    const char* key;
    double lo, hi;
    std::function<void(double)> set;
  };
  const Range ranges[] = {
      {"install_timeout", 1, 3600, [&](double x) { p.install_timeout_seconds = x; }},
      {"install_memory_mb", 128, 1 << 20,
       [&](double x) { p.install_memory_mb = static_cast<uint64_t>(x); }},
      {"install_tmp_mb", 64, 1 << 20,
       [&](double x) { p.install_tmp_mb = static_cast<uint64_t>(x); }},
      {"refresh_days", 0, 3650, [&](double x) { p.refresh_days = x; }},
  };
  for (const auto& r : ranges) {
    auto v = section[r.key];
    if (!v) continue;
    auto d = v.value<double>();
    if (!d || *d < r.lo || *d > r.hi) {
      std::ostringstream msg;
      msg << file << ": packages." << r.key << " must be a number between " << r.lo << " and "
          << r.hi;
      return msg.str();
    }
    r.set(*d);
  }
  if (!section["default_allowlist"].value_or(true)) p.allowlist = packages::Allowlist();
  if (auto list = section["allowlist"]) {
    const toml::table* table = list.as_table();
    if (table == nullptr) {
      return file + ": packages.allowlist must be a table of import name = \"requirement\"";
    }
    std::vector<std::pair<std::string, std::string>> entries;
    for (const auto& [key, value] : *table) {
      auto v = value.value<std::string>();
      if (!v) return file + ": packages.allowlist." + std::string(key.str()) + " must be a string";
      entries.emplace_back(std::string(key.str()), *v);
    }
    if (auto e = AddAllowlistEntries(entries, p.allowlist); !e.empty()) {
      return file + ": packages.allowlist: " + e;
    }
  }
  if (!p.wheel_dir.empty() && p.wheel_dir.front() != '/') {
    return file + ": packages.wheel_dir must be an absolute path";
  }
  return "";
}

}  // namespace

bool ValidUserId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-')) return false;
  }
  return true;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

R LoadServiceConfig(const ConfigOverrides& flags) {
  ServiceConfig c;
  std::string error;
  std::string file = flags.config_file;
  if (file.empty()) {
    if (const char* e = std::getenv("CODECELL_CONFIG"); e && *e) file = e;
  }
  if (!file.empty()) {
    c.config_file = file;
    toml::table t;
    try {
      t = toml::parse_file(file);
    } catch (const toml::parse_error& e) {
      std::ostringstream msg;
      msg << file << ": " << e.description() << " (line " << e.source().begin.line << ")";
      return R::Fail(msg.str());
    }
    auto str = [&](toml::node_view<toml::node> n, std::string& out, const char* key) {
      if (!n) return true;
      if (auto v = n.value<std::string>()) {
        out = *v;
        return true;
      }
      error = file + ": " + key + " must be a string";
      return false;
    };
    auto num = [&](toml::node_view<toml::node> n, auto& out, const char* key, double lo,
                   double hi) {
      if (!n) return true;
      auto v = n.value<double>();
      if (!v || *v < lo || *v > hi) {
        std::ostringstream msg;
        msg << file << ": " << key << " must be a number between " << lo << " and " << hi;
        error = msg.str();
        return false;
      }
      out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
      return true;
    };
    std::string listen, over_quota;
    bool ok =
        str(t["listen"], listen, "listen") && str(t["data_dir"], c.data_dir, "data_dir") &&
        num(t["files"]["lifetime_hours"], c.files.lifetime_hours, "files.lifetime_hours", -1,
            1e6) &&
        num(t["files"]["max_upload_mb"], c.files.max_upload_bytes, "files.max_upload_mb", 1, 1e6) &&
        num(t["files"]["max_files_per_user"], c.files.max_files_per_user,
            "files.max_files_per_user", 1, 1e9) &&
        num(t["files"]["max_bytes_per_user_mb"], c.files.max_bytes_per_user,
            "files.max_bytes_per_user_mb", 1, 1e9) &&
        str(t["files"]["over_quota"], over_quota, "files.over_quota") &&
        num(t["executions"]["workers"], c.workers, "executions.workers", 0, 1024) &&
        num(t["executions"]["queue"], c.queue, "executions.queue", 0, 100000) &&
        num(t["executions"]["per_user"], c.per_user, "executions.per_user", 1, 100000) &&
        num(t["executions"]["timeout"], c.limits.timeout_seconds, "executions.timeout", 0.1,
            3600) &&
        num(t["executions"]["max_timeout"], c.bounds.max_timeout_seconds, "executions.max_timeout",
            0.1, 3600) &&
        num(t["executions"]["memory_mb"], c.limits.memory_mb, "executions.memory_mb", 32,
            1 << 20) &&
        num(t["executions"]["cpus"], c.limits.cpus, "executions.cpus", 0, 1024) &&
        num(t["executions"]["max_memory_mb"], c.bounds.max_memory_mb, "executions.max_memory_mb",
            32, 1 << 20) &&
        num(t["cleanup"]["interval_minutes"], c.cleanup_interval_minutes,
            "cleanup.interval_minutes", 0.01, 1e6) &&
        num(t["shutdown"]["grace_seconds"], c.shutdown_grace_seconds, "shutdown.grace_seconds", 0,
            3600) &&
        num(t["interpreters"]["pool"], c.warm.pool_size, "interpreters.pool", 1, 64) &&
        num(t["tools"]["budget_chars"], c.tool_budget_chars, "tools.budget_chars", 200, 1e6);
    if (!ok) return R::Fail(error);
    if (auto e = ParsePackages(t, file, c.packages); !e.empty()) return R::Fail(e);
    if (auto warm = t["interpreters"]["warm"]) {
      if (!warm.is_boolean()) return R::Fail(file + ": interpreters.warm must be true or false");
      c.warm.enabled = *warm.value<bool>();
    }
    if (auto preload = t["interpreters"]["preload"]) {
      auto list = preload.as_array();
      if (list == nullptr)
        return R::Fail(file + ": interpreters.preload must be a list of modules");
      c.warm.preload.clear();
      for (const auto& m : *list) {
        auto v = m.value<std::string>();
        if (!v || v->empty()) {
          return R::Fail(file + ": interpreters.preload must be a list of module names");
        }
        c.warm.preload.push_back(*v);
      }
    }
    // The *_mb keys were read as MiB counts.
    if (t["files"]["max_upload_mb"]) c.files.max_upload_bytes <<= 20;
    if (t["files"]["max_bytes_per_user_mb"]) c.files.max_bytes_per_user <<= 20;
    if (!listen.empty() && !ParseListen(listen, c, error)) return R::Fail(file + ": " + error);
    if (!over_quota.empty()) {
      auto policy = files::ParseOverQuota(over_quota);
      if (!policy) {
        return R::Fail(file +
                       ": files.over_quota must be \"evict_generated\", \"evict_oldest\" or "
                       "\"reject\"");
      }
      c.files.over_quota = *policy;
    }
    if (auto origins = t["mcp"]["allowed_origins"]) {
      auto list = origins.as_array();
      if (list == nullptr) return R::Fail(file + ": mcp.allowed_origins must be a list");
      for (const auto& o : *list) {
        auto v = o.value<std::string>();
        if (!v || v->empty()) {
          return R::Fail(file +
                         ": mcp.allowed_origins must be origins like "
                         "\"https://chat.example.com\"");
        }
        c.mcp_allowed_origins.push_back(*v);
      }
    }
    if (!str(t["mcp"]["default_user"], c.mcp_default_user, "mcp.default_user")) {
      return R::Fail(error);
    }
    if (!ValidUserId(c.mcp_default_user)) {
      return R::Fail(file + ": mcp.default_user must be 1-128 characters of A-Z a-z 0-9 _ . : -");
    }
    if (auto keys = t["api_keys"].as_array()) {
      for (const auto& k : *keys) {
        auto v = k.value<std::string>();
        if (!v || v->empty()) return R::Fail(file + ": api_keys must be non-empty strings");
        c.api_keys.push_back(*v);
      }
    }
  }

  auto env = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return v && *v ? v : nullptr;
  };
  auto env_num = [&](const char* name, double lo, double hi, double& out) {
    const char* v = env(name);
    if (!v) return true;
    char* end = nullptr;
    double d = std::strtod(v, &end);
    if (*end != '\0' || d < lo || d > hi) {
      std::ostringstream msg;
      msg << name << " must be a number between " << lo << " and " << hi << " (got '" << v << "')";
      error = msg.str();
      return false;
    }
    out = d;
    return true;
  };
  if (const char* v = env("CODECELL_LISTEN"); v && !ParseListen(v, c, error)) {
    return R::Fail("CODECELL_LISTEN: " + error);
  }
  if (const char* v = env("CODECELL_DATA_DIR")) c.data_dir = v;
  if (const char* v = env("CODECELL_API_KEYS")) c.api_keys = SplitCommas(v);
  if (const char* v = env("CODECELL_MCP_ALLOWED_ORIGINS")) c.mcp_allowed_origins = SplitCommas(v);
  if (const char* v = env("CODECELL_WARM_INTERPRETERS")) {
    std::string s = v;
    if (s != "true" && s != "false" && s != "1" && s != "0") {
      return R::Fail("CODECELL_WARM_INTERPRETERS must be true or false");
    }
    c.warm.enabled = s == "true" || s == "1";
  }
  if (const char* v = env("CODECELL_PRELOAD")) {
    c.warm.preload = SplitCommas(v);
  }
  if (const char* v = env("CODECELL_PACKAGES_INDEX_URL")) c.packages.index_url = v;
  if (const char* v = env("CODECELL_PACKAGES_WHEEL_DIR")) c.packages.wheel_dir = v;
  if (const char* v = env("CODECELL_PACKAGES_ALLOWLIST")) {
    std::vector<std::pair<std::string, std::string>> entries;
    for (const auto& item : SplitCommas(v)) {
      auto eq = item.find('=');
      if (eq == std::string::npos) {
        return R::Fail("CODECELL_PACKAGES_ALLOWLIST: '" + item +
                       "' is not import=requirement (e.g. sklearn=scikit-learn)");
      }
      entries.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    if (auto e = AddAllowlistEntries(entries, c.packages.allowlist); !e.empty()) {
      return R::Fail("CODECELL_PACKAGES_ALLOWLIST: " + e);
    }
  }
  if (const char* v = env("CODECELL_OVER_QUOTA")) {
    auto policy = files::ParseOverQuota(v);
    if (!policy) {
      return R::Fail("CODECELL_OVER_QUOTA must be evict_generated, evict_oldest or reject");
    }
    c.files.over_quota = *policy;
  }
  double d;
  struct NumericEnv {
    const char* name;
    double lo, hi;
    std::function<void(double)> set;
  };
  const NumericEnv numeric[] = {
      {"CODECELL_FILE_LIFETIME_HOURS", -1, 1e6, [&](double x) { c.files.lifetime_hours = x; }},
      {"CODECELL_MAX_UPLOAD_MB", 1, 1e6,
       [&](double x) { c.files.max_upload_bytes = static_cast<uint64_t>(x) << 20; }},
      {"CODECELL_MAX_FILES_PER_USER", 1, 1e9,
       [&](double x) { c.files.max_files_per_user = static_cast<uint64_t>(x); }},
      {"CODECELL_MAX_BYTES_PER_USER_MB", 1, 1e9,
       [&](double x) { c.files.max_bytes_per_user = static_cast<uint64_t>(x) << 20; }},
      {"CODECELL_WORKERS", 0, 1024, [&](double x) { c.workers = static_cast<size_t>(x); }},
      {"CODECELL_QUEUE", 0, 100000, [&](double x) { c.queue = static_cast<size_t>(x); }},
      {"CODECELL_PER_USER_EXECUTIONS", 1, 100000,
       [&](double x) { c.per_user = static_cast<size_t>(x); }},
      {"CODECELL_CLEANUP_INTERVAL_MINUTES", 0.01, 1e6,
       [&](double x) { c.cleanup_interval_minutes = x; }},
      {"CODECELL_SHUTDOWN_GRACE_SECONDS", 0, 3600, [&](double x) { c.shutdown_grace_seconds = x; }},
      {"CODECELL_ZYGOTE_POOL", 1, 64, [&](double x) { c.warm.pool_size = static_cast<size_t>(x); }},
  };
  for (const auto& n : numeric) {
    d = 0;
    if (!env_num(n.name, n.lo, n.hi, d)) return R::Fail(error);
    if (env(n.name)) n.set(d);
  }

  if (!flags.listen.empty() && !ParseListen(flags.listen, c, error)) {
    return R::Fail("--listen: " + error);
  }
  if (!flags.data_dir.empty()) c.data_dir = flags.data_dir;
  if (!flags.api_keys.empty()) c.api_keys = flags.api_keys;

  // Four per core: a warm execution spends most of its wall time waiting on the kernel (namespace
  // and cgroup set-up and teardown), and each is held to one core by its CPU limit anyway.
  // Measured with 8 clients on 2 cores: 2 workers sustained 55 print executions/s, 8 sustained 135.
  if (c.workers == 0) c.workers = 4 * std::max(1u, std::thread::hardware_concurrency());
  if (c.limits.timeout_seconds > c.bounds.max_timeout_seconds) {
    return R::Fail("executions.timeout exceeds executions.max_timeout");
  }
  if (c.limits.memory_mb > c.bounds.max_memory_mb) {
    return R::Fail("executions.memory_mb exceeds executions.max_memory_mb");
  }
  if (auto msg = exec::ValidateLimits(c.limits, c.bounds); !msg.empty()) {
    return R::Fail("executions: " + msg);
  }
  if (c.api_keys.empty() && !IsLoopback(c.listen_host)) {
    return R::Fail("refusing to listen on " + c.listen_host +
                   " without API keys: set api_keys (or CODECELL_API_KEYS, or --api-key), or "
                   "listen on a loopback address");
  }
  return c;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    out.push_back(item.substr(first, item.find_last_not_of(" \t") - first + 1));
  }
  return out;
}

}  // namespace codecell::api
