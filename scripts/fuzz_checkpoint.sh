#!/usr/bin/env bash
# Fuzzes the checkpoint loader with libFuzzer (clang, ASan + UBSan) for a bounded time, then merges
# what it found into the committed corpus tests/fuzz/corpus/checkpoint/, which the test suite
# replays (ReliabilityCheckpointCorpus). The first input byte chooses whether the fuzzer appends a
# correct checksum (tests/fuzz/checkpoint_fuzz_check.h), so it explores the header's meaning too.
# Usage: bash scripts/fuzz_checkpoint.sh [seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash scripts/setup.sh clang libclang-rt-14-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. tests/fuzz/checkpoint_fuzzer.cpp io/checkpoint.cpp io/files.cpp optim/sgd.cpp optim/optimizer.cpp \
  autograd/tensor.cpp \
  autograd/tape.cpp autograd/lifecycle.cpp autograd/anomaly.cpp ops/kernels/shape.cpp \
  ops/kernels/reduction.cpp -o "$work/checkpoint_fuzzer"
mkdir -p "$work/new"
corpus=tests/fuzz/corpus/checkpoint
"$work/checkpoint_fuzzer" -max_total_time="$seconds" -max_len=2048 -timeout=5 \
  -print_final_stats=1 "$work/new" "$corpus" 2>&1 | tail -n 12
# Keep only inputs that add coverage to what is committed.
"$work/checkpoint_fuzzer" -merge=1 "$corpus" "$work/new" 2>&1 | tail -n 2
echo "corpus: $(ls "$corpus" | wc -l) files in $corpus"
