// Python.h first, as CPython asks.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
// clang-format off
#include "runner/embedded_python.h"
// clang-format on

#include "runner/runner_files.h"

namespace codecell::runner {

using nlohmann::json;

sandbox::Status StartPython() {
  PyPreConfig pre;
  PyPreConfig_InitPythonConfig(&pre);
  pre.isolated = 1;
  pre.use_environment = 0;
  PyStatus status = Py_PreInitialize(&pre);
  if (PyStatus_Exception(status)) return sandbox::Status::Fail("Py_PreInitialize failed");
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.isolated = 1;
  config.use_environment = 0;
  config.user_site_directory = 0;
  config.safe_path = 1;
  config.write_bytecode = 0;
  config.buffered_stdio = 0;
  config.install_signal_handlers = 1;
  config.parse_argv = 0;
  char* argv[] = {const_cast<char*>(kSystemPython), nullptr};
  status = PyConfig_SetBytesArgv(&config, 1, argv);
  if (!PyStatus_Exception(status)) {
    status = PyConfig_SetBytesString(&config, &config.program_name, kSystemPython);
  }
  if (!PyStatus_Exception(status)) {
    status = PyConfig_SetBytesString(&config, &config.executable, kSystemPython);
  }
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    return sandbox::Status::Fail(std::string("cannot start the embedded interpreter: ") +
                                 (status.err_msg ? status.err_msg : "unknown error"));
  }
  return sandbox::OkStatus();
}

sandbox::Result<Interpreter> Preload(const std::vector<std::string>& preload) {
  using R = sandbox::Result<Interpreter>;
  PyObject* main_module = PyImport_AddModule("__main__");  // borrowed
  PyObject* globals = PyModule_GetDict(main_module);       // borrowed
  std::string setup = "__codecell_preload = " + json(preload).dump() + "\n";
  if (PyRun_SimpleString(setup.c_str()) != 0 || PyRun_SimpleString(kWarmUpSource) != 0) {
    return R::Fail("the warm-up script failed");
  }
  Interpreter interpreter;
  PyObject* report =
      PyRun_String("__import__('json').dumps(_report)", Py_eval_input, globals, globals);
  if (report != nullptr) {
    interpreter.report = json::parse(PyUnicode_AsUTF8(report), nullptr, false);
    Py_DECREF(report);
  }
  // The runner becomes a module of its own (not __main__), compiled under the path it has inside
  // the sandbox so that tracebacks look the same as in a cold execution.
  PyObject* code = Py_CompileString(kRunnerSource, "/run/codecell/runner.py", Py_file_input);
  if (code == nullptr) {
    PyErr_Print();
    return R::Fail("cannot compile the runner");
  }
  PyObject* module = PyImport_ExecCodeModuleEx("_codecell_runner", code, "/run/codecell/runner.py");
  Py_DECREF(code);
  if (module == nullptr) {
    PyErr_Print();
    return R::Fail("cannot load the runner");
  }
  interpreter.warm_main = PyObject_GetAttrString(module, "_warm_main");
  Py_DECREF(module);
  if (interpreter.warm_main == nullptr) {
    PyErr_Print();
    return R::Fail("the runner has no _warm_main");
  }
  // Clear the warm-up's names, then move every object into the permanent generation: a collection
  // in a child never walks (and so never copies) the zygote's objects.
  if (PyRun_SimpleString("for _k in [k for k in globals() if not k.startswith('__')] + "
                         "['__codecell_preload']:\n    globals().pop(_k, None)\n"
                         "del _k\nimport gc\ngc.collect()\ngc.freeze()\n") != 0) {
    return R::Fail("cannot freeze the interpreter's objects");
  }
  return interpreter;
}

}  // namespace codecell::runner
