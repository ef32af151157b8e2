#include "api/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>

#include "base/user_id.h"

namespace codecell::api {
namespace {

using R = sandbox::Result<ServiceConfig>;

// One value as a source gave it, already of its setting's type.
struct Value {
  double number = 0;
  bool flag = false;
  std::string text;
  std::vector<std::string> list;
  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<ApiKey> keys;
};

enum class Type { kNumber, kBool, kString, kList, kPairs, kApiKeys };

// One key of the configuration: where it is read from and the one rule it is checked by. Every
// default is the ServiceConfig member's initializer; every key of the TOML file, each with its
// environment variable, is a row of kSettings below (docs/contract-serve.md lists them).
struct Setting {
  const char* key;  // its TOML path
  const char* env;  // its CODECELL_* variable; nullptr: the file only
  Type type;
  double lo = 0, hi = 0;  // kNumber: the range
  // Applies a value of the right type and range: "" or the rule it breaks ("must be ...").
  std::string (*apply)(ServiceConfig&, const Value&);
};

std::string ParseListen(const std::string& text, ServiceConfig& c) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return "must be HOST:PORT";
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  errno = 0;
  long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (colon + 1 == text.size() || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
    return "must be HOST:PORT with a port of 1-65535";
  }
  c.listen_host = host;
  c.listen_port = static_cast<int>(port);
  return "";
}

template <typename T, typename V>
std::string Set(T& out, const V& x) {
  out = static_cast<T>(x);
  return "";
}

std::string SetMiB(uint64_t& out, double x) {
  out = static_cast<uint64_t>(x) << 20;
  return "";
}

// The order matters where one key resets what another adds (default_allowlist, allowlist).
const Setting kSettings[] = {
    {"listen", "CODECELL_LISTEN", Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) { return ParseListen(v.text, c); }},
    {"data_dir", "CODECELL_DATA_DIR", Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.data_dir, v.text); }},
    {"api_keys", "CODECELL_API_KEYS", Type::kApiKeys, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.api_keys, v.keys); }},
    {"files.lifetime_hours", "CODECELL_FILE_LIFETIME_HOURS", Type::kNumber, -1, 1e6,
     [](ServiceConfig& c, const Value& v) { return Set(c.files.lifetime_hours, v.number); }},
    {"files.max_upload_mb", "CODECELL_MAX_UPLOAD_MB", Type::kNumber, 1, 1e6,
     [](ServiceConfig& c, const Value& v) { return SetMiB(c.files.max_upload_bytes, v.number); }},
    {"files.max_files_per_user", "CODECELL_MAX_FILES_PER_USER", Type::kNumber, 1, 1e9,
     [](ServiceConfig& c, const Value& v) { return Set(c.files.max_files_per_user, v.number); }},
    {"files.max_bytes_per_user_mb", "CODECELL_MAX_BYTES_PER_USER_MB", Type::kNumber, 1, 1e9,
     [](ServiceConfig& c, const Value& v) { return SetMiB(c.files.max_bytes_per_user, v.number); }},
    {"files.over_quota", "CODECELL_OVER_QUOTA", Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) -> std::string {
       auto policy = files::ParseOverQuota(v.text);
       if (!policy) return "must be evict_generated, evict_oldest or reject";
       c.files.over_quota = *policy;
       return "";
     }},
    {"executions.workers", "CODECELL_WORKERS", Type::kNumber, 0, 1024,
     [](ServiceConfig& c, const Value& v) { return Set(c.workers, v.number); }},
    {"executions.queue", "CODECELL_QUEUE", Type::kNumber, 0, 100000,
     [](ServiceConfig& c, const Value& v) { return Set(c.queue, v.number); }},
    {"executions.per_user", "CODECELL_PER_USER_EXECUTIONS", Type::kNumber, 1, 100000,
     [](ServiceConfig& c, const Value& v) { return Set(c.per_user, v.number); }},
    {"executions.timeout", nullptr, Type::kNumber, 0.1, 3600,
     [](ServiceConfig& c, const Value& v) { return Set(c.limits.timeout_seconds, v.number); }},
    {"executions.max_timeout", nullptr, Type::kNumber, 0.1, 3600,
     [](ServiceConfig& c, const Value& v) { return Set(c.bounds.max_timeout_seconds, v.number); }},
    {"executions.memory_mb", nullptr, Type::kNumber, 32, 1 << 20,
     [](ServiceConfig& c, const Value& v) { return Set(c.limits.memory_mb, v.number); }},
    {"executions.max_memory_mb", nullptr, Type::kNumber, 32, 1 << 20,
     [](ServiceConfig& c, const Value& v) { return Set(c.bounds.max_memory_mb, v.number); }},
    {"executions.cpus", nullptr, Type::kNumber, 0, 1024,
     [](ServiceConfig& c, const Value& v) { return Set(c.limits.cpus, v.number); }},
    {"cleanup.interval_minutes", "CODECELL_CLEANUP_INTERVAL_MINUTES", Type::kNumber, 0.01, 1e6,
     [](ServiceConfig& c, const Value& v) { return Set(c.cleanup_interval_minutes, v.number); }},
    {"shutdown.grace_seconds", "CODECELL_SHUTDOWN_GRACE_SECONDS", Type::kNumber, 0, 3600,
     [](ServiceConfig& c, const Value& v) { return Set(c.shutdown_grace_seconds, v.number); }},
    {"interpreters.warm", "CODECELL_WARM_INTERPRETERS", Type::kBool, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.warm.enabled, v.flag); }},
    {"interpreters.pool", "CODECELL_ZYGOTE_POOL", Type::kNumber, 1, 64,
     [](ServiceConfig& c, const Value& v) { return Set(c.warm.pool_size, v.number); }},
    {"interpreters.preload", "CODECELL_PRELOAD", Type::kList, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.warm.preload, v.list); }},
    {"tools.budget_chars", nullptr, Type::kNumber, 200, 1e6,
     [](ServiceConfig& c, const Value& v) { return Set(c.tool_budget_chars, v.number); }},
    {"mcp.default_user", nullptr, Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) -> std::string {
       if (!ValidUserId(v.text)) return "must be 1-128 characters of A-Z a-z 0-9 _ . : -";
       c.mcp_default_user = v.text;
       return "";
     }},
    {"mcp.allowed_origins", "CODECELL_MCP_ALLOWED_ORIGINS", Type::kList, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.mcp_allowed_origins, v.list); }},
    {"packages.enabled", nullptr, Type::kBool, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.packages.enabled, v.flag); }},
    {"packages.index_url", "CODECELL_PACKAGES_INDEX_URL", Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) {
       return Set(c.packages.index_url, v.text == "none" ? std::string() : v.text);
     }},
    {"packages.extra_index_url", nullptr, Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) { return Set(c.packages.extra_index_url, v.text); }},
    {"packages.wheel_dir", "CODECELL_PACKAGES_WHEEL_DIR", Type::kString, 0, 0,
     [](ServiceConfig& c, const Value& v) -> std::string {
       if (!v.text.empty() && v.text.front() != '/') return "must be an absolute path";
       c.packages.wheel_dir = v.text;
       return "";
     }},
    {"packages.install_timeout", nullptr, Type::kNumber, 1, 3600,
     [](ServiceConfig& c, const Value& v) {
       return Set(c.packages.install_timeout_seconds, v.number);
     }},
    {"packages.install_memory_mb", nullptr, Type::kNumber, 128, 1 << 20,
     [](ServiceConfig& c, const Value& v) { return Set(c.packages.install_memory_mb, v.number); }},
    {"packages.install_tmp_mb", nullptr, Type::kNumber, 64, 1 << 20,
     [](ServiceConfig& c, const Value& v) { return Set(c.packages.install_tmp_mb, v.number); }},
    {"packages.refresh_days", nullptr, Type::kNumber, 0, 3650,
     [](ServiceConfig& c, const Value& v) { return Set(c.packages.refresh_days, v.number); }},
    {"packages.default_allowlist", nullptr, Type::kBool, 0, 0,
     [](ServiceConfig& c, const Value& v) -> std::string {
       if (!v.flag) c.packages.allowlist = packages::Allowlist();
       return "";
     }},
    {"packages.allowlist", "CODECELL_PACKAGES_ALLOWLIST", Type::kPairs, 0, 0,
     [](ServiceConfig& c, const Value& v) -> std::string {
       for (const auto& [import_name, requirement] : v.pairs) {
         if (auto e = c.packages.allowlist.Add(import_name, requirement); !e.empty()) return e;
       }
       return "";
     }},
};

