#!/usr/bin/env bash
# Copies the header-only third-party libraries the build uses (nlohmann/json, doctest, stb) from this
# machine's system folders into third_party/include (git-ignored), so the tree can be carried to a machine
# that has no apt (the GPU machine). The build looks there when the system has no copy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/include"
mkdir -p "$dest"
for dir in nlohmann doctest stb; do
  if [ -d "/usr/include/$dir" ]; then
    rm -rf "${dest:?}/$dir"
    cp -r "/usr/include/$dir" "$dest/$dir"
    echo "copied /usr/include/$dir -> $dest/$dir"
  else
    echo "missing /usr/include/$dir: run tools/scripts/install_deps.sh first" >&2
    exit 1
  fi
done
