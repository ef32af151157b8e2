#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_<what>.cpp) with clang, ASan and UBSan into
# build-fuzz/, then runs each for SECONDS (default 60) on its corpus, tests/fuzz/corpus/<what>/.
# Any crash, leak or sanitizer report fails (exit 1) and leaves the input in build-fuzz/crashes/.
# Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
# New inputs that raise coverage go to build-fuzz/corpus/<what>/ (not the repo's corpus): merge
# the useful ones by hand with `fuzz_<what> -merge=1 tests/fuzz/corpus/<what> build-fuzz/corpus/<what>`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(filename spec_wire mcp tool_call config base64 display_channel)
# clang and its runtimes (libFuzzer, ASan, UBSan) from Debian, only what is missing.
missing=()
for p in clang libclang-rt-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "codecell: installing ${missing[*]} (the fuzz build needs them)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCODECELL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >/dev/null
# Every target, not only the harnesses: this is also the check that the whole tree builds with clang.
cmake --build build-fuzz -j"$(nproc)" >build-fuzz/build.log 2>&1 || {
  grep -E -A8 "error" build-fuzz/build.log | head -60 >&2
  echo "codecell: the fuzz build failed (build-fuzz/build.log)" >&2
  exit 1
}
mkdir -p build-fuzz/crashes
failed=()
for h in "${harnesses[@]}"; do
  mkdir -p "build-fuzz/corpus/$h"
  log="build-fuzz/fuzz_$h.log"
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="build-fuzz/crashes/$h-" -print_final_stats=1 \
    "build-fuzz/corpus/$h" "tests/fuzz/corpus/$h" >"$log" 2>&1; then
    echo "codecell: fuzz_$h: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" |
      grep -o '[0-9]*$') runs in ${seconds} s, no finding"
  else
    tail -40 "$log" >&2
    failed+=("$h")
  fi
done
if ((${#failed[@]})); then
  echo "codecell: fuzzing found problems in: ${failed[*]} (inputs in build-fuzz/crashes/)" >&2
  exit 1
fi
