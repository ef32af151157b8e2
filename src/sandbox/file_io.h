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
// Reads at most `limit` bytes.
Result<std::string> ReadFileToString(const std::string& path, size_t limit = 1 << 20);

}  // namespace codecell::sandbox
