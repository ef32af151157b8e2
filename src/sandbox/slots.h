#pragma once

#include <sys/types.h>

#include <string>

#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::sandbox {

// A per-execution unprivileged identity. Slot n runs as uid = gid = base + n; at most one
// execution holds a slot at a time, across every codecell process on the host (an flock on
// <lock_dir>/<n>.lock), so RLIMIT_NPROC per uid is a per-execution limit.
struct SlotConfig {
  std::string lock_dir = "/run/codecell/slots";
  uid_t base_uid = 900000;
  int count = 256;
};

class SlotLease {
 public:
  static Result<SlotLease> Acquire(const SlotConfig& config);
  SlotLease() = default;
  int slot() const { return slot_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return static_cast<gid_t>(uid_); }

 private:
  int slot_ = -1;
  uid_t uid_ = 0;
  UniqueFd lock_;
};

}  // namespace codecell::sandbox
