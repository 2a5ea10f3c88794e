#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing. Safe to run repeatedly.
# Needs root (or sudo) and apt; on machines without apt (the GPU machine) headers travel instead:
# see third_party/README.md.
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config zlib1g-dev libstb-dev nlohmann-json3-dev doctest-dev libopenblas-openmp-dev
          dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "install_deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
