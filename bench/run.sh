#!/usr/bin/env bash
# The tapegrad vs PyTorch / LibTorch performance comparison, end to end (docs/performance.md).
#   bash bench/run.sh                # full run (about 20 min on an idle 2-core machine)
#   bash bench/run.sh --update-doc   # the same, then rewrites docs/performance.md's generated block,
#                                    # its appendix docs/performance_detail.md and the plots
#   bash bench/run.sh --quick        # fewer widths, sizes and reps (under 5 min): a smoke test
#   bash bench/run.sh --only W4      # only some workloads (W1 W1f W1b W2 W2c W3 W4 W5 classes)
#   bash bench/run.sh --help         # this text and bench/run.py's options; builds nothing
# Other arguments go to bench/run.py (e.g. --against bench/results/<stamp>/results.jsonl); they are
# checked before anything is built, and a bad one exits 2 with one line.
# Builds, each in its own directory (Release; logs in the directory, shown only on failure):
#   build-bench/         tapegrad_bench and examples' nadaraya_watson with g++ ($CXX if set)
#   build-bench-clang/   tapegrad_bench with clang (-DCMAKE_CXX_COMPILER=clang++), if clang++ is installed
#   build-bench-libtorch/ bench/libtorch's libtorch_bench, if Torch's CMake config is found
#                        (Debian libtorch-dev); its own CMake project, never part of the main build
# A missing clang or LibTorch only drops those columns (with a warning). Then makes sure
# python3-torch is there (apt-get, with sudo when not root; the PyTorch side is skipped with a
# message if that fails) and runs bench/run.py: every configuration in a fresh process, the sides
# of one comparison back to back, never concurrently. Raw JSON, tables and plots go to
# bench/results/<timestamp>/.
# Do not run it while something else loads the CPUs: the driver waits up to 5 s for idle CPUs
# before each process and flags rows measured while others were busy, but it cannot make a busy
# machine quiet.
set -euo pipefail
cd "$(dirname "$0")/.."

# --help and the arguments' check come first: neither builds nor installs anything.
for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    echo
    exec python3 bench/run.py --help
  fi
done
python3 bench/run.py --check-args "$@" || exit 2

# build DIR LOG_LABEL CMAKE_ARGS... -- TARGETS...: configure and build quietly, 1 on failure.
build() {
  local dir=$1 label=$2
  shift 2
  local cmake_args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cmake_args+=("$1"); shift; done
  shift
  targets=("$@")
  mkdir -p "$dir"
  echo "== building $label in $dir"
  if ! { cmake "${cmake_args[@]}" -B "$dir" -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$dir" -j2 --target "${targets[@]}"; } >"$dir/bench-build.log" 2>&1; then
    tail -n 30 "$dir/bench-build.log" >&2
    echo "build of $label failed (log: $dir/bench-build.log)" >&2
    return 1
  fi
}

bash scripts/setup.sh
gcc_dir=${BUILD_DIR:-build-bench}
# The reference build: g++ (or $CXX if set), whatever c++ points to.
gxx=$(command -v "${CXX:-g++}")
build "$gcc_dir" "tapegrad_bench and nadaraya_watson ($gxx)" -S . -DCMAKE_CXX_COMPILER="$gxx" \
  -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_BENCH=ON -- tapegrad_bench nadaraya_watson
run_args=(--bin "$gcc_dir/bench/tapegrad_bench" --program "$gcc_dir/nadaraya_watson")

clang_dir=${CLANG_BUILD_DIR:-build-bench-clang}
if command -v clang++ >/dev/null; then
  if build "$clang_dir" "tapegrad_bench (clang)" -S . -DCMAKE_CXX_COMPILER="$(command -v clang++)" \
       -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_BENCH=ON -- tapegrad_bench; then
    run_args+=(--bin-clang "$clang_dir/bench/tapegrad_bench")
  else
    echo "== WARNING: the clang build failed; the clang columns are SKIPPED" >&2
  fi
else
  echo "== WARNING: clang++ not found; the clang columns are SKIPPED" >&2
fi

# LibTorch: Debian's libtorch-dev puts TorchConfig.cmake in /usr/lib/<triplet>/cmake/Torch.
torch_dir=${Torch_DIR:-}
if [ -z "$torch_dir" ]; then
  for d in /usr/lib/*/cmake/Torch /usr/share/cmake/Torch /usr/lib/cmake/Torch; do
    [ -f "$d/TorchConfig.cmake" ] && torch_dir=$d && break
  done
fi
lt_dir=${LIBTORCH_BUILD_DIR:-build-bench-libtorch}
if [ -n "$torch_dir" ]; then
  if build "$lt_dir" "libtorch_bench (LibTorch from $torch_dir)" \
       -S bench/libtorch -DTorch_DIR="$torch_dir" -- libtorch_bench; then
    run_args+=(--libtorch-bin "$lt_dir/libtorch_bench")
  else
    echo "== WARNING: the LibTorch build failed; the LibTorch columns are SKIPPED" >&2
  fi
else
  echo "== WARNING: no TorchConfig.cmake (apt-get install libtorch-dev); the LibTorch columns are SKIPPED" >&2
fi

# A Python that imports torch: Debian's python3-torch lives in /usr/bin/python3, which may not be
# the first python3 on PATH (pyenv and the like).
find_torch_python() {
  for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null && "$py" -c "import torch, numpy" >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}
if py=$(find_torch_python); then
  run_args+=(--python "$py")
else
  echo "== PyTorch not found: installing python3-torch with apt-get"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  if DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-torch >/dev/null 2>&1 ||
     { "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1 &&
       DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-torch >/dev/null 2>&1; }; then
    py=$(find_torch_python) && run_args+=(--python "$py")
  fi
  if [ -z "${py:-}" ]; then
    echo "== WARNING: could not install python3-torch; the PyTorch side is SKIPPED" >&2
  fi
fi

driver_py=${py:-python3}
if [ -n "${py:-}" ]; then
  echo "== PyTorch self-test (W1 and W1b loss and dL/dw vs a numpy closed form)"
  "$py" bench/torch_bench.py --selftest
fi
echo "== running (results in bench/results/)"
exec "$driver_py" bench/run.py "${run_args[@]}" "$@"
