#include "sandbox/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "sandbox/file_io.h"

namespace codecell::sandbox {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

bool Exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

std::optional<uint64_t> ReadKey(const std::string& path, const std::string& key) {
  auto text = ReadFileToString(path);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text) return std::nullopt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text->c_str(), &end, 10);
  if (end == text->c_str()) return std::nullopt;
  return v;
}

// Enables controllers in `dir`'s children; v2 needs this at every level above the leaf.
bool EnableV2Controllers(const std::string& dir, std::vector<std::string>& missing) {
  auto available = ReadFileToString(dir + "/cgroup.controllers");
  if (!available) {
    missing.push_back("cgroup v2: cannot read " + dir + "/cgroup.controllers");
    return false;
  }
  auto enabled = ReadFileToString(dir + "/cgroup.subtree_control");
  std::string want;
  for (const char* c : {"memory", "pids", "cpu"}) {
    bool have = (" " + *available + " ").find(std::string(" ") + c) != std::string::npos;
    bool on = enabled && (" " + *enabled).find(std::string(" ") + c) != std::string::npos;
    if (have && !on) want += std::string(want.empty() ? "+" : " +") + c;
  }
  if (want.empty()) return true;
  SysResult r = WriteStringToFile(dir + "/cgroup.subtree_control", want);
  if (!r.ok()) {
    missing.push_back(
        "cgroup v2: cannot enable '" + want + "' in " + dir + "/cgroup.subtree_control (" +
        Describe(r) +
        "); run codecell in a cgroup of its own with delegation (systemd Delegate=yes)");
    return false;
  }
  return true;
}

void FillV2(CgroupLayout& layout) {
  auto controllers = ReadFileToString(layout.v2_base + "/cgroup.controllers");
  std::set<std::string> have;
  std::istringstream words(controllers ? *controllers : "");
  for (std::string w; words >> w;) have.insert(w);
  layout.memory = have.count("memory") > 0;
  layout.pids = have.count("pids") > 0;
  layout.cpu_limit = have.count("cpu") > 0;
  layout.cpu_accounting = true;  // cpu.stat usage_usec exists in every v2 cgroup
  for (const char* c : {"memory", "pids", "cpu"}) {
    if (have.count(c) == 0) {
      layout.missing.push_back(std::string("cgroup v2: no ") + c + " controller in " +
                               layout.v2_base);
    }
  }
}

}  // namespace

std::string CgroupLayout::Describe() const {
  std::string s;
  switch (mode) {
    case CgroupMode::kNone:
      s = "cgroups: none usable";
      break;
    case CgroupMode::kV1:
      s = "cgroups: v1";
      break;
    case CgroupMode::kV2:
      s = "cgroups: v2 at " + v2_base;
      break;
  }
  s += std::string("; memory ") + (memory ? "yes" : "NO") + ", pids " + (pids ? "yes" : "NO") +
       ", cpu accounting " + (cpu_accounting ? "yes" : "NO") + ", cpu limit " +
       (cpu_limit ? "yes" : "NO");
  for (const auto& m : missing) s += "\n  missing: " + m;
  return s;
}

CgroupLayout CgroupLayout::V2At(const std::string& base) {
  CgroupLayout layout;
  layout.mode = CgroupMode::kV2;
  layout.v2_base = base;
  FillV2(layout);
  return layout;
}

