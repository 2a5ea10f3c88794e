#!/usr/bin/env bash
# The device check of the CUDA backend on a GPU machine without network access (docs/gpu-machine.md): builds,
# runs every test (the gpu-labelled ones also under memcheck), times our kernels against PyTorch, verdict last.
# Usage: tools/device_check.sh [LOG_DIR]        (default: $OUT when set, else build-gpu/logs)
set -uo pipefail

SCRIPT_START=$(date +%s)
# SCPN_CHECK_BUDGET_S: wall-clock budget of the whole script in seconds (default 450, to finish within 8
# minutes); stages that are squeezed get minimum slices, so a run can overshoot by up to about a minute.
BUDGET_S=${SCPN_CHECK_BUDGET_S:-450}
repo="$(cd "$(dirname "$0")/.." && pwd)"
log_arg=${1:-${OUT:-${SCPN_CHECK_BUILD_DIR:-$repo/build-gpu}/logs}}
mkdir -p "$log_arg" || { echo "device_check: cannot create log folder '$log_arg'" >&2; exit 1; }
LOG_DIR="$(cd "$log_arg" && pwd)"
cd "$repo" || exit 1
# SCPN_CHECK_BUILD_DIR: the build folder (default build-gpu). SCPN_CHECK_STOP_AFTER=probe or configure stops
# there (to try the script on a machine without a GPU).
BUILD=${SCPN_CHECK_BUILD_DIR:-$repo/build-gpu}
STOP_AFTER=${SCPN_CHECK_STOP_AFTER:-}
WORK="$BUILD/devcheck"   # scratch (per-binary sanitizer logs): never in LOG_DIR, which is fetched back
mkdir -p "$WORK"
# LOG_DIR receives at most these 8 files, each capped at 15 MiB.
rm -f "$LOG_DIR"/{probe,build,ctest,ctest_full,memcheck,bench_scpn,bench_torch}.log "$LOG_DIR/summary.txt"

PROBE_LOG="$LOG_DIR/probe.log"
BUILD_LOG="$LOG_DIR/build.log"
CTEST_LOG="$LOG_DIR/ctest.log"
CTEST_FULL="$LOG_DIR/ctest_full.log"
MEMCHECK_LOG="$LOG_DIR/memcheck.log"
BENCH_OURS="$LOG_DIR/bench_scpn.log"
BENCH_TORCH="$LOG_DIR/bench_torch.log"
SUMMARY="$LOG_DIR/summary.txt"
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}

elapsed() { echo $(($(date +%s) - SCRIPT_START)); }
remaining() { echo $((BUDGET_S - $(elapsed))); }
# say: a progress line on the console and in summary.txt.
say() { printf '[%4ss] %s\n' "$(elapsed)" "$*" | tee -a "$SUMMARY"; }
# plog: a line in probe.log only.
plog() { printf '%s\n' "$*" >>"$PROBE_LOG"; }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
max() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }
# Keeps a log under the fetch limit (16 MiB a file): the head and the tail of anything larger.
cap_log() {
  local f=$1 size
  [ -f "$f" ] || return 0
  size=$(stat -c %s "$f" 2>/dev/null || echo 0)
  if [ "$size" -gt $((15 * 1024 * 1024)) ]; then
    { head -c $((2 * 1024 * 1024)) "$f"; printf '\n...[%s bytes cut by device_check.sh]...\n' "$size"
      tail -c $((12 * 1024 * 1024)) "$f"; } >"$f.cap" && mv "$f.cap" "$f"
  fi
}

# Stage results, for the summary line.
PROBE_STATUS=ok; CONFIGURE_STATUS="not run"; BUILD_STATUS="not run"; TEST_STATUS="not run"
MEMCHECK_STATUS="not run"; BENCH_STATUS="not run"
FAILED=(); INCOMPLETE=()
fail() { FAILED+=("$1"); }
incomplete() { INCOMPLETE+=("$1"); }

say "device_check: repo $repo, logs in $LOG_DIR, budget ${BUDGET_S}s, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# =========================================================================================================
# 1. Probe: what the machine has and where. Everything goes to probe.log; choices are echoed to the console.
# =========================================================================================================
{
  echo "# device_check probe, $(date -u)"
  echo "## uname: $(uname -a)"
  echo "## cpus: $(nproc); memory:"; free -g 2>&1 | head -3
  echo "## disk:"; df -h "$repo" 2>&1 | tail -1
  echo "## PATH=$PATH"
  echo "## LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} >"$PROBE_LOG" 2>&1

GPU_DESC="no GPU seen"
if command -v nvidia-smi >/dev/null 2>&1; then
  { echo "## nvidia-smi"; timeout 20 nvidia-smi 2>&1
    echo "## nvidia-smi --query-gpu"
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu --format=csv 2>&1
  } >>"$PROBE_LOG"
  GPU_DESC=$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
  [ -n "$GPU_DESC" ] || GPU_DESC="nvidia-smi gave no GPU"
else
  plog "## nvidia-smi: not found"
fi
say "probe: GPU: $GPU_DESC"

# -- nvcc and the toolkit root -----------------------------------------------------------------------------
# SCPN_PYTHON: the python3 holding PyTorch (default /opt/torch/.venv/bin/python3, else python3).
PY=${SCPN_PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x /opt/torch/.venv/bin/python3 ]; then PY=/opt/torch/.venv/bin/python3; else PY=$(command -v python3 || true); fi
fi
SITE_DIRS=()
TORCH_DESC="no python3"
if [ -n "$PY" ] && [ -x "$PY" ]; then
  plog "## python: $PY ($("$PY" --version 2>&1))"
  # site-packages folders (wheels: nvidia-cudnn-cu13, nvidia-nccl-cu13, cuda toolkit wheels) and torch.
  mapfile -t SITE_DIRS < <(timeout 30 "$PY" - <<'EOF' 2>>"$PROBE_LOG"
import site, sys
dirs = list(site.getsitepackages()) + [site.getusersitepackages()] + [p for p in sys.path if p.endswith("-packages")]
seen = set()
for d in dirs:
    if d not in seen:
        seen.add(d)
        print(d)
EOF
  )
  TORCH_DESC=$(timeout 90 "$PY" - <<'EOF' 2>>"$PROBE_LOG"
try:
    import torch
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "no device"
    try:
        nccl = torch.cuda.nccl.version()
        nccl = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
    except Exception:
        nccl = "?"
    print("torch %s (CUDA %s, cuDNN %s, NCCL %s) at %s; device: %s" % (
        torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), nccl,
        torch.__file__.rsplit("/", 2)[0], name))
except Exception as e:
    print("torch not importable: %s" % e)
EOF
  )
  [ -n "$TORCH_DESC" ] || TORCH_DESC="torch probe printed nothing (see probe.log)"
