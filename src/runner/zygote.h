#pragma once

#include <string>
#include <vector>

namespace codecell::runner {

// The preload list used when none is configured: what a data-analysis execution imports most.
std::vector<std::string> DefaultPreload();

struct ZygoteOptions {
  std::string socket_path;  // unix socket, created 0600; only root peers are served
  std::string data_dir;     // matplotlib's font cache lives under <data_dir>/cache
  size_t pool_size = 4;     // pre-forked children kept waiting (clamped by available memory)
  std::vector<std::string> preload = DefaultPreload();
};

// `codecell zygote`: a single-threaded process embedding CPython. It imports and warms the preload
// list once, then keeps `pool_size` children forked into fresh pid, network, IPC and UTS
// namespaces. A client (the process that runs an execution: `codecell run` or the service's
// helper) connects, gets one child's channel, pidfd and report pipe, and sends it the sandbox spec;
// the child confines itself (sandbox::Confine, seccomp last) and runs the runner in the interpreter
// it inherited. When the child ends the zygote writes its wait status on the report pipe.
// Prints one JSON line on stdout once ready ({"ready": true, ...}) or fails with exit status 1.
int ZygoteMain(const ZygoteOptions& options);

}  // namespace codecell::runner
