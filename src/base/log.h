#pragma once

#include <nlohmann/json.hpp>

namespace codecell {

// One JSON log line on stderr, with "ts" added; lines from concurrent threads never interleave.
// Levels: "info" for what happened, "warning" for a degraded path taken (a cold run instead of a
// warm one), "error" for codecell's own failures. A client's mistake is never an "error".
void LogJson(nlohmann::json line);

// JSON text that never throws: invalid UTF-8 is replaced (it comes from code and clients).
std::string DumpJson(const nlohmann::json& value);

}  // namespace codecell
