#!/usr/bin/env bash
# Builds everything and runs every test (ctest). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DTAPEGRAD_BUILD_TESTS=ON "$@"
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)"
