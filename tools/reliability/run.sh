#!/usr/bin/env bash
# The reliability report: runs every tools/reliability/check_*.sh (libFuzzer harnesses, mutated inputs
# through the tools, resource bounds, and every other check following the same contract: an executable
# script whose last stdout line is one JSON object {"kind", "tried", "passed", "failed", "notes"}), then
# prints one table (table.py). Exit status non-zero when a check failed, crashed or printed no JSON.
#
# Usage: tools/reliability/run.sh [--build]
#   --build  first configure and build what the checks need: the ordinary build (SCPN_BUILD, default
#            build) and the clang ASan+UBSan fuzz build (SCPN_FUZZ_BUILD, default build-fuzz).
# Sizes (defaults fit a few minutes on 2 cores): SCPN_FUZZ_SECONDS (per harness, 20),
# SCPN_CORPUS_PER_KIND (200), SCPN_RELIABILITY_JOBS (2). Logs: SCPN_RELIABILITY_WORK (build-fuzz/reliability).
set -uo pipefail
cd "$(dirname "$0")/../.."
export SCPN_BUILD=${SCPN_BUILD:-build} SCPN_FUZZ_BUILD=${SCPN_FUZZ_BUILD:-build-fuzz}
export SCPN_RELIABILITY_WORK=${SCPN_RELIABILITY_WORK:-$SCPN_FUZZ_BUILD/reliability}
jobs=${SCPN_RELIABILITY_JOBS:-2}

if [ "${1:-}" = "--build" ]; then
  set -e
  cmake -S . -B "$SCPN_BUILD" -G Ninja > /dev/null
  cmake --build "$SCPN_BUILD" -j "$jobs"
  CC=clang CXX=clang++ cmake -S . -B "$SCPN_FUZZ_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSCPN_FUZZ=ON \
    -DSCPN_CUDA=OFF -DSCPN_OPENBLAS=OFF -DSCPN_BUILD_TESTS=OFF > /dev/null
  cmake --build "$SCPN_FUZZ_BUILD" -j "$jobs" --target fuzz_harnesses train_scpn eval extract_features init_checkpoint
  set +e
fi

mkdir -p "$SCPN_RELIABILITY_WORK"
results="$SCPN_RELIABILITY_WORK/results.tsv"
: > "$results"
status=0
for check in tools/reliability/check_*.sh; do
  name=$(basename "$check" .sh)
  log="$SCPN_RELIABILITY_WORK/$name"
  echo "== $name (output: $log.out, $log.err)" >&2
  start=$(date +%s)
  "$check" > "$log.out" 2> "$log.err" || status=1
  echo "   $(( $(date +%s) - start )) s" >&2
  printf '%s\t%s\n' "$name" "$(grep -v '^[[:space:]]*$' "$log.out" | tail -1)" >> "$results"
done
python3 tools/reliability/table.py "$results" || status=1
exit $status
