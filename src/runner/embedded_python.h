#pragma once

// CPython embedded in the zygote: started as `python3 -I -B -u` would start, then warmed up
// (src/runner/warm_up.py) and given the runner as a module. Include Python.h before this header.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sandbox/sys_result.h"

namespace codecell::runner {

// Same flags as `python3 -I -B -u` (see InterpreterArgv), with the environment already replaced
// by InterpreterEnv, so that a warm execution sees what a cold one sees.
sandbox::Status StartPython();

struct Interpreter {
  PyObject* warm_main = nullptr;  // runner.py's _warm_main, called in each child
  nlohmann::json report;          // warm_up.py's: {"preloaded": [...], "failed": {...}}
};

// Imports and exercises `preload`, loads the runner, and freezes every object (gc.freeze) so that
// a child's collections never copy the zygote's pages.
sandbox::Result<Interpreter> Preload(const std::vector<std::string>& preload);

}  // namespace codecell::runner