// The rule a value of the setting's type must follow (before its own apply()).
std::string TypeRule(const Setting& s, bool from_env) {
  switch (s.type) {
    case Type::kNumber: {
      std::ostringstream rule;
      rule << "must be a number between " << s.lo << " and " << s.hi;
      return rule.str();
    }
    case Type::kBool:
      return from_env ? "must be true or false (or 1 or 0)" : "must be true or false";
    case Type::kString:
      return "must be a string";
    case Type::kList:
      return from_env ? "must be a comma-separated list" : "must be a list of non-empty strings";
    case Type::kPairs:
      return from_env ? "must be name=value items separated by commas (e.g. sklearn=scikit-learn)"
                      : "must be a table of name = \"value\"";
    case Type::kApiKeys:
      return from_env ? "must be a comma-separated list of keys"
                      : "must be a list of keys: \"key\" (any user) or {key = \"...\", "
                        "user_prefix = \"bot1:\", users = [\"alice\"]} (only those users)";
  }
  return "";
}

// "key", or {key = "...", user_prefix = "...", users = [...]} with nothing else in it.
std::optional<ApiKey> ApiKeyFromToml(const toml::node& node) {
  ApiKey key;
  if (auto text = node.value<std::string>(); text && node.is_string()) {
    key.key = *text;
    return key.key.empty() ? std::nullopt : std::optional<ApiKey>(key);
  }
  const toml::table* table = node.as_table();
  if (table == nullptr) return std::nullopt;
  for (const auto& [name, value] : *table) {
    if (name == "key" && value.is_string()) {
      key.key = *value.value<std::string>();
    } else if (name == "user_prefix" && value.is_string()) {
      key.user_prefix = *value.value<std::string>();
      if (key.user_prefix.empty()) return std::nullopt;
    } else if (name == "users" && value.is_array()) {
      for (const auto& user : *value.as_array()) {
        auto id = user.value<std::string>();
        if (!user.is_string() || !ValidUserId(*id)) return std::nullopt;
        key.users.push_back(*id);
      }
      if (key.users.empty()) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  if (key.key.empty()) return std::nullopt;
  return key;
}

std::optional<Value> FromToml(const Setting& s, const toml::node& node) {
  Value v;
  switch (s.type) {
    case Type::kNumber: {
      auto d = node.value<double>();
      if (!d || node.is_boolean() || !(*d >= s.lo && *d <= s.hi)) return std::nullopt;  // NaN too
      v.number = *d;
      return v;
    }
    case Type::kBool:
      if (!node.is_boolean()) return std::nullopt;
      v.flag = *node.value<bool>();
      return v;
    case Type::kString:
      if (!node.is_string()) return std::nullopt;
      v.text = *node.value<std::string>();
      return v;
    case Type::kList: {
      const toml::array* list = node.as_array();
      if (list == nullptr) return std::nullopt;
      for (const auto& item : *list) {
        auto text = item.value<std::string>();
        if (!item.is_string() || text->empty()) return std::nullopt;
        v.list.push_back(*text);
      }
      return v;
    }
    case Type::kApiKeys: {
      const toml::array* list = node.as_array();
      if (list == nullptr) return std::nullopt;
      for (const auto& item : *list) {
        auto key = ApiKeyFromToml(item);
        if (!key) return std::nullopt;
        v.keys.push_back(std::move(*key));
      }
      return v;
    }
    case Type::kPairs: {
      const toml::table* table = node.as_table();
      if (table == nullptr) return std::nullopt;
      for (const auto& [key, value] : *table) {
        if (!value.is_string()) return std::nullopt;
        v.pairs.emplace_back(std::string(key.str()), *value.value<std::string>());
      }
      return v;
    }
  }
  return std::nullopt;
}

std::optional<Value> FromEnv(const Setting& s, const std::string& text) {
  Value v;
  switch (s.type) {
    case Type::kNumber: {
      char* end = nullptr;
      v.number = std::strtod(text.c_str(), &end);
      if (*end != '\0' || !(v.number >= s.lo && v.number <= s.hi)) return std::nullopt;
      return v;
    }
    case Type::kBool:
      if (text != "true" && text != "false" && text != "1" && text != "0") return std::nullopt;
      v.flag = text == "true" || text == "1";
      return v;
    case Type::kString:
      v.text = text;
      return v;
    case Type::kList:
      v.list = SplitCommas(text);
      return v;
    case Type::kApiKeys:
      for (auto& key : SplitCommas(text)) v.keys.push_back({std::move(key), "", {}});
      return v;
    case Type::kPairs:
      for (const auto& item : SplitCommas(text)) {
        auto eq = item.find('=');
        if (eq == std::string::npos) return std::nullopt;
        v.pairs.emplace_back(item.substr(0, eq), item.substr(eq + 1));
      }
      return v;
  }
  return std::nullopt;
}

// Every key of the file must be a setting (a typo is an error, not a silent default); a kPairs
// setting's table holds its own keys.
std::string UnknownKey(const toml::table& table, const std::string& prefix) {
  static const std::set<std::string> known = [] {
    std::set<std::string> keys;
    for (const auto& s : kSettings) keys.insert(s.key);
    return keys;
  }();
  for (const auto& [name, node] : table) {
    std::string path = prefix + std::string(name.str());
    if (known.count(path)) continue;
    if (const toml::table* section = node.as_table(); section != nullptr && prefix.empty()) {
      if (auto e = UnknownKey(*section, path + "."); !e.empty()) return e;
      continue;
    }
    return path;
  }
  return "";
}

std::string ApplyFile(const std::string& file, ServiceConfig& c) {
  toml::table t;
  try {
    t = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << file << ": " << e.description() << " (line " << e.source().begin.line << ")";
    return msg.str();
  }
  if (auto key = UnknownKey(t, ""); !key.empty()) {
    return file + ": unknown key " + key + " (the keys are in docs/contract-serve.md)";
  }
  for (const Setting& s : kSettings) {
    const toml::node* node = t.at_path(s.key).node();
    if (node == nullptr) continue;
    auto value = FromToml(s, *node);
    std::string rule = value ? s.apply(c, *value) : TypeRule(s, false);
    if (!rule.empty()) return file + ": " + s.key + " " + rule;
  }
  return "";
}

std::string ApplyEnvironment(ServiceConfig& c) {
  for (const Setting& s : kSettings) {
    if (s.env == nullptr) continue;
    const char* text = std::getenv(s.env);
    if (text == nullptr || *text == '\0') continue;
    auto value = FromEnv(s, text);
    std::string rule = value ? s.apply(c, *value) : TypeRule(s, true);
    // A rejected value is echoed, unless it may be a secret.
    if (!rule.empty()) {
      const bool secret = std::string(s.env) == "CODECELL_API_KEYS";
      return std::string(s.env) + " " + rule + (secret ? "" : " (got '" + std::string(text) + "')");
    }
  }
  return "";
}

// What holds between keys, once every source is applied.
std::string CheckTogether(ServiceConfig& c) {
  // Four per core: a warm execution spends most of its wall time waiting on the kernel (namespace
  // and cgroup set-up and teardown), and each is held to one core by its CPU limit anyway.
  // Measured with 8 clients on 2 cores: 2 workers sustained 55 print executions/s, 8 sustained 135.
  if (c.workers == 0) c.workers = 4 * size_t{std::max(1u, std::thread::hardware_concurrency())};
  if (c.limits.timeout_seconds > c.bounds.max_timeout_seconds) {
    return "executions.timeout exceeds executions.max_timeout";
  }
  if (c.limits.memory_mb > c.bounds.max_memory_mb) {
    return "executions.memory_mb exceeds executions.max_memory_mb";
  }
  if (auto msg = exec::ValidateLimits(c.limits, c.bounds); !msg.empty()) {
    return "executions: " + msg;
  }
  std::set<std::string> keys;
  for (const ApiKey& k : c.api_keys) {
    if (!keys.insert(k.key).second) return "api_keys: a key is listed twice";
    if (!k.user_prefix.empty() && !ValidUserId(k.user_prefix)) {
      return "api_keys: a user_prefix must be characters of A-Z a-z 0-9 _ . : -";
    }
  }
  if (c.api_keys.empty() && !IsLoopback(c.listen_host)) {
    return "refusing to listen on " + c.listen_host +
           " without API keys: set api_keys (or CODECELL_API_KEYS, or --api-key), or listen on a "
           "loopback address";
  }
  return "";
}

}  // namespace

bool ApiKey::MayActFor(const std::string& user_id) const {
  if (any_user()) return true;
  if (!user_prefix.empty() && user_id.size() > user_prefix.size() &&
      user_id.compare(0, user_prefix.size(), user_prefix) == 0) {
    return true;
  }
  return std::find(users.begin(), users.end(), user_id) != users.end();
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

R LoadServiceConfig(const ConfigOverrides& flags) {
  ServiceConfig c;
  std::string file = flags.config_file;
  if (file.empty()) {
    if (const char* e = std::getenv("CODECELL_CONFIG"); e && *e) file = e;
  }
  if (!file.empty()) {
    c.config_file = file;
    if (auto e = ApplyFile(file, c); !e.empty()) return R::Fail(e);
  }
  if (auto e = ApplyEnvironment(c); !e.empty()) return R::Fail(e);
  if (!flags.listen.empty()) {
    if (auto rule = ParseListen(flags.listen, c); !rule.empty()) {
      return R::Fail("--listen " + rule + " (got '" + flags.listen + "')");
    }
  }
  if (!flags.data_dir.empty()) c.data_dir = flags.data_dir;
  if (!flags.api_keys.empty()) {
    c.api_keys.clear();
    for (const auto& key : flags.api_keys) c.api_keys.push_back({key, "", {}});
  }
  if (auto e = CheckTogether(c); !e.empty()) return R::Fail(e);
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
