#!/usr/bin/env bash
# The project's main job on a fresh machine: installs the missing packages, builds train_scpn and the tools,
# trains the default SCPN run (Fashion-MNIST subset, small ResNet-18 layout, capacities 0.8/0.6/0.4/0.2, on
# the CPU), then evaluates every capacity 0.1 … 1.0 of the trained network (trained and never-trained ones
# side by side: runs/default/eval/index.html) and cuts a never-trained 35 % subnetwork out of it.
# Extra arguments go to train_scpn (KEY=VALUE, see docs/config.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tools/scripts/install_deps.sh
cmake -S . -B build -G Ninja
cmake --build build --target train_scpn eval prune extract_features -j "$(nproc 2>/dev/null || echo 2)"

run=runs/default
./build/train_scpn output.dir="$run" "$@"
./build/tools/eval --run "$run" --output "$run/eval"
./build/tools/prune --run "$run" --capacity 0.35 --output "$run/subnet_0.35.safetensors"
echo "run_demo: the report is $run/eval/index.html (tables: $run/report.txt, $run/eval/eval.txt)"
