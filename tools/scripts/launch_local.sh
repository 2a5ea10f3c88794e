#!/usr/bin/env bash
# Starts N ranks of a program on this machine with the torchrun-style variables (RANK, WORLD_SIZE,
# LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), rank 0's output on this terminal and every
# rank's in <log dir>/rank<r>.log; when one rank fails the others are stopped. Exit status: the first
# failing rank's, else 0.
# Usage: tools/scripts/launch_local.sh [--port P] [--logs DIR] N program [args...]
set -uo pipefail

port=29500
logs=""
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    *) echo "launch_local.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [--port P] [--logs DIR] N program [args...]" >&2
  exit 2
fi
world="$1"
shift
logs="${logs:-$(mktemp -d "${TMPDIR:-/tmp}/launch_local.XXXXXX")}"
mkdir -p "$logs"

pids=()
for ((r = 0; r < world; r++)); do
  : > "$logs/rank$r.log"
done
for ((r = 0; r < world; r++)); do
  env RANK="$r" WORLD_SIZE="$world" LOCAL_RANK="$r" LOCAL_WORLD_SIZE="$world" \
      MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$@" > "$logs/rank$r.log" 2>&1 &
  pids+=($!)
done
tail -n +1 -f "$logs/rank0.log" --pid="${pids[0]}" &
tailer=$!

status=0
declare -A running
for ((r = 0; r < world; r++)); do running[${pids[$r]}]=$r; done
while [[ ${#running[@]} -gt 0 ]]; do
  done_pid=""
  wait -n -p done_pid "${!running[@]}"
  rc=$?
  [[ -z "$done_pid" ]] && break
  r=${running[$done_pid]}
  unset "running[$done_pid]"
  if [[ $rc -ne 0 && $status -eq 0 ]]; then
    status=$rc
    echo "launch_local.sh: rank $r exited with status $rc (log: $logs/rank$r.log)" >&2
    # The others stop by themselves once they notice (at once for a dead rank); give them a moment.
    sleep 2
    kill "${!running[@]}" 2>/dev/null
  fi
done
wait "$tailer" 2>/dev/null
echo "launch_local.sh: logs in $logs" >&2
exit "$status"