CgroupLayout DetectCgroups(const std::string& mountinfo_path, const std::string& self_cgroup_path) {
  if (const char* forced = std::getenv("CODECELL_CGROUP_V2_BASE"); forced && *forced) {
    return CgroupLayout::V2At(forced);
  }
  CgroupLayout layout;
  std::map<std::string, std::string> v1_mounts;  // controller -> mount point
  std::string v2_mount;
  std::ifstream mountinfo(mountinfo_path);
  for (std::string line; std::getline(mountinfo, line);) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto left = Split(line.substr(0, dash), ' ');
    auto right = Split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    const std::string& mount_point = left[4];
    if (right[0] == "cgroup2") {
      v2_mount = mount_point;
    } else if (right[0] == "cgroup") {
      for (const auto& opt : Split(right[2], ',')) {
        if (opt == "memory" || opt == "pids" || opt == "cpuacct" || opt == "cpu") {
          v1_mounts[opt] = mount_point;
        }
      }
    }
  }
  std::map<std::string, std::string> own;  // controller ("" for v2) -> our cgroup path
  std::ifstream self(self_cgroup_path);
  for (std::string line; std::getline(self, line);) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string path = line.substr(second + 1);
    for (const auto& c : Split(line.substr(first + 1, second - first - 1), ',')) own[c] = path;
    if (second == first + 1) own[""] = path;
  }

  // v2 counts only when it carries controllers; a hybrid host's empty unified tree does not.
  if (!v2_mount.empty()) {
    auto controllers = ReadFileToString(v2_mount + "/cgroup.controllers");
    if (controllers && controllers->find("memory") != std::string::npos) {
      std::string base = v2_mount + "/codecell";
      std::vector<std::string> missing;
      if (EnableV2Controllers(v2_mount, missing) && MakeDirs(base, 0755).ok() &&
          EnableV2Controllers(base, missing)) {
        layout = CgroupLayout::V2At(base);
        return layout;
      }
      layout.missing = missing;
    }
  }
  if (!v1_mounts.empty()) {
    layout.mode = CgroupMode::kV1;
    auto prepare = [&](const char* controller, std::string& out) {
      auto m = v1_mounts.find(controller);
      if (m == v1_mounts.end()) {
        layout.missing.push_back(std::string("cgroup v1: the ") + controller +
                                 " controller is not mounted");
        return false;
      }
      std::string base = m->second + own[controller] + "/codecell";
      if (SysResult made = MakeDirs(base, 0755); !made.ok()) {
        layout.missing.push_back("cgroup v1: cannot create " + base + ": " + Describe(made));
        return false;
      }
      out = base;
      return true;
    };
    layout.memory = prepare("memory", layout.v1_memory);
    layout.pids = prepare("pids", layout.v1_pids);
    layout.cpu_accounting = prepare("cpuacct", layout.v1_cpuacct);
    layout.cpu_limit = prepare("cpu", layout.v1_cpu);
    return layout;
  }
  layout.mode = CgroupMode::kNone;
  layout.missing.push_back(
      "no cgroup controllers: memory is limited by RLIMIT_AS only (imprecise), processes by "
      "RLIMIT_NPROC only, and no peak memory is measured");
  return layout;
}

void SweepStaleCgroups(const CgroupLayout& layout, long min_age_seconds) {
  for (const std::string& base :
       {layout.v2_base, layout.v1_memory, layout.v1_pids, layout.v1_cpuacct, layout.v1_cpu}) {
    if (base.empty()) continue;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(base, ec)) {
      struct stat st {};
      // A cgroup made a moment ago may not have been joined yet by its execution.
      if (!entry.is_directory(ec) || ::stat(entry.path().c_str(), &st) != 0 ||
          ::time(nullptr) - st.st_mtime < min_age_seconds) {
        continue;
      }
      ::rmdir(entry.path().c_str());
    }
  }
}

Result<ExecutionCgroup> ExecutionCgroup::Create(const CgroupLayout& layout, const std::string& name,
                                                const CgroupLimits& limits) {
  return Open(layout, name, limits, false);
}

Result<ExecutionCgroup> ExecutionCgroup::Adopt(const CgroupLayout& layout, const std::string& name,
                                               const CgroupLimits& limits) {
  auto cg = Open(layout, name, limits, true);
  if (!cg) return cg;
  if (layout.mode == CgroupMode::kV1 && !cg->memory_dir_.empty()) {
    (void)WriteStringToFile(cg->memory_dir_ + "/memory.max_usage_in_bytes", "0");
  }
  cg->cpu_baseline_ns_ = 0;
  if (auto seconds = cg->ReadStats().cpu_seconds) {
    cg->cpu_baseline_ns_ = static_cast<uint64_t>(*seconds * 1e9);
  }
  return cg;
}

