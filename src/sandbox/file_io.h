#pragma once

#include <string>

#include "sandbox/sys_result.h"

namespace codecell::sandbox {

// Small whole-file helpers for control files (cgroupfs, procfs). Parent side.
SysResult WriteStringToFile(const std::string& path, const std::string& content);
// Reads at most `limit` bytes.
Result<std::string> ReadFileToString(const std::string& path, size_t limit = 1 << 20);

}  // namespace codecell::sandbox
