#!/usr/bin/env bash
# Kill-and-resume trials of train_scpn on a tiny CPU config (docs/reliability.md): one uninterrupted run,
# then TRIALS runs that are each interrupted one to four times at random points — kill -9 at a random step,
# kill -9 inside a checkpoint write, SIGTERM, SIGTERM twice inside a write — and resumed until done, plus
# one run resumed past a file-size limit (a full disk). Each must end with the uninterrupted run's final
# weights bit for bit, its sample order (every sample once per epoch) and its metrics, and leave no
# temporary file. Last line: {"kind":"kill-resume","tried":N,"passed":P,"failed":F,"notes":"..."}.
# Usage: tools/reliability/check_kill_resume.sh [BUILD_DIR] [TRIALS]   (SCPN_TRIAL_SEED: the random choices)
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-cpu}
TRIALS=${2:-24}
RANDOM=${SCPN_TRIAL_SEED:-15}
TRAIN=$BUILD/train_scpn
CHECK=$BUILD/tools/check_run
for exe in "$TRAIN" "$CHECK"; do
  [ -x "$exe" ] || { echo "check_kill_resume: $exe not built (ninja -C $BUILD train_scpn check_run)" >&2; exit 2; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scpn_kill_resume.XXXXXX")
KEEP=$BUILD/kill_resume_failures  # a failed trial's run folder is copied here
trap 'rm -rf "$WORK"' EXIT

# 192 images, batches of 16, 3 epochs: 36 steps, a checkpoint every 2. The cosine schedule (stepped per step),
# an extra random capacity per step and augmentation make every random stream and the schedule matter.
IMAGES=192 BATCH=16 STEPS=36
CONFIG=(model.base_width=2 model.feature_dim=8 data.train_limit=$IMAGES data.test_limit=40 train.batch_size=$BATCH
        train.epochs=3 'train.capacities=[0.5,0.25]' train.extra_random_capacities=1 train.schedule=cosine
        train.warmup_steps=3 'eval.capacities=[1.0,0.5]' eval.bn_reestimate_batches=1 output.log_every=1
        output.checkpoint_every=2 debug.sample_log=true device=cpu)
PAUSE_MS=250  # debug.checkpoint_pause_ms of the runs killed inside a write

# metrics.jsonl without the fields that measure time.
untimed() { sed -E 's/"(images_per_s|step_ms)":[-+0-9.eE]*,?//g; s/,}/}/' "$1"; }

start=$(date +%s.%N)
"$TRAIN" --quiet "${CONFIG[@]}" output.dir="$WORK/reference" || { echo "check_kill_resume: the reference run failed" >&2; exit 1; }
REF_SECONDS=$(echo "$(date +%s.%N) - $start" | bc)
echo "reference run: $STEPS steps in ${REF_SECONDS}s"

# Starts train_scpn in $dir (resuming when a checkpoint exists) with extra arguments; sets $pid.
launch() {
  local resume=()
  [ -f "$dir/last.safetensors" ] && resume=(--resume)
  "$TRAIN" --quiet "${resume[@]}" "${CONFIG[@]}" output.dir="$dir" "$@" 2>>"$dir.stderr" &
  pid=$!
}

# Waits until the run's checkpoint write number $1 (counted from 1) is inside its pause; 1 when the run
# ended first.
wait_inside_write() {
  local wanted=$1 seen=0 inside=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ -e "$dir/last.safetensors.tmp.$pid" ]; then
      if [ $inside -eq 0 ]; then inside=1; seen=$((seen + 1)); fi
      [ $seen -eq $wanted ] && return 0
    else
      inside=0
    fi
    sleep 0.01
  done
  return 1
}

# Waits until the run has logged a random step after its checkpoint's (or has ended), then a random 0-0.49 s
# more, so that the signal lands anywhere in the run (a step, a write, an evaluation) whatever the
# machine's speed; sets $point to say where.
wait_random_point() {
  local from=0 target last
  [ -f "$dir/last.safetensors" ] && from=$("$CHECK" step "$dir/last.safetensors")
  [ "$from" -lt "$STEPS" ] || from=$((STEPS - 1))  # training done: the signal lands in the final phase
  target=$((from + 1 + RANDOM % (STEPS - from)))
  while kill -0 "$pid" 2>/dev/null; do
    last=$(grep -o '"step":[0-9]*' "$dir/metrics.jsonl" 2>/dev/null | tail -1 | cut -d: -f2)
    [ "${last:-0}" -ge "$target" ] && break
    sleep 0.02
  done
  local extra
  extra=$(printf '0.%02d' $((RANDOM % 50)))
  sleep "$extra"
  point="${extra}s after step $target"
}

