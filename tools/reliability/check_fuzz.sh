#!/usr/bin/env bash
# Reliability check: every libFuzzer harness (tools/fuzz/) for SCPN_FUZZ_SECONDS seconds (default 20) from
# generated seeds, in the ASan+UBSan build SCPN_FUZZ_BUILD (default build-fuzz, configured with
# -DSCPN_FUZZ=ON). Last stdout line: the JSON object run.sh collects. Exit status 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${SCPN_FUZZ_BUILD:-build-fuzz}
work=${SCPN_RELIABILITY_WORK:-$build/reliability}/fuzz
exec python3 tools/reliability/fuzz.py --build "$build" --work "$work" --seconds "${SCPN_FUZZ_SECONDS:-20}" \
  --jobs "${SCPN_RELIABILITY_JOBS:-2}"
