# The fused training epoch against the width w: tapegrad's fused op in both dtypes
# beside PyTorch's and LibTorch's plain rewrite of the same epoch, at n = 4000, 2 threads.
# Usage: gnuplot -e "datafile='perf_vs_w.dat'; outfile='perf_vs_w.png'" bench/plot_vs_w.gp
# (bench/run.py writes perf_vs_w.dat and calls this; docs/performance.md shows the result).
if (!exists("datafile")) datafile = 'perf_vs_w.dat'
if (!exists("outfile")) outfile = 'perf_vs_w.png'
if (!exists("label")) label = 'n = 4000, 2 threads'
set terminal pngcairo size 900,600 font "sans,11"
set output outfile
set datafile missing '?'
set logscale xy
set grid
set key outside right center
set xlabel "w (attention width parameter; larger w = sharper attention)"
set ylabel "median time per epoch (ms)"
set title "W1 training epoch at fixed w (".label.")"
plot datafile using 1:2 with linespoints lw 2 pt 7 title "tapegrad fused, float32", \
     ''       using 1:3 with linespoints lw 2 pt 5 title "tapegrad fused, float64", \
     ''       using 1:4 with linespoints lw 2 dt 2 pt 9 title "PyTorch plain, float32", \
     ''       using 1:5 with linespoints lw 2 dt 2 pt 11 title "PyTorch plain, float64", \
     ''       using 1:6 with linespoints lw 1 dt 3 pt 4 title "LibTorch plain, float32", \
     ''       using 1:7 with linespoints lw 1 dt 3 pt 6 title "LibTorch plain, float64"
