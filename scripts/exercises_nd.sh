#!/usr/bin/env bash
# The 2nd edition's exercises 1 and 2 on vectors and classes (docs/chapter.md, section 6), run by
# the chapter program, with the figures that docs/chapter.md shows:
#   exercise 2: learn per-coordinate widths by SGD on 2-D data whose second coordinate is noise,
#               leave-one-out against --keep-self; w per epoch in widths_per_epoch.png
#   exercise 1: Parzen windows against NW classification on two moons
# Usage: bash scripts/exercises_nd.sh [OUT_DIR]   (default out/exercises_nd)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-out/exercises_nd}
QUIET=1 BUILD_TARGET=nadaraya_watson bash "$root/scripts/build.sh"
nw="$root/build/nadaraya_watson"
mkdir -p "$out"

# Exercise 2: 200 points of the chapter's curve in x1, x2 irrelevant; w starts at (1, 1).
common=(--dataset chapter2d --widths per-coordinate --n-train 200 --epochs 200 --lr 0.05
        --w-init 1 --log-every 1)
# Each epoch prints "epoch k, loss L, w [w1, w2]" (w after that epoch's step): kept as a .dat file.
w_per_epoch() { tee "$1.log" | sed -n 's/^epoch \([0-9]*\), loss [^,]*, w \[\(.*\), \(.*\)\]$/\1 \2 \3/p' > "$1.dat"; }
"$nw" "${common[@]}" --out "$out/leave_one_out" | w_per_epoch "$out/leave_one_out_w"
"$nw" "${common[@]}" --keep-self --out "$out/keep_self" | w_per_epoch "$out/keep_self_w"
tail -n 2 "$out/leave_one_out_w.log" "$out/keep_self_w.log"

# Exercise 1: two moons, classified by NW; the program compares the Parzen rule on every query.
"$nw" --dataset moons --task classification --n-train 200 --epochs 30 --lr 0.05 --sigma 0.3 \
  --out "$out/moons" | tail -4
"$nw" --dataset moons --task classification --loss squared --n-train 200 --epochs 30 --lr 0.05 \
  --sigma 0.3 --no-plots --out "$out/moons_squared" | tail -2

# w per epoch of both runs (the same numbers are in each run's training.json, "w_per_epoch").
gnuplot <<GP
set terminal pngcairo size 720,420
set output "$out/widths_per_epoch.png"
set title "Per-coordinate widths learned by SGD (x2 is noise)"
set xlabel "epoch"; set ylabel "w"; set key top left
plot "$out/leave_one_out_w.dat" using 1:2 with lines lw 2 title "w1, leave-one-out", \
     "$out/leave_one_out_w.dat" using 1:3 with lines lw 2 title "w2, leave-one-out", \
     "$out/keep_self_w.dat" using 1:2 with lines lw 2 dt 2 title "w1, --keep-self", \
     "$out/keep_self_w.dat" using 1:3 with lines lw 2 dt 2 title "w2, --keep-self"
GP
echo "wrote $out/widths_per_epoch.png and the runs' outputs in $out"
