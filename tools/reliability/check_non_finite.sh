#!/usr/bin/env bash
# Non-finite values in train_scpn on a tiny CPU config (docs/reliability.md): a NaN pixel injected at step 3
# (debug.inject_nan_step) and a learning rate that diverges, under train.non_finite = stop and skip, with
# debug.detect_non_finite, and a resume that switches the policy. Each case checks the exit code, the error
# message, which step the last checkpoint holds, and that no checkpoint holds a NaN or Inf.
# Last line: {"kind":"non-finite","tried":N,"passed":P,"failed":F}.
# Usage: tools/reliability/check_non_finite.sh [BUILD_DIR]
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-cpu}
TRAIN=$BUILD/train_scpn
CHECK=$BUILD/tools/check_run
for exe in "$TRAIN" "$CHECK"; do
  [ -x "$exe" ] || { echo "check_non_finite: $exe not built (ninja -C $BUILD train_scpn check_run)" >&2; exit 2; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scpn_non_finite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 64 images in batches of 16: 4 steps per epoch, 2 epochs, a checkpoint after every step.
CONFIG=(model.base_width=2 model.feature_dim=8 data.train_limit=64 data.test_limit=40 train.batch_size=16
        train.epochs=2 'train.capacities=[0.5,0.25]' 'eval.capacities=[1.0]' eval.bn_reestimate_batches=1
        output.checkpoint_every=1 device=cpu)
DIVERGE=(train.lr=1e20 train.clip_norm=0 train.task_clip_norm=0)
tried=0 passed=0 failed=0

# run NAME EXPECTED_RC MESSAGE_REGEX LAST_STEP [KEY=VALUE ...]: runs train_scpn in $WORK/NAME (resuming when
# NAME ends in "+resume"), then checks the exit code, that stderr matches MESSAGE_REGEX (skipped when empty),
# that last.safetensors holds step LAST_STEP, and that every checkpoint in the folder is finite.
run() {
  local name=$1 want_rc=$2 pattern=$3 want_step=$4
  shift 4
  local dir=$WORK/${name%+resume} extra=()
  [[ $name == *+resume ]] && extra=(--resume)
  local message rc step problems=""
  message=$("$TRAIN" --quiet "${extra[@]}" "${CONFIG[@]}" output.dir="$dir" "$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" = "$want_rc" ] || problems+=" exit code $rc, expected $want_rc;"
  [ -z "$pattern" ] || grep -qE "$pattern" <<<"$message" || problems+=" message does not match /$pattern/;"
  step=$("$CHECK" step "$dir/last.safetensors" 2>&1)
  [ "$step" = "$want_step" ] || problems+=" last.safetensors holds step $step, expected $want_step;"
  for f in "$dir"/*.safetensors; do
    "$CHECK" finite "$f" >/dev/null || problems+=" $("$CHECK" finite "$f");"
  done
  tried=$((tried + 1))
  if [ -z "$problems" ]; then
    passed=$((passed + 1)); echo "$name: pass: rc $rc${message:+, '$message'}"
  else
    failed=$((failed + 1)); echo "$name: FAIL:$problems${message:+ '$message'}"
  fi
}

# A NaN pixel at step 3 under `stop`: the error names the step and the first non-finite gradient; the last
# checkpoint is step 2's.
run nan-stop 1 '^train_scpn: error: step 3 \(epoch 0, batch 2\): non-finite values \([0-9]+ of [0-9]+ gradients hold non-finite values, the first .conv1\.weight.: .*\); stopping as train\.non_finite = stop; this step updated nothing$' \
  2 debug.inject_nan_step=3
# The same folder resumed with `skip`: step 3 is skipped and the run completes.
run nan-stop+resume 0 '' 8 debug.inject_nan_step=3 train.non_finite=skip
# `skip` with a bound of 0: the first skipped step is one too many.
run nan-skip-bound 1 'step 3 \(epoch 0, batch 2\): non-finite values \(.*\); stopping: 1 step skipped, more than train\.max_skipped_steps = 0$' \
  2 debug.inject_nan_step=3 train.non_finite=skip train.max_skipped_steps=0
# debug.detect_non_finite names the op: the stem convolution, in the forward pass.
run nan-detect 1 "^train_scpn: error: step 3 \(epoch 0, batch 2\): debug.detect_non_finite: op 'conv2d' \(forward\) produced a non-finite output of shape \[16, 2, 28, 28\]: 8 of 25088 values are non-finite, the first nan at index 0$" \
  2 debug.inject_nan_step=3 debug.detect_non_finite=true
# A learning rate of 1e20 without clipping: the losses turn NaN at step 2; nothing non-finite is saved.
run diverge-stop 1 '^train_scpn: error: step 2 \(epoch 0, batch 1\): non-finite values \(the parent loss is nan, .*\); stopping as train\.non_finite = stop' \
  1 "${DIVERGE[@]}"
# ... under `skip`, every later step is non-finite too (the weights went bad in step 1's finite update):
# skipped up to the bound, then the run stops.
run diverge-skip 1 '^train_scpn: error: step 5 \(epoch 1, batch 0\): non-finite values \(.*\); stopping: 4 steps skipped, more than train\.max_skipped_steps = 3$' \
  4 "${DIVERGE[@]}" train.non_finite=skip train.max_skipped_steps=3

# A skipped step changes nothing: 3 steps with step 3 skipped hold step 2's tensors, bit for bit.
"$TRAIN" --quiet "${CONFIG[@]}" output.dir="$WORK/two" train.steps=2
"$TRAIN" --quiet "${CONFIG[@]}" output.dir="$WORK/skipped" train.steps=3 debug.inject_nan_step=3 train.non_finite=skip
tried=$((tried + 1))
if same=$("$CHECK" same-tensors "$WORK/two/last.safetensors" "$WORK/skipped/last.safetensors") &&
   grep -qE '^\{"epoch":0,"skipped":"[^"]+","step":3\}$' "$WORK/skipped/metrics.jsonl"; then
  passed=$((passed + 1)); echo "skip-changes-nothing: pass: $same (parameters, BN statistics, optimizer state)"
else
  failed=$((failed + 1)); echo "skip-changes-nothing: FAIL: $same; metrics.jsonl: $(tail -1 "$WORK/skipped/metrics.jsonl")"
fi

echo "{\"kind\":\"non-finite\",\"tried\":$tried,\"passed\":$passed,\"failed\":$failed}"
[ $failed -eq 0 ]
