#!/bin/sh
# Runs a test binary as nobody (65534) when started as root, else as the caller: the binary is
# copied into a fresh temp dir that nobody can read, and run from there.
# Usage: run_unprivileged.sh BINARY [ARGS...]
set -eu
binary="$1"
shift
if [ "$(id -u)" != 0 ]; then exec "$binary" "$@"; fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cp "$binary" "$dir/tests"
chmod 755 "$dir" "$dir/tests"
cd "$dir"
setpriv --reuid=65534 --regid=65534 --clear-groups "$dir/tests" "$@"