# Starts a run and interrupts it one of four ways; sets $event (what happened) and $ok=0 on an unexpected
# exit code. The runs interrupted inside a checkpoint write pause there (debug.checkpoint_pause_ms).
interrupt() {
  local kind=$((RANDOM % 4)) rc
  case $kind in
    0|2) launch;;
    1|3) launch debug.checkpoint_pause_ms=$PAUSE_MS;;
  esac
  case $kind in
    0)  # kill -9 at a random point
      wait_random_point
      kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rc=$?
      event="kill -9 $point (rc $rc)"; [[ $rc == 137 || $rc == 0 ]] || ok=0
      kills=$((kills + 1));;
    1)  # kill -9 inside checkpoint write k
      local k=$((RANDOM % 8 + 1))
      if wait_inside_write $k; then
        kill -9 "$pid"; wait "$pid" 2>/dev/null; rc=$?
        event="kill -9 inside checkpoint write $k (rc $rc)"; [[ $rc == 137 ]] || ok=0
        in_write=$((in_write + 1))
      else
        wait "$pid" 2>/dev/null; rc=$?; event="ran to the end before checkpoint write $k (rc $rc)"; [[ $rc == 0 ]] || ok=0
      fi;;
    2)  # SIGTERM at a random point: the run stops after the step with a checkpoint, exit code 75
      wait_random_point
      kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rc=$?
      event="SIGTERM $point (rc $rc)"; [[ $rc == 75 || $rc == 0 ]] || ok=0
      terms=$((terms + 1));;
    3)  # SIGTERM inside a write, then a second SIGTERM: exit at once with 143, the checkpoint file whole
      local k=$((RANDOM % 8 + 1))
      if wait_inside_write $k; then
        kill -TERM "$pid"; sleep 0.05; kill -TERM "$pid"; wait "$pid" 2>/dev/null; rc=$?
        event="two SIGTERMs inside checkpoint write $k (rc $rc)"; [[ $rc == 143 ]] || ok=0
        in_write=$((in_write + 1)); terms=$((terms + 1))
      else
        wait "$pid" 2>/dev/null; rc=$?; event="ran to the end before checkpoint write $k (rc $rc)"; [[ $rc == 0 ]] || ok=0
      fi;;
  esac
}

# Compares a finished run folder with the reference; prints what differs, returns 1 if anything does.
same_as_reference() {
  local d=$1 status=0
  "$CHECK" same-tensors "$WORK/reference/final.safetensors" "$d/final.safetensors" >"$d.check" || status=1
  "$CHECK" samples "$d/samples.jsonl" $IMAGES $BATCH $STEPS "$WORK/reference/samples.jsonl" >>"$d.check" || status=1
  "$CHECK" finite "$d/last.safetensors" >>"$d.check" || status=1
  diff <(untimed "$WORK/reference/metrics.jsonl") <(untimed "$d/metrics.jsonl") >"$d.metrics_diff" ||
    { echo "metrics.jsonl differs from the reference: $(head -c 600 "$d.metrics_diff")" >>"$d.check"; status=1; }
  local left
  left=$(ls "$d" | grep -E '\.tmp\.[0-9]+$' || true)
  [ -z "$left" ] || { echo "temporary files left: $left" >>"$d.check"; status=1; }
  [ $status -eq 0 ] || grep -v '^same tensors\|^samples: \|^finite: ' "$d.check" | sed 's/^/    /'
  return $status
}

passed=0 failed=0 kills=0 in_write=0 terms=0 interruptions=0
for trial in $(seq 1 "$TRIALS"); do
  dir=$WORK/trial$trial
  mkdir -p "$dir"
  ok=1 story=""
  # Interrupt the first run, then each resumed one with probability 1/2 (at most 4 interruptions).
  for attempt in 1 2 3 4; do
    if [ $attempt -eq 1 ] || [ $((RANDOM % 2)) -eq 0 ]; then
      interrupt
      interruptions=$((interruptions + 1))
      story+="$event; "
    else
      break
    fi
  done
  # Resume (or start over, when no checkpoint was written) until a run finishes.
  for attempt in 1 2 3; do
    launch; wait "$pid" 2>/dev/null; rc=$?
    [ $rc -eq 0 ] && break
    story+="resume failed (rc $rc); "
    ok=0
  done
  story+="resumed to the end"
  if [ $ok -eq 1 ] && same_as_reference "$dir"; then
    passed=$((passed + 1)); echo "trial $trial: pass: $story"
  else
    failed=$((failed + 1)); echo "trial $trial: FAIL: $story (folder kept in $KEEP/trial$trial)"
    mkdir -p "$KEEP" && rm -rf "$KEEP/trial$trial" && cp -r "$dir" "$KEEP/trial$trial" && cp "$dir.stderr" "$KEEP/trial$trial/stderr.txt"
  fi
done

# A full disk: a run resumed under a file-size limit smaller than a checkpoint cannot write its next one;
# it must stop with the message, keep the previous checkpoint as it was, and resume to the same bits later.
dir=$WORK/full_disk
mkdir -p "$dir"
"$TRAIN" --quiet "${CONFIG[@]}" output.dir="$dir" train.steps=4
before=$(sha256sum "$dir/last.safetensors" | cut -d' ' -f1)
limit_kib=$(( $(stat -c %s "$dir/last.safetensors") / 2048 ))
message=$( (ulimit -f "$limit_kib"; "$TRAIN" --quiet --resume "${CONFIG[@]}" output.dir="$dir") 2>&1 >/dev/null); rc=$?
after=$(sha256sum "$dir/last.safetensors" | cut -d' ' -f1)
"$TRAIN" --quiet --resume "${CONFIG[@]}" output.dir="$dir"
if [ $rc -eq 1 ] && [ "$before" = "$after" ] &&
   grep -q "checkpoint of step 6 not written: .*File too large; the previous checkpoint .*last.safetensors (step 4) is kept" <<<"$message" &&
   same_as_reference "$dir"; then
  passed=$((passed + 1)); echo "full disk: pass: rc $rc, '$message'"
else
  failed=$((failed + 1)); echo "full disk: FAIL: rc $rc, '$message'"
fi

tried=$((TRIALS + 1))
notes="$interruptions interruptions in $TRIALS trials: $kills kill -9 at random points, $in_write inside a checkpoint write, $terms with SIGTERM; plus a full-disk resume; every run compared bit for bit with an uninterrupted one ($STEPS steps)"
echo "{\"kind\":\"kill-resume\",\"tried\":$tried,\"passed\":$passed,\"failed\":$failed,\"notes\":\"$notes\"}"
[ $failed -eq 0 ]
