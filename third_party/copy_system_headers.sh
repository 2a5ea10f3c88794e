#!/usr/bin/env bash
# Copies the header-only third-party libraries the build uses (nlohmann/json, doctest, stb) from this
# machine's system folders into third_party/include (git-ignored), so the tree can be carried to a machine
# that has no apt (the GPU machine). The build looks there when the system has no copy.
# Also copies this machine's cuDNN and NCCL headers, when it has them, into
# third_party/include/cuda-libs/{cudnn,nccl}/include: a fallback for a GPU machine that has the libraries
# (e.g. PyTorch's nvidia-cudnn-cu13 / nvidia-nccl-cu13 wheels) but no headers. tools/cmake/ScpnCuda.cmake
# and tools/device_check.sh look there last; cuda-libs/SOURCE.txt records where and which versions.
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

# ---- cuDNN and NCCL headers (optional: a machine without them only gets a note) ----------------------
cuda_dest="$dest/cuda-libs"
header_dirs=(/usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu /usr/local/include)
[ -n "${CUDNN_ROOT:-}" ] && header_dirs=("$CUDNN_ROOT/include" "${header_dirs[@]}")
[ -n "${NCCL_ROOT:-}" ] && header_dirs=("$NCCL_ROOT/include" "${header_dirs[@]}")

# First folder holding $1, or nothing.
find_header_dir() {
  local d
  for d in "${header_dirs[@]}"; do
    if [ -f "$d/$1" ]; then
      echo "$d"
      return 0
    fi
  done
  return 0
}
# "MAJOR.MINOR.PATCH" from #defines PREFIX_MAJOR/MINOR/<patch> in a header.
header_version() {
  local file=$1 prefix=$2 patch=$3 major minor p
  major=$(awk -v n="${prefix}_MAJOR" '$1=="#define" && $2==n {print $3; exit}' "$file")
  minor=$(awk -v n="${prefix}_MINOR" '$1=="#define" && $2==n {print $3; exit}' "$file")
  p=$(awk -v n="${prefix}_${patch}" '$1=="#define" && $2==n {print $3; exit}' "$file")
  echo "${major:-?}.${minor:-?}.${p:-?}"
}

mkdir -p "$cuda_dest"
source_notes="$cuda_dest/SOURCE.txt"
echo "# copied by third_party/copy_system_headers.sh on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$source_notes"

cudnn_dir=$(find_header_dir cudnn.h)
if [ -n "$cudnn_dir" ]; then
  rm -rf "${cuda_dest:?}/cudnn"
  mkdir -p "$cuda_dest/cudnn/include"
  # cudnn.h includes its per-part headers (cudnn_graph.h, cudnn_ops.h, …, the *_v9.h versions): take all.
  cp -L "$cudnn_dir"/cudnn*.h "$cuda_dest/cudnn/include/"
  version_file="$cudnn_dir/cudnn_version.h"
  [ -f "$version_file" ] || version_file="$cudnn_dir/cudnn.h"
  cudnn_version=$(header_version "$version_file" CUDNN PATCHLEVEL)
  echo "copied cuDNN $cudnn_version headers from $cudnn_dir -> $cuda_dest/cudnn/include"
  echo "cudnn $cudnn_version from $cudnn_dir" >>"$source_notes"
else
  echo "note: no cudnn.h in ${header_dirs[*]}: cuDNN headers not copied (set CUDNN_ROOT to copy from elsewhere)"
fi

nccl_dir=$(find_header_dir nccl.h)
if [ -n "$nccl_dir" ]; then
  rm -rf "${cuda_dest:?}/nccl"
  mkdir -p "$cuda_dest/nccl/include"
  cp -L "$nccl_dir/nccl.h" "$cuda_dest/nccl/include/"
  for extra in nccl_net.h nccl_device.h; do
    [ -f "$nccl_dir/$extra" ] && cp -L "$nccl_dir/$extra" "$cuda_dest/nccl/include/"
  done
  [ -d "$nccl_dir/nccl_device" ] && cp -rL "$nccl_dir/nccl_device" "$cuda_dest/nccl/include/"
  nccl_version=$(header_version "$nccl_dir/nccl.h" NCCL PATCH)
  echo "copied NCCL $nccl_version headers from $nccl_dir -> $cuda_dest/nccl/include"
  echo "nccl $nccl_version from $nccl_dir" >>"$source_notes"
else
  echo "note: no nccl.h in ${header_dirs[*]}: NCCL headers not copied (set NCCL_ROOT to copy from elsewhere)"
fi
echo "total size of $dest: $(du -sh "$dest" | cut -f1)"
