#!/usr/bin/env bash
# tapegrad from outside its tree, three ways (tests/consumer/):
#   1. cmake --install into a temporary prefix, then an out-of-tree project with
#      find_package(tapegrad CONFIG REQUIRED) configures, builds and runs;
#   2. the same program built with pkg-config alone (g++ $(pkg-config --cflags --libs tapegrad));
#   3. a project that add_subdirectory()s the repository builds only the library (checked in its
#      CMakeLists.txt: no tests, programs or benchmarks, no GTest/CLI11, build type untouched).
# Prints each consumer's compile line (what flags it gets from the target).
# Environment: BUILD_DIR (default build): when it holds a configured build, the library is built and
# installed from there; otherwise a library-only build is made in the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jobs=$(nproc)

compile_line() {  # the compile command of the consumer's main.cpp, from compile_commands.json
  grep -o '"command": "[^"]*consumer/main.cpp[^"]*"' "$1/compile_commands.json" | head -n 1 |
    sed 's/^"command": "//; s/"$//'
}

echo "== install into a temporary prefix"
build=${BUILD_DIR:-build}
if [ ! -f "$build/CMakeCache.txt" ]; then
  build=$tmp/build
  cmake -S . -B "$build" -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_BENCH=OFF \
    -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" --target tapegrad -j"$jobs" >/dev/null
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
find "$tmp/prefix" -name 'tapegrad*' -maxdepth 4 | sed "s|$tmp/prefix/|  |" | sort

echo "== find_package consumer"
cmake -S tests/consumer/find_package -B "$tmp/fp" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$tmp/fp" -j"$jobs" >/dev/null
echo "compile line: $(compile_line "$tmp/fp")"
"$tmp/fp/consumer" | tail -n 1

echo "== pkg-config consumer"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# shellcheck disable=SC2046  # pkg-config's output is a list of flags
c++ $(pkg-config --cflags tapegrad) tests/consumer/main.cpp -o "$tmp/pc_consumer" \
  $(pkg-config --libs tapegrad)
echo "flags: $(pkg-config --cflags --libs tapegrad)"
"$tmp/pc_consumer" | tail -n 1

echo "== add_subdirectory consumer (builds only the library)"
cmake -S tests/consumer/add_subdirectory -B "$tmp/as" -DTAPEGRAD_SOURCE_DIR="$src" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$tmp/as" -j"$jobs" >/dev/null
echo "compile line: $(compile_line "$tmp/as")"
targets=$(cmake --build "$tmp/as" --target help | grep -c -E '^\.\.\. (test_|tapegrad_bench|nadaraya_watson)' || true)
[ "$targets" -eq 0 ] || { echo "add_subdirectory built tests or programs" >&2; exit 1; }
"$tmp/as/consumer" | tail -n 1
echo "consumer_test: all consumers built and ran"