fi
plog "## site-packages: ${SITE_DIRS[*]:-none}"
plog "## torch: $TORCH_DESC"
say "probe: python $PY: $TORCH_DESC"

# The first runnable nvcc among the usual places and the wheels' (nvidia/cu13/bin, nvidia/cuda_nvcc/bin).
nvcc_candidates=()
command -v nvcc >/dev/null 2>&1 && nvcc_candidates+=("$(command -v nvcc)")
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-13.0 /usr/local/cuda-13 /opt/cuda; do
  [ -n "$d" ] && [ -x "$d/bin/nvcc" ] && nvcc_candidates+=("$d/bin/nvcc")
done
for d in /usr/local/cuda-*; do [ -x "$d/bin/nvcc" ] && nvcc_candidates+=("$d/bin/nvcc"); done
for sp in "${SITE_DIRS[@]}"; do
  for d in "$sp"/nvidia/cu13 "$sp"/nvidia/cuda_nvcc; do [ -x "$d/bin/nvcc" ] && nvcc_candidates+=("$d/bin/nvcc"); done
done
NVCC=""
plog "## nvcc candidates: ${nvcc_candidates[*]:-none}"
for c in "${nvcc_candidates[@]}"; do
  if "$c" --version >>"$PROBE_LOG" 2>&1; then NVCC=$(readlink -f "$c"); break; fi
done
if [ -z "$NVCC" ]; then
  say "probe: FATAL: no runnable nvcc (looked on PATH, /usr/local/cuda*, CUDA_HOME, wheels)"
  PROBE_STATUS="no nvcc"; fail "probe: no nvcc"
else
  CUDA_ROOT=$(dirname "$(dirname "$NVCC")")
  export PATH="$CUDA_ROOT/bin:$PATH"
  say "probe: nvcc $NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')), toolkit root $CUDA_ROOT"
fi
CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}

# -- host compiler, CMake >= 3.25, ninja -------------------------------------------------------------------
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
PYBIN=$( [ -n "$PY" ] && dirname "$PY" || echo /nonexistent)
# The newest CMake >= 3.25 found (the pip wheel's in the venv may be newer than the system's; CMake knows
# nvcc's C++20 flag only from 3.25.2 on).
CMAKE=""; CMAKE_VERSION=""
for c in "$(command -v cmake 2>/dev/null)" "$PYBIN/cmake" /usr/local/bin/cmake /usr/bin/cmake; do
  if [ -z "$c" ] || [ ! -x "$c" ]; then continue; fi
  v=$("$c" --version 2>/dev/null | head -1 | awk '{print $3}')
  plog "## cmake candidate $c: ${v:-not runnable}"
  if [ -n "$v" ] && version_ge "$v" 3.25 && { [ -z "$CMAKE" ] || ! version_ge "$CMAKE_VERSION" "$v"; }; then
    CMAKE=$c; CMAKE_VERSION=$v
  fi
