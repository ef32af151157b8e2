# Writes a Python program (the runner, the analysis program) into a C++ translation unit as a raw
# string literal: -DINPUT=<file.py> -DOUTPUT=<file.cpp> -DVARIABLE=<name in codecell::runner>.
if(NOT DEFINED VARIABLE)
  set(VARIABLE kRunnerSource)
endif()
file(READ ${INPUT} CONTENT)
string(FIND "${CONTENT}" ")codecell_runner\"" CLASH)
if(NOT CLASH EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter")
endif()
get_filename_component(NAME ${INPUT} NAME)
file(WRITE ${OUTPUT} "// Generated from src/runner/${NAME}; do not edit.\n#include \"runner/runner_files.h\"\nnamespace codecell::runner {\nconst char* const ${VARIABLE} = R\"codecell_runner(${CONTENT})codecell_runner\";\n}\n")