Result<ExecutionCgroup> ExecutionCgroup::Open(const CgroupLayout& layout, const std::string& name,
                                              const CgroupLimits& limits, bool adopt) {
  using R = Result<ExecutionCgroup>;
  ExecutionCgroup cg;
  cg.mode_ = layout.mode;
  auto make = [&](const std::string& base) -> std::optional<std::string> {
    std::string dir = base + "/" + name;
    // Co-mounted v1 controllers (cpu,cpuacct) share one hierarchy, hence one directory.
    if (std::find(cg.dirs_.begin(), cg.dirs_.end(), dir) != cg.dirs_.end()) return dir;
    if ((adopt ? ::access(dir.c_str(), F_OK) : ::mkdir(dir.c_str(), 0755)) != 0) {
      return std::nullopt;
    }
    cg.dirs_.push_back(dir);
    return dir;
  };
  // CFS bandwidth: `quota` microseconds of CPU per 100 ms period, per core allowed; an adopted
  // cgroup may have had a quota that must now be lifted (-1 / "max").
  const long period_us = 100000;
  const long quota_us = limits.cpus > 0 ? static_cast<long>(limits.cpus * period_us) : -1;
  const bool set_cpu_limit = limits.cpus > 0 || adopt;
  auto write = [&](const std::string& path, const std::string& value) -> std::string {
    SysResult r = WriteStringToFile(path, value);
    return r.ok() ? "" : path + ": " + Describe(r);
  };
  if (layout.mode == CgroupMode::kV2) {
    auto dir = make(layout.v2_base);
    if (!dir)
      return R::Fail("cannot create cgroup " + layout.v2_base + "/" + name + ": " +
                     std::strerror(errno));
    if (layout.memory) {
      if (auto e = write(*dir + "/memory.max", std::to_string(limits.memory_bytes)); !e.empty()) {
        return R::Fail(e);
      }
      (void)write(*dir + "/memory.swap.max", "0");  // absent without swap accounting
      if (auto e = write(*dir + "/memory.oom.group", "1"); !e.empty()) return R::Fail(e);
      cg.memory_dir_ = *dir;
    }
    if (layout.pids) {
      if (auto e = write(*dir + "/pids.max", std::to_string(limits.max_processes)); !e.empty()) {
        return R::Fail(e);
      }
      cg.pids_dir_ = *dir;
    }
    if (layout.cpu_limit && set_cpu_limit) {
      std::string quota = quota_us > 0 ? std::to_string(quota_us) : "max";
      if (auto e = write(*dir + "/cpu.max", quota + " " + std::to_string(period_us)); !e.empty()) {
        return R::Fail(e);
      }
    }
    cg.cpu_dir_ = *dir;
  } else if (layout.mode == CgroupMode::kV1) {
    if (layout.memory) {
      auto dir = make(layout.v1_memory);
      if (!dir) return R::Fail("cannot create memory cgroup: " + std::string(std::strerror(errno)));
      // Without swap accounting the memsw file is absent; with it, swap must not extend the limit.
      // The kernel keeps memsw >= memory at every moment: raising an adopted cgroup's limit means
      // memsw first, lowering it memory first.
      const std::string bytes = std::to_string(limits.memory_bytes);
      const std::string memory = *dir + "/memory.limit_in_bytes";
      const std::string memsw = *dir + "/memory.memsw.limit_in_bytes";
      const bool has_memsw = Exists(memsw);
      std::string e = write(memory, bytes);
      if (!e.empty() && has_memsw && write(memsw, bytes).empty()) e = write(memory, bytes);
      if (e.empty() && has_memsw) e = write(memsw, bytes);
      if (!e.empty()) return R::Fail(e);
      cg.memory_dir_ = *dir;
    }
    if (layout.pids) {
      auto dir = make(layout.v1_pids);
      if (!dir) return R::Fail("cannot create pids cgroup: " + std::string(std::strerror(errno)));
      if (auto e = write(*dir + "/pids.max", std::to_string(limits.max_processes)); !e.empty()) {
        return R::Fail(e);
      }
      cg.pids_dir_ = *dir;
    }
    if (layout.cpu_accounting) {
      auto dir = make(layout.v1_cpuacct);
      if (dir) cg.cpu_dir_ = *dir;
    }
    if (layout.cpu_limit && set_cpu_limit) {
      auto dir = make(layout.v1_cpu);
      if (!dir) return R::Fail("cannot create cpu cgroup: " + std::string(std::strerror(errno)));
      for (auto [file, value] : {std::pair<const char*, long>{"cpu.cfs_period_us", period_us},
                                 {"cpu.cfs_quota_us", quota_us}}) {
        if (auto e = write(*dir + "/" + file, std::to_string(value)); !e.empty()) {
          return R::Fail(e);
        }
      }
    }
  }
  for (const auto& dir : cg.dirs_) {
    UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0644));
    if (!fd.valid()) {
      return R::Fail("cannot open " + dir + "/cgroup.procs: " + std::strerror(errno));
    }
    cg.procs_.push_back(std::move(fd));
  }
  return cg;
}

