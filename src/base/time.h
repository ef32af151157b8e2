#pragma once

#include <cstdint>
#include <string>

namespace codecell {

// RFC 3339 UTC with milliseconds, e.g. 2026-11-28T01:02:03.456Z, of milliseconds since the epoch.
std::string Rfc3339(int64_t millis);

}  // namespace codecell
