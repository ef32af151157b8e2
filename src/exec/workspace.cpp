#include "exec/workspace.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include "exec/file_types.h"
#include "sandbox/file_io.h"

namespace codecell::exec {
namespace fs = std::filesystem;

namespace {

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// A failed call, with errno's kind: a full data dir is the operator's to fix (507), not a bug.
template <typename T = sandbox::Unit>
Result<T> ErrnoFailure(const std::string& what) {
  const int err = errno;
  return Result<T>::Fail(what + ": " + std::strerror(err), sandbox::FailureKindOfErrno(err));
}

Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return ErrnoFailure("mkdir " + path);
  return sandbox::OkStatus();
}

}  // namespace

Status EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return Status::Fail(ErrnoText("unshare(CLONE_NEWNS) (codecell needs root or CAP_SYS_ADMIN)"));
  }
  // Slave: host mounts still reach us, ours never reach the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    return Status::Fail(ErrnoText("make / a slave mount"));
  }
  return sandbox::OkStatus();
}

Result<Workspace> Workspace::Create(const std::string& work_root, const std::string& execution_id,
                                    uint64_t workspace_bytes, uid_t uid, gid_t gid) {
  using R = Result<Workspace>;
  std::error_code ec;
  fs::create_directories(work_root, ec);
  if (ec) {
    return R::Fail("cannot create " + work_root + ": " + ec.message(),
                   sandbox::FailureKindOfErrno(ec.value()));
  }
  Workspace w;
  w.uid_ = uid;
  w.gid_ = gid;
  if (auto s = MakeDir(work_root + "/" + execution_id, 0700); !s) return R::Fail(s);
  w.dir_ = work_root + "/" + execution_id;
  w.lock_.reset(::open((w.dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!w.lock_.valid() || ::flock(w.lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    return ErrnoFailure<Workspace>("lock " + w.dir_);
  }
  for (const char* sub : {"/root", "/lower", "/ws"}) {
    if (auto s = MakeDir(w.dir_ + sub, 0755); !s) return R::Fail(s);
  }
  std::string options = "size=" + std::to_string(workspace_bytes) + ",mode=0755";
  if (::mount("tmpfs", (w.dir_ + "/ws").c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) !=
      0) {
    return R::Fail(ErrnoText("mount workspace tmpfs"));
  }
  w.ws_mounted_ = true;
  if (auto s = MakeDir(w.upper(), 0755); !s) return R::Fail(s);
  if (auto s = MakeDir(w.overlay_work(), 0700); !s) return R::Fail(s);
  // The overlay's root takes its owner from upper/: /mnt/data belongs to the slot.
  if (::chown(w.upper().c_str(), uid, gid) != 0) return R::Fail(ErrnoText("chown upper"));
  return w;
}

Workspace::Workspace(Workspace&& o) noexcept
    : dir_(std::move(o.dir_)),
      ws_mounted_(std::exchange(o.ws_mounted_, false)),
      uid_(o.uid_),
      gid_(o.gid_),
      lock_(std::move(o.lock_)) {
  o.dir_.clear();
}

Workspace& Workspace::operator=(Workspace&& o) noexcept {
  if (this != &o) {
    Destroy();
    dir_ = std::move(o.dir_);
    o.dir_.clear();
    ws_mounted_ = std::exchange(o.ws_mounted_, false);
    uid_ = o.uid_;
    gid_ = o.gid_;
    lock_ = std::move(o.lock_);
  }
  return *this;
}

Workspace::~Workspace() { Destroy(); }

void Workspace::Destroy() {
  if (dir_.empty()) return;
  if (ws_mounted_) ::umount2((dir_ + "/ws").c_str(), MNT_DETACH);
  std::error_code ec;
  fs::remove_all(dir_, ec);
  dir_.clear();
  lock_.reset();
}

Result<std::string> Workspace::AddInput(const std::string& host_path,
                                        const std::string& display_name) {
  using R = Result<std::string>;
  std::string base = SafeFileName(display_name);
  std::string name = base;
  for (int n = 2; fs::exists(lower() + "/" + name); ++n) name = NumberedFileName(base, n);
  std::string target = lower() + "/" + name;
  if (sandbox::SysResult copied = sandbox::CopyFile(host_path, target, 0644); !copied.ok()) {
    return R::Fail("cannot copy input " + host_path + ": " + Describe(copied),
                   sandbox::FailureKindOfErrno(copied.err));
  }
  // Owned by the slot so that the copy-up in /mnt/data stays writable by the code.
  if (::chown(target.c_str(), uid_, gid_) != 0 || ::chmod(target.c_str(), 0644) != 0) {
    return ErrnoFailure<std::string>("chown input " + target);
  }
  // The source's mtime in whole seconds: any write or touch inside the sandbox then gives the
  // copied-up file another mtime, which is how CollectGeneratedFiles tells a file the code wrote
  // (even with the same bytes) from one it only opened. A fresh copy's own mtime could equal the
  // code's write in the same clock tick (file times are jiffy-coarse: 4 ms here).
  struct stat source {};
  if (::stat(host_path.c_str(), &source) != 0) return ErrnoFailure<std::string>("stat input");
  const timespec times[2] = {{source.st_mtim.tv_sec, 0}, {source.st_mtim.tv_sec, 0}};
  if (::utimensat(AT_FDCWD, target.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoFailure<std::string>("set the mtime of input " + target);
  }
  return name;
}

void Workspace::SweepStale(const std::string& work_root, long min_age_seconds) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(work_root, ec)) {
    std::string dir = entry.path().string();
    // A workspace is locked a moment after its directory appears (mkdir, create the lock file,
    // flock): a young one may be in that moment, so only older ones are judged by their lock.
    // Measured: without the age check, 1 in 100 concurrent executions lost its directory.
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || ::time(nullptr) - st.st_mtime < min_age_seconds) {
      continue;
    }
    sandbox::UniqueFd lock(::open((dir + "/lock").c_str(), O_RDWR | O_CLOEXEC));
    if (lock.valid() && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;  // alive
    ::umount2((dir + "/ws").c_str(), MNT_DETACH);
    fs::remove_all(dir, ec);
  }
}

}  // namespace codecell::exec