ExecutionCgroup::~ExecutionCgroup() {
  procs_.clear();
  // The kernel may take a moment to release a cgroup whose last task just exited.
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (::rmdir(it->c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::vector<int> ExecutionCgroup::procs_fds() const {
  std::vector<int> fds;
  for (const auto& fd : procs_) fds.push_back(fd.get());
  return fds;
}

CgroupStats ExecutionCgroup::ReadStats() const {
  CgroupStats stats;
  if (mode_ == CgroupMode::kV2) {
    if (!memory_dir_.empty()) {
      stats.peak_memory_bytes = ReadNumber(memory_dir_ + "/memory.peak");
      stats.oom_kills = ReadKey(memory_dir_ + "/memory.events", "oom_kill").value_or(0);
    }
    if (!cpu_dir_.empty()) {
      if (auto usec = ReadKey(cpu_dir_ + "/cpu.stat", "usage_usec")) {
        uint64_t ns = *usec * 1000;
        stats.cpu_seconds = static_cast<double>(ns - std::min(ns, cpu_baseline_ns_)) / 1e9;
      }
    }
  } else if (mode_ == CgroupMode::kV1) {
    if (!memory_dir_.empty()) {
      stats.peak_memory_bytes = ReadNumber(memory_dir_ + "/memory.max_usage_in_bytes");
      stats.oom_kills = ReadKey(memory_dir_ + "/memory.oom_control", "oom_kill").value_or(0);
    }
    if (!cpu_dir_.empty()) {
      if (auto ns = ReadNumber(cpu_dir_ + "/cpuacct.usage")) {
        stats.cpu_seconds = static_cast<double>(*ns - std::min(*ns, cpu_baseline_ns_)) / 1e9;
      }
    }
  }
  return stats;
}

void ExecutionCgroup::KillAll() const {
  if (dirs_.empty()) return;
  if (mode_ == CgroupMode::kV2 && WriteStringToFile(dirs_.front() + "/cgroup.kill", "1").ok()) {
    return;
  }
  for (const auto& dir : dirs_) {
    auto pids = ReadFileToString(dir + "/cgroup.procs");
    if (!pids) continue;
    std::istringstream in(*pids);
    for (pid_t pid; in >> pid;) {
      if (pid > 1) ::kill(pid, SIGKILL);
    }
  }
}

}  // namespace codecell::sandbox
