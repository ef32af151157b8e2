#pragma once

#include <string>

namespace codecell::exec {

// `prefix` + 22 URL-safe characters carrying 128 random bits (getrandom).
std::string NewRandomId(const std::string& prefix);

}  // namespace codecell::exec
