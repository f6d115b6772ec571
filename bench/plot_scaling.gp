# W1 training epoch against n: time (left) and peak RSS (right), tapegrad composed and fused vs
# PyTorch's chapter formulation (W1) and its best plain rewrite (W1b).
# Usage: gnuplot -e "datafile='scaling.dat'; outfile='perf_scaling.png'" bench/plot_scaling.gp
# (bench/run.py writes scaling.dat and calls this; see docs/performance.md).
if (!exists("datafile")) datafile = 'scaling.dat'
if (!exists("outfile")) outfile = 'perf_scaling.png'
if (!exists("label")) label = 'float32, 2 threads'
set terminal pngcairo size 1400,560 font "sans,11"
set output outfile
set datafile missing '?'
set logscale xy
set grid
set key top left
set xlabel "n (training points; n(n-1) query-key pairs)"
set multiplot layout 1,2 title "W1 training epoch (".label.")"

set ylabel "median time per epoch (ms)"
set title "time"
plot datafile using 1:2 with linespoints lw 2 pt 7 title "tapegrad composed ops", \
     ''       using 1:3 with linespoints lw 2 pt 5 title "PyTorch, chapter formulation (W1)", \
     ''       using 1:4 with linespoints lw 2 pt 9 title "tapegrad fused op", \
     ''       using 1:5 with linespoints lw 2 pt 11 title "PyTorch, masked (n,n) rewrite (W1b)"

set ylabel "peak RSS of the process (MiB)"
set title "memory (includes each runtime's baseline)"
plot datafile using 1:6 with linespoints lw 2 pt 7 title "tapegrad composed ops", \
     ''       using 1:7 with linespoints lw 2 pt 5 title "PyTorch W1", \
     ''       using 1:8 with linespoints lw 2 pt 9 title "tapegrad fused op", \
     ''       using 1:9 with linespoints lw 2 pt 11 title "PyTorch W1b"
unset multiplot
