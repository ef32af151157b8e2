#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "sandbox/cmdline.h"

#ifndef CODECELL_VERSION
#define CODECELL_VERSION "0.1.0"
#endif

int main(int argc, char** argv, char** envp) {
  codecell::sandbox::RegisterProcessStrings(argc, argv, envp);
  // Descriptors 0-2 must be open: otherwise the first pipe or file we open would take their
  // number and sandbox output would land in it.
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
  }
  CLI::App app{
      "codecell: a self-hosted code interpreter for LLM chat bots. Runs untrusted Python in a "
      "kernel-enforced sandbox.",
      "codecell"};
  app.set_version_flag("--version", CODECELL_VERSION);
  app.require_subcommand(1);
  auto run = codecell::cli::AddRunCommand(app);
  auto status = codecell::cli::AddStatusCommand(app);
  auto serve = codecell::cli::AddServeCommand(app);
  auto cleanup = codecell::cli::AddCleanupCommand(app);
  auto execute = codecell::cli::AddExecuteHelperCommand(app);
  auto zygote = codecell::cli::AddZygoteCommand(app);
  auto packages = codecell::cli::AddPackagesCommand(app);
  auto mcp = codecell::cli::AddMcpCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (app.got_subcommand("run")) return run();
  if (app.got_subcommand("status")) return status();
  if (app.got_subcommand("serve")) return serve();
  if (app.got_subcommand("cleanup")) return cleanup();
  if (app.got_subcommand("__execute")) return execute();
  if (app.got_subcommand("zygote")) return zygote();
  if (app.got_subcommand("packages")) return packages();
  if (app.got_subcommand("mcp")) return mcp();
  return 2;
}
