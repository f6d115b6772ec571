#!/usr/bin/env bash
# Configures and builds tapegrad in ./build (Release). Extra arguments go to cmake's configure step,
# e.g. bash scripts/build.sh -DTAPEGRAD_WERROR=ON.
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), BUILD_TARGET (default all),
# QUIET=1 (build log to $BUILD_DIR/build.log, shown only on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build_dir=${BUILD_DIR:-build}
mkdir -p "$build_dir"

configure_and_build() {
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" &&
    cmake --build "$build_dir" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
}

if [ "${QUIET:-0}" = 1 ]; then
  if ! configure_and_build "$@" >"$build_dir/build.log" 2>&1; then
    tail -n 40 "$build_dir/build.log" >&2
    echo "build failed (log: $build_dir/build.log)" >&2
    exit 1
  fi
else
  configure_and_build "$@"
fi
