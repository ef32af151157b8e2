#include "sandbox/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

namespace {

constexpr size_t kBlock = 4096;

bool AllZero(const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

// Writes `data` (read from `offset`) at the same offset, leaving its all-zero 4 KiB blocks as
// holes: a file written with zeros costs no more than one that seeked over them.
bool WriteLeavingHoles(int fd, const char* data, size_t n, off_t offset) {
  size_t pos = 0;
  while (pos < n) {
    size_t len = std::min(kBlock, n - pos);
    if (AllZero(data + pos, len)) {
      pos += len;
      continue;
    }
    size_t run = pos;  // a run of blocks with data, written at once
    while (run < n && !AllZero(data + run, std::min(kBlock, n - run))) {
      run += std::min(kBlock, n - run);
    }
    for (size_t done = pos; done < run;) {
      ssize_t w = ::pwrite(fd, data + done, run - done, offset + static_cast<off_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      done += static_cast<size_t>(w);
    }
    pos = run;
  }
  return true;
}

// Copies [from, to) of `in` to the same range of `out`.
SysResult CopyRange(int in, int out, off_t from, off_t to) {
  char buffer[65536];
  while (from < to) {
    size_t want = static_cast<size_t>(std::min<off_t>(to - from, sizeof buffer));
    ssize_t n = ::pread(in, buffer, want, from);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return SysResult::FromErrno("read");
    if (n == 0) break;  // the file shrank under us: the copy ends at its new end
    if (!WriteLeavingHoles(out, buffer, static_cast<size_t>(n), from)) {
      return SysResult::FromErrno("write");
    }
    from += n;
  }
  return SysResult::Ok();
}

// The data of `in` copied to `out` hole for hole: only the data segments that SEEK_DATA and
// SEEK_HOLE report are read (a 45 MiB file of one seek costs no read), then the size is set.
SysResult CopySparse(int in, int out) {
  struct stat st {};
  if (::fstat(in, &st) != 0) return SysResult::FromErrno("fstat the source");
  const off_t size = st.st_size;
  off_t offset = 0;
  while (offset < size) {
    off_t data = ::lseek(in, offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) {
      // A filesystem without SEEK_DATA (EINVAL): all of it is data, zero blocks still become
      // holes.
      data = offset;
    }
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    if (SysResult copied = CopyRange(in, out, data, std::min(hole, size)); !copied.ok()) {
      return copied;
    }
    offset = hole;
  }
  if (::ftruncate(out, size) != 0) return SysResult::FromErrno("ftruncate the copy");
  return SysResult::Ok();
}

}  // namespace

SysResult CopyFile(const std::string& source, const std::string& target, unsigned mode) {
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return SysResult::FromErrno("open the source");
  UniqueFd out(::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!out.valid()) return SysResult::FromErrno("create the copy");
  SysResult copied = CopySparse(in.get(), out.get());
  if (!copied.ok()) {
    out.reset();
    ::unlink(target.c_str());
  }
  return copied;
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
