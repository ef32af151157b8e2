# Writes the runner's Python source into a C++ translation unit as a raw string literal.
file(READ ${INPUT} CONTENT)
string(FIND "${CONTENT}" ")codecell_runner\"" CLASH)
if(NOT CLASH EQUAL -1)
  message(FATAL_ERROR "runner.py contains the raw-string delimiter")
endif()
file(WRITE ${OUTPUT} "// Generated from src/runner/runner.py; do not edit.\n#include \"runner/runner_files.h\"\nnamespace codecell::runner {\nconst char* const kRunnerSource = R\"codecell_runner(${CONTENT})codecell_runner\";\n}\n")
