#pragma once

#include <string>

#include "sandbox/sandbox.h"

namespace codecell::exec {

// Runs `spec` on a warm child of the zygote listening at `socket_path` (runner/zygote.h): asks the
// zygote for a child, then sends the child the spec with this process's mount namespace (where
// the workspace is mounted), the output pipes and the cgroups. The returned process is not our
// child: it is signalled through its pidfd and reaped by the zygote, which reports its wait status
// on the report pipe like a cold sandbox's init does.
sandbox::Result<sandbox::SandboxProcess> LaunchWarmSandbox(const std::string& socket_path,
                                                           const sandbox::SandboxSpec& spec);

}  // namespace codecell::exec
