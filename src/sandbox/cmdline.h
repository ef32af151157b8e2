#pragma once

namespace codecell::sandbox {

// Records where the kernel placed this process's argument and environment strings (call first
// thing in main). The sandbox's init is a clone of the supervisor, so without this its
// /proc/1/cmdline would show the supervisor's command line (host paths, the code) and its memory
// would still hold the supervisor's environment (the host's secrets). PR_SET_MM would be the
// clean way, but it needs CAP_SYS_RESOURCE, which containers often withhold (these machines do).
void RegisterProcessStrings(int argc, char** argv, char** envp);

// Post-fork: overwrite both areas in this process's copy of memory, leaving the command line
// "codecell-init". Allocates nothing.
void ScrubProcessStrings();
// Post-fork: /proc/self/cmdline and /proc/self/environ become `argv` and `envp` (NUL-separated,
// cut to the areas' sizes). A warm child shows what a cold execution's exec'd interpreter shows.
void SetProcessStrings(const char* const* argv, const char* const* envp);

}  // namespace codecell::sandbox
