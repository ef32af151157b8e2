#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::sandbox {

enum class CgroupMode { kNone, kV1, kV2 };

// Where execution cgroups go and which controllers work. Hosts differ: pure v2 (most servers),
// hybrid v1 + an empty v2 tree (these machines), or none at all (some containers).
struct CgroupLayout {
  CgroupMode mode = CgroupMode::kNone;
  std::string v2_base;  // v2: parent of execution cgroups, controllers enabled in its subtree
  std::string v1_memory, v1_pids, v1_cpuacct, v1_cpu;  // v1: parent per controller, "" = none
  bool memory = false, pids = false, cpu_accounting = false, cpu_limit = false;
  std::vector<std::string> missing;  // one sentence per missing piece, with what to do

  std::string Describe() const;
  static CgroupLayout V2At(const std::string& base);  // tests and CODECELL_CGROUP_V2_BASE
};

// Reads the mount table and our own cgroup; prepares the `codecell` parent cgroups (creating them
// and enabling v2 controllers as needed). Never fails: what cannot be used is listed in `missing`.
CgroupLayout DetectCgroups(const std::string& mountinfo_path = "/proc/self/mountinfo",
                           const std::string& self_cgroup_path = "/proc/self/cgroup");

// Removes execution cgroups left by a supervisor that died (rmdir fails with EBUSY on any cgroup
// that still has processes, and cgroups younger than `min_age_seconds` are left alone, so live
// executions are never touched, even one whose child has not joined its cgroup yet).
void SweepStaleCgroups(const CgroupLayout& layout, long min_age_seconds = 60);

struct CgroupLimits {
  uint64_t memory_bytes = 1024ull << 20;
  uint64_t max_processes = 64;
  double cpus = 0;  // CPU bandwidth in cores (cpu.max / cfs quota); 0 = unlimited
};

struct CgroupStats {
  std::optional<uint64_t> peak_memory_bytes;
  std::optional<double> cpu_seconds;
  uint64_t oom_kills = 0;
};

// One cgroup (per controller on v1) for one execution, removed when destroyed.
class ExecutionCgroup {
 public:
  static Result<ExecutionCgroup> Create(const CgroupLayout& layout, const std::string& name,
                                        const CgroupLimits& limits);
  // Takes over a cgroup a warm child has already joined (made by the zygote with Create): sets
  // `limits` (cpus 0 lifts the bandwidth limit) and starts the CPU and peak-memory counts afresh.
  // Joining is the expensive part, measured 7-13 ms per migration on these machines (the kernel
  // waits for an RCU grace period), so warm children do it while idle.
  static Result<ExecutionCgroup> Adopt(const CgroupLayout& layout, const std::string& name,
                                       const CgroupLimits& limits);
  ExecutionCgroup() = default;
  ExecutionCgroup(ExecutionCgroup&&) noexcept = default;
  ExecutionCgroup& operator=(ExecutionCgroup&&) noexcept = default;
  ~ExecutionCgroup();

  // Opened cgroup.procs files: the child writes "0" to each to join before anything else.
  std::vector<int> procs_fds() const;
  CgroupStats ReadStats() const;
  // Kill every process in the cgroup (v2 cgroup.kill; v1 a SIGKILL to each listed pid).
  void KillAll() const;
  bool limits_memory() const { return !memory_dir_.empty(); }
  bool limits_processes() const { return !pids_dir_.empty(); }
  const std::vector<std::string>& dirs() const { return dirs_; }
  // Forgets the cgroup without removing it (it was handed to another process).
  void Release() {
    procs_.clear();
    dirs_.clear();
  }

 private:
  CgroupMode mode_ = CgroupMode::kNone;
  std::vector<std::string> dirs_;
  std::vector<UniqueFd> procs_;
  std::string memory_dir_, pids_dir_, cpu_dir_;
  uint64_t cpu_baseline_ns_ = 0;  // subtracted from the CPU count (Adopt)

  static Result<ExecutionCgroup> Open(const CgroupLayout& layout, const std::string& name,
                                      const CgroupLimits& limits, bool adopt);
};

}  // namespace codecell::sandbox
