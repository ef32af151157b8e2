#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Everything the child needs to build its root filesystem, with every path already joined to the
// new root so that the post-fork code only walks these vectors (no allocation there).
struct RootfsPlan {
  struct Bind {
    std::string source;  // host path
    std::string target;  // full path under the new root (before pivot_root)
    bool is_dir = true;
    bool writable = false;  // only the package installer's environment
  };
  struct Symlink {
    std::string link_text;
    std::string path;  // full path under the new root
  };
  struct File {
    std::string path;  // full path under the new root
    std::string content;
  };
  struct SeedFile {
    std::string source;  // host file copied into the sandbox's /tmp, owned by the slot
    std::string path;    // full path under the new root
  };

  std::string root;               // host directory the new root tmpfs is mounted on
  std::vector<std::string> dirs;  // created in the root tmpfs, parents first
  std::vector<Bind> binds;        // system directories and files (read-only), extra_binds
  std::vector<Symlink> symlinks;
  std::vector<File> files;  // synthetic /etc files
  std::string proc_path, dev_path, shm_path, tmp_path, data_path, meta_path;
  std::vector<Bind> devices;             // host device nodes bound into /dev
  std::vector<Symlink> dev_symlinks;     // created before /dev turns read-only
  std::vector<File> meta_files;          // the runner's files, written into a read-only tmpfs
  std::string meta_options;              // that tmpfs's size/mode
  std::string overlay_dir;               // cwd while mounting the overlay (its paths are relative)
  std::string overlay_options;           // lowerdir=...,upperdir=...,workdir=... (relative)
  std::string tmp_options, shm_options;  // tmpfs size/mode options
  std::vector<std::string> tmp_dirs;     // created inside /tmp, owned by the slot
  std::vector<SeedFile> tmp_seed_files;  // copied inside /tmp, owned by the slot
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
};

struct RootfsOptions {
  std::string root;  // empty host directory used as the mount point
  // The overlay's layers, relative to overlay_dir: the kernel shows the options as given in
  // /proc/self/mountinfo, and relative paths keep the host's layout out of the sandbox's sight.
  std::string overlay_dir;
  std::string overlay_lower;                                    // the input files
  std::string overlay_upper;                                    // on the workspace tmpfs
  std::string overlay_work;                                     // on the workspace tmpfs
  std::vector<std::pair<std::string, std::string>> meta_files;  // name, content (runner files)
  unsigned long long tmp_bytes = 256ull << 20;
  unsigned long long shm_bytes = 64ull << 20;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string etc_passwd_name = "sandbox";
  std::vector<std::pair<std::string, std::string>> tmp_seed_files;  // host file, path in /tmp
  std::vector<std::string> tmp_dirs;                                // paths in /tmp
  struct ExtraBind {
    std::string source;  // host directory
    std::string target;  // absolute path inside the sandbox
    bool writable = false;
  };
  std::vector<ExtraBind> extra_binds;  // the package environment, a wheel directory
  // The host's resolver and CA certificates (/etc/resolv.conf, /etc/ssl, ...): only for the
  // package installer, which shares the host's network.
  bool network_files = false;
};

// Parent side: decide what goes into the sandbox's root (reads the host's / for symlinks).
Result<RootfsPlan> PlanRootfs(const RootfsOptions& options);

// Post-fork, in the child's fresh mount namespace, as root: build the root and pivot into it.
// On success the cwd is /mnt/data and the host's filesystem is no longer reachable.
SysResult BuildRootfsAndPivot(const RootfsPlan& plan);

}  // namespace codecell::sandbox
