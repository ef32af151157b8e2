#pragma once

#include <string>

#include "sandbox/sandbox.h"

namespace codecell::exec {

// A pre-forked child of the zygote (runner/zygote.h), handed to this process and waiting for its
// execution. It is not our child: it is signalled through its pidfd and reaped by the zygote, which
// reports its wait status on the report pipe like a cold sandbox's init does.
struct WarmChild {
  pid_t pid = -1;
  sandbox::UniqueFd channel, pidfd, report;
  std::string cgroup;  // the cgroup it already joined ("" without cgroups); see Adopt
};

// Asks the zygote listening at `socket_path` for a child.
sandbox::Result<WarmChild> AcquireWarmChild(const std::string& socket_path);

// Sends the child `spec` with this process's mount namespace (where the workspace is mounted) and
// the output pipes; it confines itself and runs the code.
sandbox::Result<sandbox::SandboxProcess> StartWarmChild(WarmChild child,
                                                        const sandbox::SandboxSpec& spec);

}  // namespace codecell::exec
