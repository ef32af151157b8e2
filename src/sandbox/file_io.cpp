#include "sandbox/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "sandbox/unique_fd.h"

namespace codecell::sandbox {

SysResult WriteStringToFile(const std::string& path, const std::string& content) {
  // O_CREAT: harmless on cgroupfs (the files exist) and lets tests use a plain directory tree.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return SysResult::FromErrno("open for write");
  // Control files take one write; a short write is an error there.
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n < 0) return SysResult::FromErrno("write");
  if (static_cast<size_t>(n) != content.size()) return SysResult::Error(EIO, "short write");
  return SysResult::Ok();
}

SysResult MakeDirs(const std::string& path, unsigned mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    if (::mkdir(path.substr(0, pos).c_str(), mode) != 0 && errno != EEXIST) {
      return SysResult::FromErrno("mkdir");
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return SysResult::FromErrno("stat");
  if (!S_ISDIR(st.st_mode)) return SysResult::Error(ENOTDIR, "mkdir");
  return SysResult::Ok();
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

SysResult CopyFile(const std::string& source, const std::string& target, unsigned mode) {
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return SysResult::FromErrno("open the source");
  UniqueFd out(::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!out.valid()) return SysResult::FromErrno("create the copy");
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(in.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return SysResult::Ok();
    SysResult failed = n < 0 ? SysResult::FromErrno("read")
                       : WriteAll(out.get(), std::string_view(buffer, static_cast<size_t>(n)))
                           ? SysResult::Ok()
                           : SysResult::FromErrno("write");
    if (!failed.ok()) {
      out.reset();
      ::unlink(target.c_str());
      return failed;
    }
  }
}

Result<std::string> ReadFileToString(const std::string& path, size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return Result<std::string>::Fail(path + ": " + std::strerror(errno));
  }
  std::string out;
  char buffer[8192];
  while (out.size() < limit) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Result<std::string>::Fail(path + ": " + std::strerror(errno));
    if (n == 0) break;
    out.append(buffer, std::min(static_cast<size_t>(n), limit - out.size()));
  }
  return out;
}

}  // namespace codecell::sandbox
