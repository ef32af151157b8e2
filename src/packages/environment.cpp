#include "packages/environment.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "packages/allowlist.h"

namespace codecell::packages {
namespace {

namespace fs = std::filesystem;
using sandbox::SysResult;
using sandbox::UniqueFd;

constexpr const char* kPartialSuffix = ".partial";
constexpr const char* kTrashPrefix = ".trash-";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(buffer, 8);
}

// Sortable and unique: 20261128T051200Z-1a2b3c4d.
std::string NewEnvironmentName() {
  time_t now = ::time(nullptr);
  tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  return std::string(stamp) + "-" + RandomSuffix();
}

// Every entry below `path` (not `path` itself), never following symlinks.
template <typename Fn>
void WalkTree(const std::string& path, Fn fn) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    fn(it->path(), it->symlink_status(ec));
  }
}

// name-version.dist-info (wheel installs) or name-version.egg-info (Debian's distutils builds).
std::optional<Distribution> ParseMetadataDir(const std::string& dirname) {
  std::string stem;
  if (EndsWith(dirname, ".dist-info")) {
    stem = dirname.substr(0, dirname.size() - 10);
  } else if (EndsWith(dirname, ".egg-info")) {
    stem = dirname.substr(0, dirname.size() - 9);
  } else {
    return std::nullopt;
  }
  size_t dash = stem.find('-');
  if (dash == std::string::npos || dash == 0) return std::nullopt;
  std::string version = stem.substr(dash + 1);
  // egg-info names may carry "-py3.11" after the version.
  version = version.substr(0, version.find('-'));
  if (version.empty()) return std::nullopt;
  return Distribution{NormalizeName(stem.substr(0, dash)), version};
}

}  // namespace

SysResult PackageEnvironment::Init() const {
  for (const std::string& dir : {root_, EnvsDir()}) {
    if (::mkdir(dir.c_str(), 0711) != 0 && errno != EEXIST) return SysResult::FromErrno("mkdir");
    if (::chmod(dir.c_str(), 0711) != 0) return SysResult::FromErrno("chmod");
  }
  return SysResult::Ok();
}

std::string PackageEnvironment::CurrentName() const {
  char target[4096];
  ssize_t n = ::readlink((root_ + "/current").c_str(), target, sizeof target - 1);
  if (n <= 0) return "";
  std::string text(target, static_cast<size_t>(n));
  size_t slash = text.rfind('/');
  return slash == std::string::npos ? text : text.substr(slash + 1);
}

Result<std::optional<EnvironmentLease>> PackageEnvironment::Acquire() const {
  using R = Result<std::optional<EnvironmentLease>>;
  // A switch and a removal may happen between reading `current` and locking what it named; the
  // removal renames first, so a lock on a directory no longer at its path means: read again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string name = CurrentName();
    if (name.empty()) return std::optional<EnvironmentLease>();
    EnvironmentLease lease;
    lease.name_ = name;
    lease.path_ = EnvsDir() + "/" + name;
    lease.dir_.reset(::open(lease.path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!lease.dir_.valid()) {
      if (errno == ENOENT) continue;
      return R::Fail(Errno("open " + lease.path_));
    }
    while (::flock(lease.dir_.get(), LOCK_SH) != 0) {
      if (errno != EINTR) return R::Fail(Errno("flock " + lease.path_));
    }
    struct stat held {
    }, at_path{};
    if (::fstat(lease.dir_.get(), &held) == 0 && ::stat(lease.path_.c_str(), &at_path) == 0 &&
        held.st_dev == at_path.st_dev && held.st_ino == at_path.st_ino) {
      return std::optional<EnvironmentLease>(std::move(lease));
    }
  }
  return R::Fail("the package environment kept changing while it was being opened");
}

Result<BuildLock> PackageEnvironment::LockBuild() const {
  BuildLock lock;
  std::string path = root_ + "/lock";
  lock.fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.fd_.valid()) return Result<BuildLock>::Fail(Errno("open " + path));
  while (::flock(lock.fd_.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Result<BuildLock>::Fail(Errno("flock " + path));
  }
  return lock;
}

Result<std::string> PackageEnvironment::CreatePartial(const BuildLock&, bool copy_current,
                                                      uid_t uid, gid_t gid) const {
  using R = Result<std::string>;
  std::string partial = EnvsDir() + "/" + NewEnvironmentName() + kPartialSuffix;
  if (::mkdir(partial.c_str(), 0755) != 0) return R::Fail(Errno("mkdir " + partial));
  std::string current = CurrentName();
  std::error_code ec;
  if (copy_current && !current.empty()) {
    // Hard links: the copy costs one link per file. pip unlinks a file before it writes one (it
    // never writes into an existing inode), and the files are root's, so the live environment's
    // inodes cannot change through the copy.
    const fs::path from = EnvsDir() + "/" + current;
    for (fs::recursive_directory_iterator it(from, fs::directory_options::none, ec), end;
         !ec && it != end; it.increment(ec)) {
      const fs::path target = fs::path(partial) / fs::relative(it->path(), from, ec);
      fs::file_status st = it->symlink_status(ec);
      if (fs::is_symlink(st)) {
        fs::copy_symlink(it->path(), target, ec);
      } else if (fs::is_directory(st)) {
        fs::create_directory(target, ec);
      } else if (fs::is_regular_file(st)) {
        fs::create_hard_link(it->path(), target, ec);
      }
      if (ec) break;
    }
    if (ec) {
      Discard(partial);
      return R::Fail("cannot copy the package environment " + current + ": " + ec.message());
    }
  }
  // pip (as `uid`) may create and remove entries in every directory, and write no existing file.
  auto give = [&](const fs::path& p) { return ::lchown(p.c_str(), uid, gid) == 0; };
  bool ok = give(partial);
  WalkTree(partial, [&](const fs::path& p, const fs::file_status& st) {
    if (fs::is_directory(st)) ok = give(p) && ok;
  });
  if (!ok) {
    Discard(partial);
    return R::Fail(Errno("chown " + partial));
  }
  return partial;
}

