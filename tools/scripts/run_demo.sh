#!/usr/bin/env bash
# The project's main job on a fresh machine: installs packages, builds, trains the default SCPN run,
# evaluates every capacity of the trained network and cuts a never-trained 35 % subnetwork out of it.
# Usage: tools/scripts/run_demo.sh [KEY=VALUE ...]   (extra arguments go to train_scpn, see docs/config.md)
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tools/scripts/install_deps.sh
cmake -S . -B build -G Ninja
cmake --build build --target train_scpn eval prune extract_features -j "$(nproc 2>/dev/null || echo 2)"

# The default run: Fashion-MNIST subset, small ResNet-18 layout, capacities 0.8/0.6/0.4/0.2, on the CPU.
# The evaluation covers every capacity 0.1 … 1.0, trained and never-trained ones side by side
# (runs/default/eval/index.html).
run=runs/default
./build/train_scpn output.dir="$run" "$@"
./build/tools/eval --run "$run" --output "$run/eval"
./build/tools/prune --run "$run" --capacity 0.35 --output "$run/subnet_0.35.safetensors"
echo "run_demo: the report is $run/eval/index.html (tables: $run/report.txt, $run/eval/eval.txt)"
