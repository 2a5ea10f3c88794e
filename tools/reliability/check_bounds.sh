#!/usr/bin/env bash
# Reliability check: the "resource bounds" regression tests (huge image dimensions and files, IDX counts,
# list sizes and millions of missing files, terabyte safetensors tensors, oversized model configs, deep
# config nesting), run from the ordinary build SCPN_BUILD (default build). Last stdout line: the JSON
# object run.sh collects. Exit status 1 when one fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${SCPN_BUILD:-build}
tried=0 passed=0 failed=0 notes=""
for test in test_train_data_sources test_train_data_loader test_engine_safetensors test_models_checkpoint \
            test_train_config; do
  exe="$build/tests/$test"
  if [ ! -x "$exe" ]; then
    failed=$((failed + 1)) notes="$notes $test not built;"
    continue
  fi
  log=$("$exe" --test-case="resource bounds*" 2>&1)
  summary=$(grep -E "test cases: *[0-9]+" <<<"$log" | tail -1)
  n=$(sed -E 's/.*test cases: *([0-9]+).*/\1/' <<<"$summary")
  ok=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")
  bad=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")
  echo "$test: $summary"
  [ "${n:-0}" -gt 0 ] || { failed=$((failed + 1)) notes="$notes $test ran no resource-bounds case;"; continue; }
  tried=$((tried + n)) passed=$((passed + ok)) failed=$((failed + bad))
  [ "$bad" -eq 0 ] || notes="$notes $test: $bad failed;"
done
[ -n "$notes" ] || notes="every limit refused its input before allocating, with the limit in the message"
printf '{"kind":"resource-bounds","tried":%d,"passed":%d,"failed":%d,"notes":"%s"}\n' "$tried" "$passed" "$failed" \
  "$(sed 's/^ //; s/"/\\"/g' <<<"$notes")"
[ "$failed" -eq 0 ]
