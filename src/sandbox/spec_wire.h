#pragma once

#include <nlohmann/json.hpp>

#include "sandbox/sandbox.h"

namespace codecell::sandbox {

// What a warm child needs of a SandboxSpec, as JSON: the rootfs plan, hostname, slot ids and
// rlimits. Descriptors travel beside it (fd_passing.h); the seccomp program and the interpreter's
// argv and environment are the zygote's own.
nlohmann::json SpecToJson(const SandboxSpec& spec);

// Fills those fields of `spec`; fails on a missing or mistyped field.
Status SpecFromJson(const nlohmann::json& json, SandboxSpec& spec);

}  // namespace codecell::sandbox
