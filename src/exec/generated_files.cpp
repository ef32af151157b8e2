#include "exec/generated_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "sandbox/file_io.h"
#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::exec {
namespace {

using sandbox::UniqueFd;

constexpr int kMaxDepth = 64;

struct Candidate {
  std::string path;
  uint64_t size;
  timespec mtime;  // from the walk's fstatat: what UnchangedInput compares with the input's
};

void Walk(int dir_fd, const std::string& prefix, int depth, std::vector<Candidate>& regular,
          std::vector<SkippedFile>& skipped) {
  if (depth > kMaxDepth) {
    skipped.push_back({prefix, 0, "directory nesting too deep"});
    return;
  }
  DIR* dir = ::fdopendir(dir_fd);
  if (dir == nullptr) {
    ::close(dir_fd);
    return;
  }
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string rel = prefix.empty() ? name : prefix + "/" + name;
    struct stat st {};
    if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      int child =
          ::openat(::dirfd(dir), entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) Walk(child, rel, depth + 1, regular, skipped);
    } else if (S_ISREG(st.st_mode)) {
      regular.push_back({rel, static_cast<uint64_t>(st.st_size), st.st_mtim});
    } else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      // An overlayfs whiteout: the code deleted an input. Nothing to collect.
    } else if (S_ISLNK(st.st_mode)) {
      skipped.push_back({rel, 0, "symlink"});
    } else {
      skipped.push_back({rel, 0, "not a regular file"});
    }
  }
  ::closedir(dir);
}

bool SameContent(int a, int b) {
  char x[65536], y[65536];
  for (;;) {
    ssize_t n = ::read(a, x, sizeof x);
    if (n < 0) return false;
    ssize_t m = 0;
    while (m < n) {
      ssize_t k = ::read(b, y + m, static_cast<size_t>(n - m));
      if (k <= 0) return false;
      m += k;
    }
    if (n == 0) return ::read(b, y, 1) == 0;
    if (std::memcmp(x, y, static_cast<size_t>(n)) != 0) return false;
  }
}

// True when `rel` exists in lower/ as a regular file with the same bytes and the same mtime: copied
// up because the code opened it for writing (sqlite3 does for a read) or changed its metadata, but
// never written. A write or a touch, even of the same bytes, sets a new mtime (Workspace::AddInput
// gives inputs a whole-second one so that no write can land on it).
bool UnchangedInput(const std::string& upper, const std::string& lower, const Candidate& c) {
  UniqueFd in_lower(::open((lower + "/" + c.path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in_lower.valid()) return false;
  struct stat st {};
  if (::fstat(in_lower.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) != c.size || c.mtime.tv_sec != st.st_mtim.tv_sec ||
      c.mtime.tv_nsec != st.st_mtim.tv_nsec) {
    return false;
  }
  UniqueFd in_upper(::open((upper + "/" + c.path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  return in_upper.valid() && SameContent(in_upper.get(), in_lower.get());
}

// Why a generated file could not be kept, for the client: no host path, the cause in words.
std::string CopyFailureReason(int err) {
  if (sandbox::FailureKindOfErrno(err) == sandbox::FailureKind::kStorageFull) {
    return "not stored: the service's storage is full";
  }
  return std::string("not stored: ") + std::strerror(err);
}

// Copies one file out of the upper layer; 0 or the errno of the failure.
int CopyOut(const std::string& source, const std::string& target) {
  sandbox::SysResult made =
      sandbox::MakeDirs(std::filesystem::path(target).parent_path().string(), 0755);
  if (!made.ok()) return made.err;
  return sandbox::CopyFile(source, target, 0644).err;
}

}  // namespace

Collection CollectGeneratedFiles(const std::string& upper, const std::string& lower,
                                 const std::string& dest_dir, const CollectLimits& limits) {
  Collection result;
  std::vector<Candidate> regular;
  int root = ::open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) {
    result.error = "cannot open the workspace's upper layer " + upper + ": " + std::strerror(errno);
    return result;
  }
  Walk(root, "", 0, regular, result.skipped);
  std::sort(regular.begin(), regular.end(),
            [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  for (const auto& c : regular) {
    if (UnchangedInput(upper, lower, c)) continue;
    if (c.size > limits.max_file_bytes) {
      result.skipped.push_back(
          {c.path, c.size,
           "larger than the limit of " + std::to_string(limits.max_file_bytes >> 20) + " MiB"});
    } else if (result.files.size() >= limits.max_files) {
      result.skipped.push_back(
          {c.path, c.size, "over the limit of " + std::to_string(limits.max_files) + " files"});
    } else {
      std::string target = dest_dir + "/" + c.path;
      if (int err = CopyOut(upper + "/" + c.path, target); err != 0) {
        result.skipped.push_back({c.path, c.size, CopyFailureReason(err)});
      } else {
        result.files.push_back({c.path, c.size, target});
      }
    }
  }
  std::sort(
      result.skipped.begin(), result.skipped.end(),
      [](const SkippedFile& a, const SkippedFile& b) { return a.relative_path < b.relative_path; });
  return result;
}

}  // namespace codecell::exec