done
CTEST=$( [ -n "$CMAKE" ] && echo "$(dirname "$CMAKE")/ctest")
[ -n "$CTEST" ] && [ ! -x "$CTEST" ] && CTEST=$(command -v ctest || true)
NINJA=""
for c in "$(command -v ninja 2>/dev/null)" "$PYBIN/ninja" /usr/local/bin/ninja; do
  [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1 && { NINJA=$c; break; }
done
CXX_BIN=$(command -v g++ || command -v c++ || true)
say "probe: cmake ${CMAKE:-MISSING (>= 3.25 needed)} ${CMAKE_VERSION}, ninja ${NINJA:-MISSING}, c++ ${CXX_BIN:-MISSING} $( [ -n "$CXX_BIN" ] && "$CXX_BIN" -dumpfullversion 2>/dev/null)"
[ -n "$CMAKE" ] || { fail "probe: no cmake >= 3.25"; PROBE_STATUS="no cmake"; }
[ -n "$NINJA" ] || { fail "probe: no ninja"; PROBE_STATUS="no ninja"; }
[ -n "$CXX_BIN" ] || { fail "probe: no C++ compiler"; PROBE_STATUS="no c++"; }

# -- header-only third-party libraries (no apt there: carried in third_party/include) ----------------------
for h in nlohmann/json.hpp doctest/doctest.h; do
  if [ -f "/usr/include/$h" ]; then plog "## $h: /usr/include"
  elif [ -f "third_party/include/$h" ]; then plog "## $h: third_party/include (carried)"
  else
    say "probe: FATAL: $h is neither in /usr/include nor in third_party/include: run third_party/copy_system_headers.sh on the dev machine and carry third_party/include"
    fail "probe: $h missing"; PROBE_STATUS="headers missing"
  fi
done

# -- cuDNN and NCCL: headers and libraries ----------------------------------------------------------------
# Every copy we can see goes to probe.log; then a header + library pair from one root is preferred (the
# versions match); a library without headers takes the carried third_party/include/cuda-libs headers.
{
  echo "## cuDNN / NCCL files seen"
  for d in "$CUDA_ROOT/include" "$CUDA_ROOT/targets/x86_64-linux/include" /usr/include /usr/include/x86_64-linux-gnu \
           /usr/local/include third_party/include/cuda-libs/cudnn/include third_party/include/cuda-libs/nccl/include; do
    ls -1 "$d"/cudnn.h "$d"/cudnn_version.h "$d"/nccl.h 2>/dev/null
  done
  for d in "$CUDA_ROOT/lib64" "$CUDA_ROOT/lib" "$CUDA_ROOT/targets/x86_64-linux/lib" /usr/lib/x86_64-linux-gnu /usr/local/lib; do
    ls -1 "$d"/libcudnn.so* "$d"/libnccl.so* 2>/dev/null
  done
  for sp in "${SITE_DIRS[@]}"; do
    [ -d "$sp/nvidia" ] && find "$sp/nvidia" -maxdepth 3 \( -name 'cudnn*.h' -o -name 'nccl.h' -o -name 'libcudnn.so*' \
                                                            -o -name 'libnccl.so*' -o -name 'compute-sanitizer' \) 2>/dev/null
  done
  echo "## ldconfig:"; ldconfig -p 2>/dev/null | grep -E 'libcudnn\.so|libnccl\.so' || echo "(none)"
  [ -f third_party/include/cuda-libs/SOURCE.txt ] && { echo "## carried headers:"; cat third_party/include/cuda-libs/SOURCE.txt; }
} >>"$PROBE_LOG" 2>&1

# "MAJOR.MINOR.PATCH" of a header's PREFIX_MAJOR / PREFIX_MINOR / PREFIX_<patch> defines.
header_version() {
  local file=$1 prefix=$2 patch=$3
  [ -f "$file" ] || { echo "?"; return; }
  awk -v a="${prefix}_MAJOR" -v b="${prefix}_MINOR" -v c="${prefix}_${patch}" \
    '$1=="#define" && $2==a {M=$3} $1=="#define" && $2==b {m=$3} $1=="#define" && $2==c {p=$3}
     END {printf "%s.%s.%s", (M==""?"?":M), (m==""?"?":m), (p==""?"?":p)}' "$file"
}
# Version a library reports (cudnnGetVersion / ncclGetVersion) through ctypes, or "?".
library_version() {
  local lib=$1 kind=$2
  [ -n "$PY" ] || { echo "?"; return; }
  timeout 20 "$PY" - "$lib" "$kind" 2>/dev/null <<'EOF' || echo "?"
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
if sys.argv[2] == "cudnn":
    lib.cudnnGetVersion.restype = ctypes.c_size_t
    v = lib.cudnnGetVersion()
    print("%d.%d.%d" % (v // 10000, v % 10000 // 100, v % 100) if v >= 90000 else v)
else:
    v = ctypes.c_int(0)
    lib.ncclGetVersion(ctypes.byref(v))
    v = v.value
    print("%d.%d.%d" % (v // 10000, v % 10000 // 100, v % 100) if v >= 20900 else v)
EOF
}
# scan_root ROOT HEADER LIBNAME: sets ROOT_INC (folder holding HEADER) and ROOT_LIB (LIBNAME.so or .so.N).
scan_root() {
  local root=$1 header=$2 libname=$3 d f
  ROOT_INC=""; ROOT_LIB=""
  for d in "$root/include" "$root/include/x86_64-linux-gnu" "$root/targets/x86_64-linux/include"; do
    [ -f "$d/$header" ] && { ROOT_INC=$d; break; }
  done
  for d in "$root/lib64" "$root/lib" "$root/lib/x86_64-linux-gnu" "$root/targets/x86_64-linux/lib"; do
    for f in "$d/$libname.so" "$d/$libname".so.[0-9]*; do
      [ -e "$f" ] && { ROOT_LIB=$f; return; }
    done
  done
}
# pick_library HEADER LIBNAME ENVROOT CARRIED_INCLUDE: sets PICK_INC, PICK_LIB, PICK_NOTE (empty when none).
#  1. a root given in the environment that holds the library wins (its headers, else the carried ones);
#  2. else the first root holding both the header and the library (one install: matching versions);
#  3. else the first library found, with the carried headers (else any header seen, with a note).
pick_library() {
  local header=$1 libname=$2 envroot=$3 carried=$4 roots=() root d env_lib="" first_lib="" any_inc=""
  PICK_INC=""; PICK_LIB=""; PICK_NOTE=""
  roots+=("$CUDA_ROOT" /usr /usr/local)
  for sp in "${SITE_DIRS[@]}"; do
    for d in "$sp"/nvidia/*/; do [ -d "$d" ] && roots+=("${d%/}"); done
  done
  if [ -n "$envroot" ]; then
    scan_root "$envroot" "$header" "$libname"
    env_lib=$ROOT_LIB
    if [ -n "$ROOT_LIB" ] && [ -n "$ROOT_INC" ]; then
      PICK_LIB=$ROOT_LIB; PICK_INC=$ROOT_INC; PICK_NOTE="headers and library from $envroot (given)"; return
    fi
  fi
  for root in "${roots[@]}"; do
    scan_root "$root" "$header" "$libname"
    [ -z "$any_inc" ] && any_inc=$ROOT_INC
    if [ -z "$env_lib" ] && [ -n "$ROOT_LIB" ] && [ -n "$ROOT_INC" ]; then
      PICK_LIB=$ROOT_LIB; PICK_INC=$ROOT_INC; PICK_NOTE="headers and library from $root"; return
    fi
    [ -z "$first_lib" ] && first_lib=$ROOT_LIB
  done
  local lib_only=${env_lib:-$first_lib}
  [ -n "$lib_only" ] || return 0
  PICK_LIB=$lib_only
  if [ -f "$carried/$header" ]; then
    PICK_INC=$carried; PICK_NOTE="library $lib_only, headers carried in $carried"
  elif [ -n "$any_inc" ]; then
    PICK_INC=$any_inc; PICK_NOTE="library $lib_only, headers from another install ($any_inc): versions may differ"
  else
    PICK_NOTE="library $lib_only but NO headers (run third_party/copy_system_headers.sh on the dev machine and carry third_party/include)"
  fi
}

# CUDNN_ROOT, NCCL_ROOT: folders to try first for cuDNN / NCCL (include/ and lib/ below them).
pick_library cudnn.h libcudnn "${CUDNN_ROOT:-}" "$repo/third_party/include/cuda-libs/cudnn/include"
CUDNN_INC=$PICK_INC; CUDNN_LIB=$PICK_LIB
if [ -n "$CUDNN_INC" ] && [ -n "$CUDNN_LIB" ]; then
  cudnn_hv=$(header_version "$CUDNN_INC/cudnn_version.h" CUDNN PATCHLEVEL)
  cudnn_lv=$(library_version "$CUDNN_LIB" cudnn)
  say "probe: cuDNN: $PICK_NOTE; header $cudnn_hv, library $cudnn_lv"
  if [ "$cudnn_lv" != "?" ] && [ "${cudnn_hv%.*}" != "${cudnn_lv%.*}" ]; then
    say "probe: WARNING: cuDNN header $cudnn_hv != library $cudnn_lv (major.minor): a newer header may name functions the library lacks"
  fi
else
  say "probe: FATAL: cuDNN not usable: ${PICK_NOTE:-no libcudnn.so* found} (see probe.log for every copy seen)"
  fail "probe: cuDNN"; PROBE_STATUS="no cuDNN"
fi
pick_library nccl.h libnccl "${NCCL_ROOT:-}" "$repo/third_party/include/cuda-libs/nccl/include"
NCCL_INC=$PICK_INC; NCCL_LIB=$PICK_LIB
if [ -n "$NCCL_INC" ] && [ -n "$NCCL_LIB" ]; then
  say "probe: NCCL: $PICK_NOTE; header $(header_version "$NCCL_INC/nccl.h" NCCL PATCH), library $(library_version "$NCCL_LIB" nccl)"
else
  say "probe: NCCL: not usable (${PICK_NOTE:-no libnccl.so* found}); building without NCCL"
fi

# -- compute-sanitizer -------------------------------------------------------------------------------------
SANITIZER=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" "$CUDA_ROOT/bin/compute-sanitizer" \
         "$CUDA_ROOT/compute-sanitizer/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
         /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -n "$c" ] && [ -x "$c" ] && { SANITIZER=$c; break; }
done
if [ -z "$SANITIZER" ]; then
  for sp in "${SITE_DIRS[@]}"; do
    [ -x "$sp/nvidia/cu13/bin/compute-sanitizer" ] && { SANITIZER="$sp/nvidia/cu13/bin/compute-sanitizer"; break; }
  done
fi
if [ -n "$SANITIZER" ]; then
  plog "## compute-sanitizer: $SANITIZER: $("$SANITIZER" --version 2>&1 | tail -1)"
  say "probe: compute-sanitizer $SANITIZER"
else
  say "probe: compute-sanitizer: NOT FOUND (memcheck will not run)"
fi

# The libraries chosen must be the ones loaded at run time (tests, memcheck, our bench); PyTorch keeps its own.
RUN_LD_LIBRARY_PATH=""
for d in "$( [ -n "$CUDNN_LIB" ] && dirname "$CUDNN_LIB")" "$( [ -n "$NCCL_LIB" ] && dirname "$NCCL_LIB")" \
         "$CUDA_ROOT/lib64" "$CUDA_ROOT/lib"; do
  [ -n "$d" ] && [ -d "$d" ] && case ":$RUN_LD_LIBRARY_PATH:" in *":$d:"*) ;; *) RUN_LD_LIBRARY_PATH="$RUN_LD_LIBRARY_PATH${RUN_LD_LIBRARY_PATH:+:}$d" ;; esac
done
RUN_LD_LIBRARY_PATH="$RUN_LD_LIBRARY_PATH${ORIG_LD_LIBRARY_PATH:+:$ORIG_LD_LIBRARY_PATH}"
plog "## run-time LD_LIBRARY_PATH for our binaries: $RUN_LD_LIBRARY_PATH"
say "probe: done ($PROBE_STATUS)"
if [ "$STOP_AFTER" = probe ]; then say "stopping after the probe (SCPN_CHECK_STOP_AFTER=probe)"; exit 0; fi

# =========================================================================================================
# 2. Configure and build (Release, CUDA ON, sm_90, -march=native, tests and tools).
# =========================================================================================================
if [ ${#FAILED[@]} -eq 0 ]; then
  cmake_args=(-S "$repo" -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" -DCMAKE_BUILD_TYPE=Release
              -DSCPN_CUDA=ON -DSCPN_CUDA_ARCHS=90 -DSCPN_NATIVE=ON -DSCPN_BUILD_TESTS=ON -DSCPN_BUILD_TOOLS=ON
              -DCMAKE_CUDA_COMPILER="$NVCC" -DCUDAToolkit_ROOT="$CUDA_ROOT"
              -DCUDNN_ROOT="$(dirname "$CUDNN_INC")" -DSCPN_CUDNN_INCLUDE="$CUDNN_INC" -DSCPN_CUDNN_LIBRARY="$CUDNN_LIB")
  if [ -n "$NCCL_INC" ] && [ -n "$NCCL_LIB" ]; then
    cmake_args+=(-DNCCL_ROOT="$(dirname "$NCCL_INC")" -DSCPN_NCCL_INCLUDE="$NCCL_INC" -DSCPN_NCCL_LIBRARY="$NCCL_LIB")
  fi
  say "configure: $CMAKE ${cmake_args[*]}"
  { echo "# configure: $CMAKE ${cmake_args[*]}"; } >"$BUILD_LOG"
  if timeout 120 "$CMAKE" "${cmake_args[@]}" >>"$BUILD_LOG" 2>&1; then
    summary_block=$(sed -n '/SCPN configure summary/,/NCCL  *:/p' "$BUILD_LOG")
    printf '%s\n' "$summary_block" | sed 's/^-- /    /' | tee -a "$SUMMARY"
    if grep -q 'CUDA backend ON' "$BUILD_LOG"; then
      CONFIGURE_STATUS=ok
    else
      CONFIGURE_STATUS="CUDA backend not ON"; fail "configure: CUDA backend not ON (see build.log)"
    fi
  else
    CONFIGURE_STATUS="failed"; fail "configure"
    grep -E 'CMake Error|FATAL|not found' "$BUILD_LOG" | head -20 | sed 's/^/    /' | tee -a "$SUMMARY"
  fi
  say "configure: $CONFIGURE_STATUS"
fi
if [ "$STOP_AFTER" = configure ]; then
  say "stopping after configure (SCPN_CHECK_STOP_AFTER=configure)"
  [ ${#FAILED[@]} -eq 0 ] && exit 0 || exit 1
fi

if [ "$CONFIGURE_STATUS" = ok ]; then
  build_cap=$(min 360 $(($(remaining) - 110)))
  build_cap=$(max "$build_cap" 60)
  # -k 0: keep going after an error, so that one run shows every file that does not compile.
  say "build: ninja -j $(nproc) -k 0, at most ${build_cap}s"
  build_start=$(date +%s)
  timeout "$build_cap" "$CMAKE" --build "$BUILD" -j "$(nproc)" -- -k 0 >>"$BUILD_LOG" 2>&1
  rc=$?
  build_s=$(($(date +%s) - build_start))
  if [ $rc -eq 0 ]; then
    BUILD_STATUS="ok (${build_s}s)"
  else
    if [ $rc -eq 124 ]; then BUILD_STATUS="timed out after ${build_s}s"; else BUILD_STATUS="failed (rc $rc, ${build_s}s)"; fi
    fail "build"
    grep -E 'error|FAILED:' "$BUILD_LOG" | head -25 | cut -c1-300 | sed 's/^/    /' | tee -a "$SUMMARY"
  fi
  warnings=$(grep -c 'warning' "$BUILD_LOG" || true)
  say "build: $BUILD_STATUS; $warnings line(s) mention 'warning' (build.log)"
  cap_log "$BUILD_LOG"
fi

# =========================================================================================================
# 3. Tests (ctest, every label) and memcheck on the GPU test binaries, side by side: both are correctness
#    checks, so sharing the GPU costs speed only, and the benchmarks afterwards get the GPU alone.
# =========================================================================================================
export LD_LIBRARY_PATH="$RUN_LD_LIBRARY_PATH"
CT_RC=""
if [[ "$BUILD_STATUS" == ok* ]]; then
  left=$(remaining)
  if [ "$left" -ge 330 ]; then bench_share=170; elif [ "$left" -ge 200 ]; then bench_share=120; else bench_share=80; fi
  check_cap=$(max $((left - bench_share - 10)) 45)
  ctest_jobs=$(min 8 "$(nproc)")
  omp=$(max 1 $(($(nproc) / ctest_jobs)))
  say "tests: ctest -j $ctest_jobs (OMP_NUM_THREADS=$omp) and memcheck side by side, at most ${check_cap}s"
  (
    cd "$BUILD" || exit 2
    OMP_NUM_THREADS=$omp timeout -k 10 "$check_cap" "$CTEST" --output-on-failure -j "$ctest_jobs" \
      --timeout $((check_cap - 10)) --no-tests=error >"$CTEST_LOG" 2>&1
    echo $? >"$WORK/ctest.rc"
  ) &

  # -- memcheck: a pool of sanitizer processes over the gpu-labelled tests, cuDNN/cuBLAS-heavy ones first ----
  # Each line: a name, then the test's command (the family executable with its gpu/F arguments), tab-separated,
  # from CTest itself so that the sanitizer runs exactly what `ctest -L gpu` runs.
  mapfile -t gpu_tests < <(cd "$BUILD" && "$CTEST" -L gpu --show-only=json-v1 2>/dev/null |
                           "${PY:-python3}" -c 'import json, sys
for t in json.load(sys.stdin).get("tests", []):
    print("\t".join([t["name"].replace("/", "_")] + t["command"]))' |
                           awk '{ heavy = ($0 ~ /conv2d|batch_norm|gemm|training_step|trainer/) ? 0 : 1; print heavy "\t" $0 }' |
                           sort | cut -f2-)
  mem_total=${#gpu_tests[@]}
  mem_deadline=$(($(date +%s) + check_cap - 5))
  # SCPN_MEMCHECK_JOBS: sanitizer processes at once (default 4); SCPN_MEMCHECK_ARGS: extra arguments for
  # each GPU test under memcheck (e.g. a doctest filter '--test-case=*f32*').
  mem_jobs=${SCPN_MEMCHECK_JOBS:-4}
  read -r -a mem_extra <<<"${SCPN_MEMCHECK_ARGS:-}"
  rm -f "$WORK"/*.san "$WORK"/*.san.rc
  if [ -z "$SANITIZER" ]; then
    MEMCHECK_STATUS="not run (compute-sanitizer not found)"
  elif [ "$mem_total" -eq 0 ]; then
    MEMCHECK_STATUS="not run (ctest lists no test with the gpu label)"
  else
    per_bin=$(max 20 $((check_cap - 10)))
    for entry in "${gpu_tests[@]}"; do
      IFS=$'\t' read -r -a argv <<<"$entry"
      name=${argv[0]}
      argv=("${argv[@]:1}")
      while [ "$(jobs -rp | wc -l)" -gt "$mem_jobs" ]; do sleep 1; done  # the ctest job counts as one
      now=$(date +%s)
      limit=$(min "$per_bin" $((mem_deadline - now)))
      if [ "$limit" -lt 15 ]; then echo "not started: out of time" >"$WORK/$name.san"; echo skipped >"$WORK/$name.san.rc"; continue; fi
      (
        cd "$repo" || exit 2
        timeout -k 5 "$limit" "$SANITIZER" --tool memcheck --error-exitcode 97 --print-limit 100 \
          "${argv[@]}" "${mem_extra[@]}" >"$WORK/$name.san" 2>&1
        echo $? >"$WORK/$name.san.rc"
      ) &
    done
  fi
  wait  # the ctest job and every sanitizer process

  # -- ctest results -------------------------------------------------------------------------------------
  CT_RC=$(cat "$WORK/ctest.rc" 2>/dev/null || echo "?")
  [ -f "$BUILD/Testing/Temporary/LastTest.log" ] && cp "$BUILD/Testing/Temporary/LastTest.log" "$CTEST_FULL"
  cap_log "$CTEST_FULL"; cap_log "$CTEST_LOG"
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$CTEST_LOG" | tail -1)
  gpu_count=$(sed -n 's/^ *gpu *= .*(\([0-9]*\) tests\{0,1\})/\1/p' "$CTEST_LOG" | tail -1)
  # Skips are CTest's "(Skipped)" lines: a gpu/ test skipped means the tests did not see the device; any
  # other (a data set not installed) is reported but leaves the verdict alone.
  gpu_skipped=$(grep -E '^[[:space:]]*[0-9]+ - gpu/.*\(Skipped\)' "$CTEST_LOG" 2>/dev/null | wc -l)
  other_skipped=$(grep -E '\(Skipped\)' "$CTEST_LOG" 2>/dev/null | grep -vcE '^[[:space:]]*[0-9]+ - gpu/' || true)
  parity=$(grep -c '^parity ' "$CTEST_FULL" 2>/dev/null || true)
  failed_tests=$(sed -n '/The following tests FAILED/,$p' "$CTEST_LOG" | grep -E '^[[:space:]]+[0-9]+ - ' | sed -E 's/^[[:space:]]*[0-9]+ - //' | head -20 | paste -sd ',' -)
  if [ -z "$line" ]; then
    TEST_STATUS="no summary (ctest rc $CT_RC: timed out or crashed; see ctest.log)"; fail "tests: no summary"
  elif [ "$CT_RC" = 0 ]; then
    TEST_STATUS="${line}; gpu label ${gpu_count:-?} tests, $parity parity lines"
  else
    TEST_STATUS="${line}; FAILED: ${failed_tests:-see ctest.log}"; fail "tests"
  fi
  if [ "${gpu_skipped:-0}" -gt 0 ]; then
    TEST_STATUS="$TEST_STATUS; $gpu_skipped gpu test(s) skipped (ctest.log says why)"
    incomplete "GPU tests skipped (the tests did not see the device)"
  fi
  if [ "${other_skipped:-0}" -gt 0 ]; then
    TEST_STATUS="$TEST_STATUS; $other_skipped other test(s) skipped (a data set not installed: ctest.log)"
  fi
  say "tests: $TEST_STATUS"

  # -- memcheck results ----------------------------------------------------------------------------------
  if [ -n "$SANITIZER" ] && [ "$mem_total" -gt 0 ]; then
    mem_clean=0; mem_errors=0; mem_api=0; mem_timeouts=0; mem_unsupported=0; mem_testfail=0; mem_notes=()
    : >"$MEMCHECK_LOG"
    echo "# compute-sanitizer --tool memcheck on $mem_total GPU test binaries (${mem_jobs} at a time, each at most ${per_bin}s; extra args: ${SCPN_MEMCHECK_ARGS:-none})" >>"$MEMCHECK_LOG"
    for entry in "${gpu_tests[@]}"; do
      name=${entry%%$'\t'*}
      f="$WORK/$name.san"; rc=$(cat "$f.rc" 2>/dev/null || echo "?")
      total=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$f" 2>/dev/null | tail -1)
      have_summary=yes; [ -n "$total" ] || have_summary=no
      api=$(grep -c '^========= Program hit' "$f" 2>/dev/null || true)
      # --check-exit-code (on by default) counts a non-zero exit of the test program as an error too.
      app_exit=$(grep -cE "Target application returned an error|process didn't terminate successfully" "$f" 2>/dev/null || true)
      if [ -z "$total" ]; then  # cut short: count the error headers printed so far
        total=$(grep -cE '^========= (Invalid|Misaligned|Out of range|Program hit|Malloc|Free|Cuda|Illegal|Hardware|Warp|Address)' "$f" 2>/dev/null || true)
      fi
      total=${total:-0}; api=${api:-0}; app_exit=${app_exit:-0}
      memory=$((total - api - app_exit)); [ "$memory" -lt 0 ] && memory=0
      verdict=""
      if grep -qiE 'device not supported|not supported on this|unable to attach|no device supported' "$f" 2>/dev/null; then
        verdict="sanitizer unsupported here"; mem_unsupported=$((mem_unsupported + 1))
      elif [ "$rc" = 124 ] || [ "$rc" = 137 ] || [ "$rc" = skipped ]; then
        verdict="timed out / not started (partial: $memory memory, $api API errors so far)"; mem_timeouts=$((mem_timeouts + 1))
      elif [ "$memory" -gt 0 ]; then
        verdict="$memory MEMORY ERROR(S), $api API error(s)"
      elif [ "$have_summary" = no ]; then
        # No "ERROR SUMMARY": the sanitizer did not finish (a bad option, a crash): no verdict.
        verdict="no sanitizer summary (see its lines below)"; mem_timeouts=$((mem_timeouts + 1))
      elif [ "$api" -gt 0 ]; then
        verdict="0 memory errors, $api API error(s) reported"
      else
        verdict="clean"; mem_clean=$((mem_clean + 1))
      fi
      if [ "$app_exit" -gt 0 ] || grep -q 'Status: FAILURE' "$f" 2>/dev/null; then
        verdict="$verdict; the test program failed under the sanitizer"; mem_testfail=$((mem_testfail + 1))
      fi
      mem_errors=$((mem_errors + memory)); mem_api=$((mem_api + api))
      mem_notes+=("$name: $verdict (rc $rc)")
      {
        echo; echo "===== $name: $verdict (rc $rc)"
        # The sanitizer's own lines (capped), and doctest's verdict.
        grep -E '^=========|^\[doctest\] (test cases|Status)' "$f" 2>/dev/null | head -400 | cut -c1-400
        if [ "$have_summary" = no ]; then echo "--- last lines of its output:"; tail -20 "$f" 2>/dev/null | cut -c1-400; fi
      } >>"$MEMCHECK_LOG"
    done
    printf '%s\n' "${mem_notes[@]}" | sed 's/^/    /' | tee -a "$SUMMARY"
    if [ "$mem_errors" -gt 0 ]; then
      MEMCHECK_STATUS="$mem_errors memory error(s) in $mem_total binaries (memcheck.log)"; fail "memcheck"
    elif [ "$mem_unsupported" -gt 0 ]; then
      MEMCHECK_STATUS="the sanitizer does not support this machine ($mem_unsupported binaries)"; incomplete "memcheck unsupported"
    elif [ "$mem_timeouts" -gt 0 ]; then
      MEMCHECK_STATUS="no errors found, but $mem_timeouts of $mem_total binaries timed out, did not start or did not finish"; incomplete "memcheck incomplete"
    elif [ "$mem_api" -gt 0 ]; then
      MEMCHECK_STATUS="0 memory errors; $mem_api CUDA API error(s) reported (memcheck.log)"; incomplete "memcheck: API errors to read"
    else
      MEMCHECK_STATUS="clean ($mem_clean of $mem_total binaries)"
    fi
    [ "$mem_testfail" -gt 0 ] && MEMCHECK_STATUS="$MEMCHECK_STATUS; $mem_testfail binaries' tests failed under the sanitizer"
    cap_log "$MEMCHECK_LOG"
  else
    echo "# memcheck $MEMCHECK_STATUS" >"$MEMCHECK_LOG"
    incomplete "memcheck not run"
  fi
  say "memcheck: $MEMCHECK_STATUS"
fi

# =========================================================================================================
# 4. Benchmarks: ours, then PyTorch's on the same shapes (one after the other: each has the GPU alone).
# =========================================================================================================
BENCH_BIN="$BUILD/tools/bench_cuda_ops"
# SCPN_BENCH_MODE: auto (default: full when time allows, else --quick), full, quick or off.
mode=${SCPN_BENCH_MODE:-auto}
if [[ "$BUILD_STATUS" == ok* ]] && [ "$mode" != off ]; then
  left=$(($(remaining) - 8))
  if [ "$mode" = auto ]; then if [ "$left" -ge 150 ]; then mode=full; else mode=quick; fi; fi
  if [ "$mode" = full ]; then bench_args=(--reps 10); else bench_args=(--quick); fi
  ours_cap=$(max 30 $((left * 55 / 100)))
  { timeout 20 nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu --format=csv 2>&1 | sed 's/^/# before: /'; } >"$BENCH_OURS"
  say "bench: bench_cuda_ops ${bench_args[*]} (at most ${ours_cap}s)"
  if [ -x "$BENCH_BIN" ]; then
    timeout -k 5 "$ours_cap" "$BENCH_BIN" "${bench_args[@]}" >>"$BENCH_OURS" 2>&1
    ours_rc=$?
  else
    echo "bench_cuda_ops not built at $BENCH_BIN" >>"$BENCH_OURS"; ours_rc=127
  fi
  # The whole SCPN step on the device (parent + 4 subnetworks, integration, SGD): ResNet-18 at width 64,
  # 32x32 inputs, batch 64. Its lines go to the same log, after the rows.
  STEP_BIN="$BUILD/tools/bench_step"
  if [ -x "$STEP_BIN" ] && [ "$(remaining)" -ge 120 ]; then
    say "bench: bench_step (ResNet-18 width 64, 32x32, batch 64, 10 steps; at most 60s)"
    { echo "# bench_step"; timeout -k 5 60 "$STEP_BIN" --steps 10 device=cuda:0 model.base_width=64 data.image_size=32 \
        train.batch_size=64 2>&1; echo "# bench_step exit status $?"; } >>"$BENCH_OURS"
    STEP_LINE=$(grep -E '^(step total|images/s)' "$BENCH_OURS" | tr -s ' ' | paste -sd';' -)
  fi
  # Compact channel-pruned subnetworks on the device: a subnetwork's training pass against the parent's and
  # the FLOP ratio, and whole steps compact vs masked vs weight granularity (docs/sparse_channel.md).
  SPARSE_BIN="$BUILD/tools/bench_sparse_channel"
  if [ -x "$SPARSE_BIN" ] && [ "$(remaining)" -ge 150 ]; then
    say "bench: bench_sparse_channel (ResNet-18 and 50 width 64, 32x32, batch 64; at most 60s)"
    { echo "# bench_sparse_channel"; timeout -k 5 60 "$SPARSE_BIN" --rounds 5 --skip layers device=cuda:0 \
        model.base_width=64 data.image_size=32 train.batch_size=64 2>&1; echo "# bench_sparse_channel exit status $?"; } >>"$BENCH_OURS"
  fi
  # The kernel lab's variants, CUDA rows included (tools/kernel_lab/README.md keeps their table).
  LAB_BIN="$BUILD/tools/kernel_lab/kernel_lab"
  if [ -x "$LAB_BIN" ] && [ "$(remaining)" -ge 120 ]; then
    say "bench: kernel_lab (at most 40s)"
    { echo "# kernel_lab"; timeout -k 5 40 "$LAB_BIN" 2>&1; echo "# kernel_lab exit status $?"; } >>"$BENCH_OURS"
  fi
  torch_cap=$(max 30 $(($(remaining) - 8)))
  say "bench: tools/bench/torch_ops.py ${bench_args[*]} (at most ${torch_cap}s)"
  if [ -n "$PY" ]; then
    LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" PYTHONUNBUFFERED=1 timeout -k 5 "$torch_cap" \
      "$PY" tools/bench/torch_ops.py "${bench_args[@]}" >"$BENCH_TORCH" 2>&1
    torch_rc=$?
  else
    echo "no python3: no PyTorch rows" >"$BENCH_TORCH"; torch_rc=127
  fi
  cap_log "$BENCH_OURS"; cap_log "$BENCH_TORCH"
  ours_rows=$(grep -c '^row	' "$BENCH_OURS" || true); torch_rows=$(grep -c '^row	' "$BENCH_TORCH" || true)
  ours_err=$(grep -c '^error	' "$BENCH_OURS" || true)
  BENCH_STATUS="$mode: ours $ours_rows rows (rc $ours_rc, $ours_err failed), torch $torch_rows rows (rc $torch_rc)"
  if [ "$ours_rc" -ne 0 ] || [ "$torch_rc" -ne 0 ] || [ "${ours_err:-0}" -gt 0 ] || [ "${ours_rows:-0}" -eq 0 ]; then
    incomplete "bench"
    grep -E '^error	|bench_cuda_ops:|torch_ops:' "$BENCH_OURS" "$BENCH_TORCH" | head -10 | cut -c1-300 | sed 's/^/    /' | tee -a "$SUMMARY"
  fi
  say "bench: $BENCH_STATUS"
elif [ "$mode" = off ]; then
  BENCH_STATUS="off (SCPN_BENCH_MODE=off)"
fi

# =========================================================================================================
# 5. The ratio table (ours / PyTorch per row; bandwidth rows as % of each run's copy bandwidth), then the
#    one-line verdict, last.
# =========================================================================================================
ratio_table() {
  awk -F'\t' -v torch="$BENCH_TORCH" '
    BEGIN {
      while ((getline line < torch) > 0) {
        n = split(line, f, "\t")
        if (f[1] == "row" && n >= 8) { tms[f[2]] = f[4]; tpct[f[2]] = f[8] }
      }
      printf "%-38s %-10s %9s %9s %7s %6s %6s\n", "row (batch 64, f32/TF32)", "impl", "ours ms", "torch ms", "ours/pt", "%copy", "pt%cp"
    }
    $1 == "row" && NF >= 8 {
      name = $2; impl = $3; ms = $4; pct = $8
      split(name, g, ":"); group = g[1]
      if (group == "conv.fwd" || group == "bn.fwd") next   # in the logs; the table keeps fwd+bwd rows
      t = (name in tms) ? tms[name] : ""
      ratio = (t != "" && t > 0) ? sprintf("%.2f", ms / t) : "-"
      printf "%-38s %-10s %9.3f %9s %7s %6s %6s\n", substr(name, 1, 38), impl, ms, (t == "" ? "-" : sprintf("%.3f", t)), ratio,
             (pct == "-" ? "" : pct "%"), ((name in tpct) && tpct[name] != "-" ? tpct[name] "%" : "")
      if (group == "conv" && t != "" && t > 0) {
        r = ms / t; nconv++; lsum += log(r); if (r <= 1.1) within++
        if (r > worst) { worst = r; worst_name = g[2] }
      }
      if ((group == "elementwise" || group == "reduce") && pct != "-") {
        nbw++; if (pct + 0 >= 80) bw_ok++
        if (bw_min == "" || pct + 0 < bw_min) { bw_min = pct + 0; bw_min_name = name }
      }
      if (group == "copy") ours_copy = $5
      if (group == "gemm" && name ~ /sq8192|sq4096/) ours_gemm[name] = $5
    }
    END {
      if (nconv > 0)
        printf "conv fwd+bwd: %d of %d rows within 1.1x of PyTorch; geometric mean ours/torch %.2f; worst %.2f (%s)\n",
               within, nconv, exp(lsum / nconv), worst, worst_name
      else print "conv fwd+bwd: no row to compare (a benchmark missing?)"
      if (nbw > 0)
        printf "elementwise/reduce: %d of %d rows at >= 80%% of the copy bandwidth; lowest %d%% (%s)\n", bw_ok, nbw, bw_min, bw_min_name
    }' "$BENCH_OURS"
}

echo | tee -a "$SUMMARY"
if [ -s "$BENCH_OURS" ] && grep -q '^row	' "$BENCH_OURS"; then
  {
    echo "== ours / PyTorch, same run, $GPU_DESC =="
    ratio_table
    [ -n "${STEP_LINE:-}" ] && echo "SCPN step (bench_step, ResNet-18 w64 32px batch 64, K=4): $STEP_LINE"
    echo "copy ceiling: ours $(awk -F'\t' '$1=="row" && $2 ~ /^copy:/ {print $5}' "$BENCH_OURS") GB/s, torch $(awk -F'\t' '$1=="row" && $2 ~ /^copy:/ {print $5}' "$BENCH_TORCH" 2>/dev/null) GB/s (D2D, read+write)"
  } | tee -a "$SUMMARY"
else
  say "no benchmark rows (bench: $BENCH_STATUS)"
fi

{
  echo
  echo "probe: $PROBE_STATUS | configure: $CONFIGURE_STATUS | build: $BUILD_STATUS"
  echo "tests: $TEST_STATUS"
  echo "memcheck: $MEMCHECK_STATUS"
  echo "bench: $BENCH_STATUS"
} | tee -a "$SUMMARY"
total_s=$(elapsed)
# Exit status: 0 PASS; 1 FAIL (probe, configure, build, a test, or memcheck found memory errors); 3 INCOMPLETE
# (nothing failed, but part of the check could not run: memcheck timed out or unsupported, a benchmark
# missing or with failed rows, GPU tests skipped).
if [ ${#FAILED[@]} -gt 0 ]; then
  verdict="FAIL"; why=$(IFS=';'; echo "${FAILED[*]}"); code=1
  [ ${#INCOMPLETE[@]} -gt 0 ] && why="$why; also incomplete: $(IFS=';'; echo "${INCOMPLETE[*]}")"
elif [ ${#INCOMPLETE[@]} -gt 0 ]; then
  verdict="INCOMPLETE"; why=$(IFS=';'; echo "${INCOMPLETE[*]}"); code=3
else
  verdict="PASS"; why="build ok, every test passed, memcheck clean, benchmarks ran"; code=0
fi
echo "DEVICE CHECK: $verdict ($why) in ${total_s}s on $GPU_DESC; logs: $LOG_DIR" | tee -a "$SUMMARY"
exit $code
