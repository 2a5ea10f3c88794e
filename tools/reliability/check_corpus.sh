#!/usr/bin/env bash
# Reliability check: mutants of valid configs, checkpoints, safetensors inputs, IDX files, image folders,
# In-shop partitions and GLDv2 csv files, SCPN_CORPUS_PER_KIND of each (default 200), run through
# train_scpn, eval and extract_features of the ASan+UBSan build SCPN_FUZZ_BUILD (default build-fuzz).
# Last stdout line: the JSON object run.sh collects. Exit status 1 on a crash, hang or unclear refusal.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${SCPN_FUZZ_BUILD:-build-fuzz}
work=${SCPN_RELIABILITY_WORK:-$build/reliability}/corpus
rm -rf "$work"
mkdir -p "$work"
data=/usr/share/datasets/fashion-mnist
seeds=("$build/tools/fuzz/make_fuzz_seeds" "$work/inputs")
[ -f "$data/t10k-images-idx3-ubyte.gz" ] && seeds+=("$data")
"${seeds[@]}"
exec python3 tools/reliability/corpus.py --build "$build" --valid "$work/inputs/valid" --work "$work/runs" \
  --per-kind "${SCPN_CORPUS_PER_KIND:-200}" --timeout "${SCPN_CORPUS_TIMEOUT:-30}" --jobs "${SCPN_RELIABILITY_JOBS:-2}"
