#!/usr/bin/env bash
# The tapegrad vs PyTorch performance comparison, end to end (docs/performance.md):
#   bash bench/run.sh           # full run (about 12 min on an idle machine), the numbers of docs/performance.md
#   bash bench/run.sh --quick   # fewer sizes and reps (a few minutes)
# Builds tapegrad_bench (Release) in ./build-bench, makes sure python3-torch is there (apt-get,
# with sudo when not root; the PyTorch side is skipped with a message if that fails), then runs
# bench/run.py: every configuration in a fresh process, tapegrad and PyTorch alternating, never
# concurrently. Raw JSON, tables and the scaling plot go to bench/results/<timestamp>/.
# Extra arguments go to bench/run.py (see python3 bench/run.py --help).
# Do not run it while something else loads the CPUs: the driver waits up to a minute for idle
# CPUs before each process and records how busy they were, but it cannot make a busy machine quiet.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-bench}
echo "== building tapegrad_bench (Release) in $build_dir"
bash scripts/setup.sh
mkdir -p "$build_dir"
if ! { cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_TESTS=OFF \
         -DTAPEGRAD_BUILD_BENCH=ON &&
       cmake --build "$build_dir" -j2 --target tapegrad_bench; } >"$build_dir/bench-build.log" 2>&1; then
  tail -n 40 "$build_dir/bench-build.log" >&2
  echo "build failed (log: $build_dir/bench-build.log)" >&2
  exit 1
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
torch_args=()
if py=$(find_torch_python); then
  torch_args=(--python "$py")
else
  echo "== PyTorch not found: installing python3-torch with apt-get"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  if DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-torch >/dev/null 2>&1 ||
     { "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1 &&
       DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-torch >/dev/null 2>&1; }; then
    py=$(find_torch_python) && torch_args=(--python "$py")
  fi
  if [ ${#torch_args[@]} -eq 0 ]; then
    echo "== WARNING: could not install python3-torch; the PyTorch side is SKIPPED (tapegrad only)" >&2
  fi
fi

driver_py=${py:-python3}
if [ ${#torch_args[@]} -gt 0 ]; then
  echo "== PyTorch self-test (W1 and W1b loss and dL/dw vs a numpy closed form)"
  "$py" bench/torch_bench.py --selftest
fi
echo "== running (results in bench/results/)"
exec "$driver_py" bench/run.py --bin "$build_dir/bench/tapegrad_bench" "${torch_args[@]}" "$@"
