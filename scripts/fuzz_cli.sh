#!/usr/bin/env bash
# Fuzzes the nadaraya_watson command line for a bounded time: random flag vectors and input files,
# each run as a subprocess into one shared --out, asserting exit 0 or 2, a byte-for-byte unchanged
# --out after a failure, a whole consistent set after a success, and no debris
# (tests/examples/test_cli_fuzz.cpp; ctest runs a short fixed-seed version of it).
# Usage: bash scripts/fuzz_cli.sh [seconds, default 60] [seed, default random]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
seed=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
build=${BUILD_DIR:-build}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" --target test_examples -j2 >/dev/null
TAPEGRAD_CLI_FUZZ_SECONDS=$seconds TAPEGRAD_CLI_FUZZ_SEED=$seed \
  "$build/tests/examples/test_examples" --gtest_filter='CliFuzz.*' | grep -E '^\[cli fuzz\]|FAIL|OK \]'
