#!/usr/bin/env bash
# Installs what codecell needs from Debian 12's archive (only what is missing), then builds
# build/codecell. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  build-essential cmake pkg-config libseccomp-dev nlohmann-json3-dev libcli11-dev libgtest-dev
  libcpp-httplib-dev libtomlplusplus-dev libsqlite3-dev libssl-dev
  # the zygote embeds CPython (pkg-config python3-embed); its init is linked statically (libc.a)
  libpython3-dev libpython3.11-dev libc6-dev
  # the interpreter and the preinstalled stack the sandbox offers
  python3 python3-numpy python3-pandas python3-matplotlib python3-scipy python3-seaborn
  python3-sklearn python3-openpyxl python3-yaml
  # approved packages: pip runs (sandboxed) from Debian's python3-pip
  python3-pip
  # tests and benchmarks
  python3-pytest bubblewrap curl util-linux
  # the package tests build their own wheels
  python3-setuptools python3-wheel
  # the Python client (clients/python) and its example discord.py cog
  python3-aiohttp python3-discord
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The MCP tests drive codecell with the official TypeScript SDK's client, from the npm registry
# (pinned by tests/mcp/package-lock.json). Debian 12's nodejs (18) is enough; a node and npm that
# are already there (e.g. NodeSource's, which conflicts with Debian's npm) are used as they are.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "codecell: missing Debian packages (${missing[*]}); run this script as root" >&2
    exit 1
  fi
  echo "codecell: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

# The SDK for tests/mcp, into the build dir (again only when the lock file changed).
mkdir -p build/mcp-client
if ! cmp -s tests/mcp/package-lock.json build/mcp-client/package-lock.json ||
  [ ! -d build/mcp-client/node_modules/@modelcontextprotocol/sdk ]; then
  cp tests/mcp/package.json tests/mcp/package-lock.json build/mcp-client/
  # Only the tests need it: without the npm registry the service still builds and starts, and
  # tests/mcp says what is missing (and fails under CI=true).
  (cd build/mcp-client && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "codecell: warning: could not install the MCP SDK from npm (tests/mcp needs it)" >&2
fi
