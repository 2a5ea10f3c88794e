#!/usr/bin/env bash
# The project's test command: installs missing packages, configures a Release build in build/,
# builds the library, tests and tools, and runs every CTest test. Exit status is non-zero on any failure.
# Usage: tools/scripts/run_tests.sh [extra cmake -D options...]
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tools/scripts/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -G Ninja "$@"
cmake --build build -j "$jobs"
cd build
ctest --output-on-failure -j "$jobs"
