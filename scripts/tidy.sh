#!/usr/bin/env bash
# clang-tidy over src/ with the checks of .clang-tidy (each finding an error), on the compile
# commands of the clang build that scripts/fuzz.sh configures and builds (build-fuzz/: run that
# first; the generated sources must exist). About 10 minutes on 2 cores: the time is parsing
# (nlohmann-json, httplib, toml++ headers), not the checks.
# Usage: scripts/tidy.sh [FILE...]   (default: every .cpp under src/)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v run-clang-tidy >/dev/null; then
  echo "codecell: installing clang-tidy" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq clang-tidy >/dev/null
fi
if [ ! -f build-fuzz/compile_commands.json ]; then
  echo "codecell: no build-fuzz/compile_commands.json: run scripts/fuzz.sh first" >&2
  exit 1
fi
files=("$@")
((${#files[@]})) || mapfile -t files < <(find "$PWD/src" -name '*.cpp' | sort)
start=$SECONDS
if ! run-clang-tidy -p build-fuzz -j"$(nproc)" -quiet "${files[@]}" >build-fuzz/tidy.log 2>&1; then
  sed 's/\x1b\[[0-9;]*m//g' build-fuzz/tidy.log | grep -E -A4 "(warning|error):" | head -80 >&2
  echo "codecell: clang-tidy found problems (build-fuzz/tidy.log)" >&2
  exit 1
fi
echo "codecell: clang-tidy is clean on ${#files[@]} files ($((SECONDS - start)) s)"
