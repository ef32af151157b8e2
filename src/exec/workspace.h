#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::exec {

using sandbox::Result;
using sandbox::Status;

// The host side of one execution, under <work_root>/<execution_id>/ (mode 0700, root only):
//   lock   flock held while the execution lives (a start-up sweep removes unlocked leftovers)
//   root/  empty mount point for the sandbox's root tmpfs (mounted only in the child's namespace)
//   lower/ the input files under their display names: the read-only overlay layer
//   ws/    a tmpfs of the workspace size holding upper/ (everything the code writes) and work/
// The workspace tmpfs is mounted in the supervisor's private mount namespace, so it vanishes with
// the supervisor even if it crashes; the directory itself is removed when this object dies.
class Workspace {
 public:
  static Result<Workspace> Create(const std::string& work_root, const std::string& execution_id,
                                  uint64_t workspace_bytes, uid_t uid, gid_t gid);
  Workspace() = default;
  Workspace(Workspace&&) noexcept;
  Workspace& operator=(Workspace&&) noexcept;
  ~Workspace();

  // Copies `host_path` into lower/ under `display_name`, or "name (2).ext" if taken. Returns the
  // name used.
  Result<std::string> AddInput(const std::string& host_path, const std::string& display_name);

  const std::string& dir() const { return dir_; }
  std::string root() const { return dir_ + "/root"; }
  std::string lower() const { return dir_ + "/lower"; }
  std::string upper() const { return dir_ + "/ws/upper"; }
  std::string overlay_work() const { return dir_ + "/ws/work"; }

  // Removes the directories of executions whose owner died (their lock is free), leaving alone
  // any younger than `min_age_seconds`.
  static void SweepStale(const std::string& work_root, long min_age_seconds = 60);

 private:
  void Destroy();
  std::string dir_;
  bool ws_mounted_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  sandbox::UniqueFd lock_;
};

// Gives this process its own mount namespace whose mounts do not propagate to the host (and
// which the kernel tears down when the process exits). Call before any thread starts.
Status EnterPrivateMountNamespace();

}  // namespace codecell::exec
