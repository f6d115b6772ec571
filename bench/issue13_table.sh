#!/usr/bin/env bash
# Issue 13's table, re-measured: the chapter program's fused epoch against w, n = 4000, 2 threads,
#   nadaraya_watson --n-train 4000 --epochs 50 --lr 0 --w-init W --impl fused --dtype D
# per epoch = train_seconds / epochs from its training.json (the issue's measure), and the median
# epoch (epoch_seconds_median) where the program reports it. Every binary given is run in turn for
# each cell (dtype, w), REPS times, so that they share the machine's noise; the table shows each
# binary's median over the reps.
#   bash bench/issue13_table.sh LABEL=PATH [LABEL=PATH ...]
# e.g. the code before issue 13's work (828c823) against now:
#   git worktree add ../before 828c823 && cmake -S ../before -B ../before/build \
#     -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_TESTS=OFF &&
#   cmake --build ../before/build -j2 --target nadaraya_watson
#   bash bench/issue13_table.sh before=../before/build/examples/nadaraya_watson \
#     now=build/nadaraya_watson
# Environment: REPS (default 3), WIDTHS (default "0.8 2 5 10 20 50 200"), DTYPES (default
# "float32 float64"). The allocator settings are the benchmark's (docs/performance.md).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash bench/issue13_table.sh LABEL=PATH [LABEL=PATH ...]" >&2; exit 2; }
reps=${REPS:-3}
widths=${WIDTHS:-0.8 2 5 10 20 50 200}
dtypes=${DTYPES:-float32 float64}
py=/usr/bin/python3
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=67108864
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
labels=()
for spec in "$@"; do
  label=${spec%%=*} path=${spec#*=}
  [ -x "$path" ] || { echo "issue13_table.sh: $path is not an executable" >&2; exit 2; }
  labels+=("$label")
done

# one_epoch PATH DTYPE W: prints "mean_ms median_ms" (median_ms "-" when not reported)
one_epoch() {
  local out="$tmp/run"
  rm -rf "$out"
  "$1" --n-train 4000 --epochs 50 --lr 0 --w-init "$3" --impl fused --dtype "$2" --threads 2 \
    --no-plots --out "$out" >/dev/null 2>&1
  "$py" -c 'import json, sys
j = json.load(open(sys.argv[1]))
med = j.get("epoch_seconds_median")
print(1e3 * j["train_seconds"] / j["epochs"], "-" if med is None else 1e3 * med)' \
    "$out/training.json"
}

results="$tmp/results"
for dt in $dtypes; do
  for w in $widths; do
    for ((r = 0; r < reps; ++r)); do
      for spec in "$@"; do
        echo "${spec%%=*} $dt $w $(one_epoch "${spec#*=}" "$dt" "$w")" >>"$results"
      done
    done
  done
done

"$py" - "$results" "${labels[@]}" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
labels = sys.argv[2:]
widths = list(dict.fromkeys(r[2] for r in rows))
print("per epoch, ms: train_seconds / epochs (median epoch in brackets where reported); "
      "medians of the reps")
print()
print("| dtype | binary | " + " | ".join(f"w = {w}" for w in widths) + " |")
print("|---|---|" + "---|" * len(widths))
for dt in dict.fromkeys(r[1] for r in rows):
    for label in labels:
        cells = []
        for w in widths:
            got = [r for r in rows if r[0] == label and r[1] == dt and r[2] == w]
            mean = statistics.median(float(r[3]) for r in got)
            meds = [float(r[4]) for r in got if r[4] != "-"]
            cells.append(f"{mean:.3g}" + (f" ({statistics.median(meds):.3g})" if meds else ""))
        print(f"| {dt} | {label} | " + " | ".join(cells) + " |")
EOF
