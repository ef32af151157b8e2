#include "sandbox/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>

namespace codecell::sandbox {
namespace {

// Host top-level entries that Python and its packages need. On merged-/usr systems (Debian 12)
// all but /usr are symlinks and are recreated as symlinks.
constexpr const char* kSystemEntries[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};

// Host /etc entries that Python, numpy's BLAS and matplotlib read. Nothing with secrets.
constexpr const char* kEtcEntries[] = {"ld.so.cache", "localtime",  "matplotlibrc", "mime.types",
                                       "python3",     "python3.11", "alternatives", "fonts"};

// What a resolver and TLS need (the package installer only).
constexpr const char* kNetworkEtcEntries[] = {"resolv.conf", "nsswitch.conf", "host.conf",
                                              "gai.conf",    "ssl",           "ca-certificates"};

constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom"};

std::string Join(const std::string& a, const std::string& b) {
  if (b.empty()) return a;
  if (!a.empty() && a.back() == '/') return a + (b.front() == '/' ? b.substr(1) : b);
  return a + (b.front() == '/' ? b : "/" + b);
}

void AddDirWithParents(const std::string& root, const std::string& inner,
                       std::set<std::string>& seen, std::vector<std::string>& dirs) {
  std::string path;
  size_t pos = 1;
  while (pos <= inner.size()) {
    size_t next = inner.find('/', pos);
    if (next == std::string::npos) next = inner.size();
    path = inner.substr(0, next);
    if (!path.empty() && seen.insert(path).second) dirs.push_back(Join(root, path));
    pos = next + 1;
  }
}

// --- post-fork helpers: no allocation below this line ---

SysResult MakeDir(const char* path, mode_t mode) {
  if (::mkdir(path, mode) != 0 && errno != EEXIST) return SysResult::FromErrno("mkdir");
  return SysResult::Ok();
}

SysResult MakeEmptyFile(const char* path) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
  if (fd < 0) return SysResult::FromErrno("create mount point");
  ::close(fd);
  return SysResult::Ok();
}

SysResult BindMount(const char* source, const char* target, bool is_dir, bool writable) {
  SysResult made = is_dir ? MakeDir(target, 0755) : MakeEmptyFile(target);
  if (!made.ok()) return made;
  if (::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return SysResult::FromErrno("bind mount");
  }
  // A bind mount ignores MS_RDONLY on creation; it takes a remount to apply it.
  const unsigned long read_only = writable ? 0 : MS_RDONLY;
  if (::mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | read_only | MS_NOSUID | MS_NODEV,
              nullptr) != 0) {
    return SysResult::FromErrno("remount bind");
  }
  return SysResult::Ok();
}

SysResult BindDevice(const char* source, const char* target) {
  SysResult made = MakeEmptyFile(target);
  if (!made.ok()) return made;
  if (::mount(source, target, nullptr, MS_BIND, nullptr) != 0) {
    return SysResult::FromErrno("bind device");
  }
  if (::mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC, nullptr) !=
      0) {
    return SysResult::FromErrno("remount device");
  }
  return SysResult::Ok();
}

SysResult WriteWholeFile(const char* path, const char* data, size_t size, mode_t mode) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return SysResult::FromErrno("create file");
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      SysResult r = SysResult::FromErrno("write file");
      ::close(fd);
      return r;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  ::close(fd);
  return SysResult::Ok();
}

SysResult CopyFileOwned(const char* source, const char* target, uid_t uid, gid_t gid) {
  int in = ::open(source, O_RDONLY | O_CLOEXEC);
  if (in < 0) return SysResult::FromErrno("open seed file");
  int out = ::open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (out < 0) {
    SysResult r = SysResult::FromErrno("create seed file");
    ::close(in);
    return r;
  }
  char buffer[16384];
  SysResult result = SysResult::Ok();
  for (;;) {
    ssize_t n = ::read(in, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = SysResult::FromErrno("read seed file");
      break;
    }
    if (n == 0) break;
    if (::write(out, buffer, static_cast<size_t>(n)) != n) {
      result = SysResult::FromErrno("write seed file");
      break;
    }
  }
  if (result.ok() && ::fchown(out, uid, gid) != 0) result = SysResult::FromErrno("chown seed file");
  ::close(in);
  ::close(out);
  return result;
}

#define RETURN_IF_FAILED(expr) \
  do {                         \
    SysResult r_ = (expr);     \
    if (!r_.ok()) return r_;   \
  } while (0)

}  // namespace