Result<std::string> PackageEnvironment::Commit(const BuildLock&,
                                               const std::string& partial_path) const {
  using R = Result<std::string>;
  if (!EndsWith(partial_path, kPartialSuffix)) return R::Fail("not a partial environment");
  bool ok = ::lchown(partial_path.c_str(), 0, 0) == 0;
  WalkTree(partial_path, [&](const fs::path& p, const fs::file_status& st) {
    ok = ::lchown(p.c_str(), 0, 0) == 0 && ok;
    // Nothing setuid, nothing writable by others, whatever the wheel's zip said.
    if (fs::is_regular_file(st) || fs::is_directory(st)) {
      struct stat s {};
      if (::lstat(p.c_str(), &s) == 0) ::chmod(p.c_str(), s.st_mode & 0755);
    }
  });
  if (!ok) return R::Fail(Errno("chown " + partial_path));
  ::chmod(partial_path.c_str(), 0755);
  std::string final_path =
      partial_path.substr(0, partial_path.size() - std::strlen(kPartialSuffix));
  if (::rename(partial_path.c_str(), final_path.c_str()) != 0) {
    return R::Fail(Errno("rename " + partial_path));
  }
  std::string name = fs::path(final_path).filename().string();
  std::string link = root_ + "/current." + RandomSuffix();
  if (::symlink(("envs/" + name).c_str(), link.c_str()) != 0) return R::Fail(Errno("symlink"));
  if (::rename(link.c_str(), (root_ + "/current").c_str()) != 0) {
    std::string error = Errno("switch " + root_ + "/current");
    ::unlink(link.c_str());
    return R::Fail(error);
  }
  UniqueFd dir(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());
  return name;
}

void PackageEnvironment::Discard(const std::string& partial_path) const {
  std::error_code ec;
  fs::remove_all(partial_path, ec);
}

size_t PackageEnvironment::SweepUnused(const BuildLock* lock) const {
  const std::string current = CurrentName();
  size_t removed = 0;
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(EnvsDir(), ec)) {
    names.push_back(e.path().filename().string());
  }
  for (const std::string& name : names) {
    const std::string path = EnvsDir() + "/" + name;
    if (name == current) continue;
    if (name.rfind(kTrashPrefix, 0) == 0) {
      fs::remove_all(path, ec);
      continue;
    }
    if (EndsWith(name, kPartialSuffix)) {
      if (lock != nullptr) removed += fs::remove_all(path, ec) > 0 ? 1 : 0;
      continue;
    }
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!dir.valid()) continue;
    if (::flock(dir.get(), LOCK_EX | LOCK_NB) != 0) continue;  // an execution still uses it
    const std::string trash = EnvsDir() + "/" + kTrashPrefix + name;
    if (::rename(path.c_str(), trash.c_str()) != 0) continue;
    dir.reset();
    fs::remove_all(trash, ec);
    ++removed;
  }
  return removed;
}

std::vector<Distribution> PackageEnvironment::ListDistributions(const std::string& env_path) {
  std::vector<Distribution> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(env_path, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    std::string name = it->path().filename().string();
    if (auto d = ParseMetadataDir(name)) {
      out.push_back(*d);
      it.disable_recursion_pending();
    } else if (it.depth() >= 5) {
      it.disable_recursion_pending();  // site directories sit at <prefix>/local/lib/pythonX.Y/...
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::vector<Distribution> PackageEnvironment::SystemDistributions() {
  std::vector<Distribution> out;
  std::error_code ec;
  std::vector<std::string> dirs = {"/usr/lib/python3/dist-packages"};
  for (const char* lib : {"/usr/lib", "/usr/local/lib"}) {
    for (const auto& e : fs::directory_iterator(lib, ec)) {
      if (e.path().filename().string().rfind("python3.", 0) != 0) continue;
      dirs.push_back(e.path().string() + "/dist-packages");
      dirs.push_back(e.path().string() + "/site-packages");
    }
  }
  for (const auto& dir : dirs) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (auto d = ParseMetadataDir(e.path().filename().string())) out.push_back(*d);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const auto& a, const auto& b) { return a.name == b.name; }),
            out.end());
  return out;
}

}  // namespace codecell::packages
