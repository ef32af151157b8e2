#!/usr/bin/env bash
# Builds every target in the CMake build types that scripts/build.sh does not (it builds
# RelWithDebInfo), each in build-<type>/, warnings as errors as everywhere. GCC warns differently
# at each optimisation level (a Release build once failed where RelWithDebInfo passed), and
# packagers build Release. Run after scripts/build.sh (it installs the build dependencies).
# Usage: scripts/check-build-types.sh [TYPE...]   (default: Release Debug MinSizeRel)
set -euo pipefail
cd "$(dirname "$0")/.."
types=("$@")
((${#types[@]})) || types=(Release Debug MinSizeRel)
for type in "${types[@]}"; do
  start=$SECONDS
  cmake -S . -B "build-$type" -DCMAKE_BUILD_TYPE="$type" >/dev/null
  if ! cmake --build "build-$type" -j"$(nproc)" >"build-$type/build.log" 2>&1; then
    grep -E -B2 -A12 "error|Error" "build-$type/build.log" | head -80 >&2
    echo "codecell: the $type build failed (build-$type/build.log)" >&2
    exit 1
  fi
  echo "codecell: $type builds every target ($((SECONDS - start)) s)"
done
