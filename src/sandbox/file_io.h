#pragma once

#include <string>
#include <string_view>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Small whole-file helpers for control files (cgroupfs, procfs). Parent side.
SysResult WriteStringToFile(const std::string& path, const std::string& content);
// mkdir -p: creates `path` and its missing parents with `mode`; ok when it already exists.
SysResult MakeDirs(const std::string& path, unsigned mode);
// Writes all of `data` to `fd`, retrying short writes and EINTR; false on any other failure.
bool WriteAll(int fd, std::string_view data);
// Copies the regular file `source` (never through a symlink, at either end) to `target`, created
// or truncated with `mode`. On failure the partial target is removed (a full disk gets its room
// back) and the errno is the real one: libstdc++'s copy_file reports a full disk as EIO. Holes
// stay holes and all-zero 4 KiB blocks become holes: a sparse file costs the host what it wrote.
SysResult CopyFile(const std::string& source, const std::string& target, unsigned mode);
// Reads at most `limit` bytes.
Result<std::string> ReadFileToString(const std::string& path, size_t limit = 1 << 20);

}  // namespace codecell::sandbox
