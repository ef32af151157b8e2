#include "api/config.h"
#include "cli/commands.h"
#include "runner/zygote.h"

namespace codecell::cli {

std::function<int()> AddZygoteCommand(CLI::App& app) {
  auto o = std::make_shared<runner::ZygoteOptions>();
  o->data_dir = DefaultDataDir();
  auto preload = std::make_shared<std::string>();
  CLI::App* zygote = app.add_subcommand(
      "zygote",
      "Run a warm-interpreter zygote on a unix socket: it imports the preloads once and keeps "
      "pre-forked children for `codecell run --zygote SOCKET`. The service starts its own.");
  zygote->add_option("--socket", o->socket_path, "unix socket to listen on (created 0600)")
      ->required();
  zygote->add_option("--data-dir", o->data_dir,
                     "where matplotlib's font cache is kept (default $CODECELL_DATA_DIR or "
                     "/var/lib/codecell)");
  zygote->add_option("--pool", o->pool_size, "pre-forked children kept waiting (default 4)");
  zygote->add_option("--preload", *preload,
                     "comma-separated modules to import and warm (default "
                     "numpy,pandas,matplotlib,matplotlib.pyplot,scipy.stats,seaborn; \"\" for "
                     "none)");
  return [o, preload, zygote] {
    if (zygote->count("--preload") > 0) o->preload = api::SplitCommas(*preload);
    return runner::ZygoteMain(*o);
  };
}

}  // namespace codecell::cli
