#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::packages {

using sandbox::Result;

struct Distribution {
  std::string name;  // normalized
  std::string version;
};

// The shared package environment's directories under <data_dir>/packages:
//
//   current -> envs/<name>     the live environment (a pip --prefix tree); switched by rename(2)
//   envs/<name>/               environments; all but current are old, removed once unused
//   envs/<name>.partial/       being built; never mounted; removed when the build fails
//   lock                       flock: one build at a time across every codecell process
//
// An environment, once live, never changes: an install builds the next one beside it (hard
// links of the current one plus what pip adds) and switches. Executions hold a shared flock on
// the directory they mount (an EnvironmentLease); removal takes it exclusively without waiting,
// so an environment in use is never removed under an execution.
class EnvironmentLease {
 public:
  EnvironmentLease() = default;
  const std::string& path() const { return path_; }  // host directory to mount
  const std::string& name() const { return name_; }

 private:
  friend class PackageEnvironment;
  sandbox::UniqueFd dir_;  // holds LOCK_SH
  std::string path_, name_;
};

class BuildLock {
 public:
  BuildLock() = default;

 private:
  friend class PackageEnvironment;
  sandbox::UniqueFd fd_;  // holds LOCK_EX on <root>/lock
};

class PackageEnvironment {
 public:
  explicit PackageEnvironment(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  // Creates the directories (mode 0711: sandboxes traverse them, nobody lists them).
  sandbox::SysResult Init() const;

  // The live environment's name, or "" when there is none yet.
  std::string CurrentName() const;
  // A shared lock on the live environment; nullopt when there is none. Fails only on I/O errors.
  Result<std::optional<EnvironmentLease>> Acquire() const;

  // Blocks until this process holds the build lock.
  Result<BuildLock> LockBuild() const;

  // Under the build lock: a new environment directory `<name>.partial` (empty, or hard links of
  // the live one), owned by `uid` where pip must write (directories), root elsewhere.
  Result<std::string> CreatePartial(const BuildLock& lock, bool copy_current, uid_t uid,
                                    gid_t gid) const;
  // Under the build lock: hands the tree to root (nothing of it stays writable by the installer's
  // uid), renames it into place and switches `current` to it atomically. Returns its name.
  Result<std::string> Commit(const BuildLock& lock, const std::string& partial_path) const;
  // Removes a failed build.
  void Discard(const std::string& partial_path) const;

  // Removes every environment but the live one that no lease holds, and leftovers of crashed
  // builds (only with the build lock, since a partial may be in progress). Returns how many went.
  size_t SweepUnused(const BuildLock* lock) const;

  // Distributions installed in an environment directory (its *.dist-info), by name.
  static std::vector<Distribution> ListDistributions(const std::string& env_path);
  // The system interpreter's (Debian's dist-packages and /usr/local's).
  static std::vector<Distribution> SystemDistributions();

 private:
  std::string EnvsDir() const { return root_ + "/envs"; }
  std::string root_;
};

}  // namespace codecell::packages