Result<RootfsPlan> PlanRootfs(const RootfsOptions& o) {
  RootfsPlan plan;
  plan.root = o.root;
  plan.owner_uid = o.uid;
  plan.owner_gid = o.gid;
  std::set<std::string> seen;
  auto dir = [&](const std::string& inner) { AddDirWithParents(o.root, inner, seen, plan.dirs); };

  // A host entry appears in the sandbox as what it is on the host: a symlink is recreated (its
  // target is inside what is bound), a directory or a regular file is bound read-only.
  auto mirror = [&](const std::string& host) {
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return;
    if (S_ISLNK(st.st_mode)) {
      char text[4096];
      ssize_t n = ::readlink(host.c_str(), text, sizeof text - 1);
      if (n > 0) {
        plan.symlinks.push_back({std::string(text, static_cast<size_t>(n)), Join(o.root, host)});
      }
    } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
      plan.binds.push_back({host, Join(o.root, host), S_ISDIR(st.st_mode)});
    }
  };
  for (const char* entry : kSystemEntries) mirror(std::string("/") + entry);
  if (plan.binds.empty() || plan.binds.front().source != "/usr") {
    return Result<RootfsPlan>::Fail("the host has no /usr directory");
  }
  dir("/etc");
  for (const char* entry : kEtcEntries) mirror(std::string("/etc/") + entry);
  std::string uid = std::to_string(o.uid), gid = std::to_string(o.gid);
  plan.files.push_back({Join(o.root, "/etc/passwd"),
                        "root:x:0:0:root:/root:/usr/sbin/nologin\n" + o.etc_passwd_name +
                            ":x:" + uid + ":" + gid +
                            ":codecell sandbox:/tmp:/bin/sh\n"
                            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"});
  plan.files.push_back({Join(o.root, "/etc/group"),
                        "root:x:0:\n" + o.etc_passwd_name + ":x:" + gid + ":\nnogroup:x:65534:\n"});
  plan.files.push_back(
      {Join(o.root, "/etc/hosts"), "127.0.0.1\tlocalhost codecell\n::1\tlocalhost\n"});
  plan.files.push_back({Join(o.root, "/etc/hostname"), "codecell\n"});

  if (o.network_files) {
    // Bound as the files they resolve to: /etc/resolv.conf is often a symlink into /run.
    for (const char* entry : kNetworkEtcEntries) {
      std::string host = std::string("/etc/") + entry;
      char resolved[PATH_MAX];
      struct stat st {};
      if (::realpath(host.c_str(), resolved) == nullptr || ::stat(resolved, &st) != 0) continue;
      if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) continue;
      plan.binds.push_back({resolved, Join(o.root, host), S_ISDIR(st.st_mode)});
    }
  }
  for (const auto& extra : o.extra_binds) {
    dir(extra.target);
    plan.binds.push_back({extra.source, Join(o.root, extra.target), true, extra.writable});
  }

  dir("/proc");
  dir("/dev");
  dir("/tmp");
  dir("/mnt/data");
  dir("/run/codecell");
  plan.proc_path = Join(o.root, "/proc");
  plan.dev_path = Join(o.root, "/dev");
  plan.shm_path = Join(o.root, "/dev/shm");
  plan.tmp_path = Join(o.root, "/tmp");
  plan.data_path = Join(o.root, "/mnt/data");
  plan.meta_path = Join(o.root, "/run/codecell");
  size_t meta_bytes = 0;
  for (const auto& [name, content] : o.meta_files) {
    plan.meta_files.push_back({plan.meta_path + "/" + name, content});
    meta_bytes += content.size();
  }
  // A bind mount of a host directory would show its host path in /proc/self/mountinfo.
  plan.meta_options = "size=" + std::to_string(meta_bytes + (256u << 10)) + ",mode=0755";
  for (const char* device : kDevices) {
    std::string host = std::string("/dev/") + device;
    struct stat st {};
    if (::stat(host.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) {
      return Result<RootfsPlan>::Fail("the host has no character device " + host);
    }
    plan.devices.push_back({host, Join(o.root, host), false});
  }
  plan.dev_symlinks = {{"/proc/self/fd", Join(o.root, "/dev/fd")},
                       {"/proc/self/fd/0", Join(o.root, "/dev/stdin")},
                       {"/proc/self/fd/1", Join(o.root, "/dev/stdout")},
                       {"/proc/self/fd/2", Join(o.root, "/dev/stderr")}};
  plan.overlay_dir = o.overlay_dir;
  plan.overlay_options =
      "lowerdir=" + o.overlay_lower + ",upperdir=" + o.overlay_upper + ",workdir=" + o.overlay_work;
  plan.tmp_options = "size=" + std::to_string(o.tmp_bytes) + ",mode=1777";
  plan.shm_options = "size=" + std::to_string(o.shm_bytes) + ",mode=1777";
  for (const auto& inner : o.tmp_dirs) plan.tmp_dirs.push_back(Join(plan.tmp_path, inner));
  for (const auto& [host, inner] : o.tmp_seed_files) {
    plan.tmp_seed_files.push_back({host, Join(plan.tmp_path, inner)});
  }
  return plan;
}

SysResult BuildRootfsAndPivot(const RootfsPlan& p) {
  // Nothing we mount may propagate back to the host's namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return SysResult::FromErrno("make mounts private");
  }
  if (::mount("tmpfs", p.root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") != 0) {
    return SysResult::FromErrno("mount root tmpfs");
  }
  for (const auto& d : p.dirs) RETURN_IF_FAILED(MakeDir(d.c_str(), 0755));
  for (const auto& b : p.binds) {
    RETURN_IF_FAILED(BindMount(b.source.c_str(), b.target.c_str(), b.is_dir, b.writable));
  }
  for (const auto& s : p.symlinks) {
    if (::symlink(s.link_text.c_str(), s.path.c_str()) != 0) return SysResult::FromErrno("symlink");
  }
  for (const auto& f : p.files) {
    RETURN_IF_FAILED(WriteWholeFile(f.path.c_str(), f.content.data(), f.content.size(), 0644));
  }

  // procfs must be mounted while we still see the host's root: once it is detached the kernel
  // refuses a fresh procfs mount in some configurations (measured: EPERM inside a user ns).
  if (::mount("proc", p.proc_path.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) !=
      0) {
    return SysResult::FromErrno("mount /proc");
  }

  if (::mount("tmpfs", p.dev_path.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") !=
      0) {
    return SysResult::FromErrno("mount /dev tmpfs");
  }
  for (const auto& d : p.devices) RETURN_IF_FAILED(BindDevice(d.source.c_str(), d.target.c_str()));
  for (const auto& s : p.dev_symlinks) {
    if (::symlink(s.link_text.c_str(), s.path.c_str()) != 0) {
      return SysResult::FromErrno("symlink in /dev");
    }
  }
  RETURN_IF_FAILED(MakeDir(p.shm_path.c_str(), 01777));
  if (::mount("tmpfs", p.shm_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              p.shm_options.c_str()) != 0) {
    return SysResult::FromErrno("mount /dev/shm");
  }
  if (::mount(nullptr, p.dev_path.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
              nullptr) != 0) {
    return SysResult::FromErrno("remount /dev read-only");
  }

  if (::mount("tmpfs", p.tmp_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, p.tmp_options.c_str()) !=
      0) {
    return SysResult::FromErrno("mount /tmp");
  }
  for (const auto& d : p.tmp_dirs) {
    RETURN_IF_FAILED(MakeDir(d.c_str(), 0755));
    if (::chown(d.c_str(), p.owner_uid, p.owner_gid) != 0) {
      return SysResult::FromErrno("chown /tmp dir");
    }
  }
  for (const auto& f : p.tmp_seed_files) {
    RETURN_IF_FAILED(CopyFileOwned(f.source.c_str(), f.path.c_str(), p.owner_uid, p.owner_gid));
  }

  if (::chdir(p.overlay_dir.c_str()) != 0) return SysResult::FromErrno("chdir workspace");
  if (::mount("overlay", p.data_path.c_str(), "overlay", MS_NOSUID | MS_NODEV,
              p.overlay_options.c_str()) != 0) {
    return SysResult::FromErrno("mount /mnt/data overlay");
  }
  if (::mount("tmpfs", p.meta_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              p.meta_options.c_str()) != 0) {
    return SysResult::FromErrno("mount /run/codecell tmpfs");
  }
  for (const auto& f : p.meta_files) {
    RETURN_IF_FAILED(WriteWholeFile(f.path.c_str(), f.content.data(), f.content.size(), 0644));
  }
  if (::mount(nullptr, p.meta_path.c_str(), nullptr,
              MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return SysResult::FromErrno("remount /run/codecell read-only");
  }

  if (::mount(nullptr, p.root.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
              nullptr) != 0) {
    return SysResult::FromErrno("remount root read-only");
  }

  // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves nothing of
  // the host reachable, without needing a directory for the old root.
  if (::chdir(p.root.c_str()) != 0) return SysResult::FromErrno("chdir new root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return SysResult::FromErrno("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return SysResult::FromErrno("detach old root");
  if (::chdir("/mnt/data") != 0) return SysResult::FromErrno("chdir /mnt/data");
  return SysResult::Ok();
}

}  // namespace codecell::sandbox
