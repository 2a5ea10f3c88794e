#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing. Safe to run repeatedly.
# Needs root (or sudo) and apt; on machines without apt (the GPU machine) headers travel instead:
# see third_party/README.md.
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config zlib1g-dev libstb-dev nlohmann-json3-dev doctest-dev libopenblas-openmp-dev
          dataset-fashion-mnist)
# The fuzz pass of .ci/run (docs/reliability.md): clang, its sanitizer and libFuzzer runtimes, and its
# OpenMP. Installed when apt offers them; never a reason to fail.
optional=(clang libclang-rt-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
install_optional() {
  local absent=()
  for p in "${optional[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
       apt-cache policy "$p" 2>/dev/null | grep -q "Candidate: [0-9]"; then
      absent+=("$p")
    fi
  done
  if [ ${#absent[@]} -eq 0 ]; then return 0; fi
  echo "install_deps: installing the fuzz pass's ${absent[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${absent[@]}" ||
    echo "install_deps: could not install ${absent[*]}; the fuzz pass will be skipped" >&2
}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  command -v apt-get >/dev/null && install_optional
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "install_deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_optional
