#!/usr/bin/env bash
# Fuzzes the CSV reader with libFuzzer (clang, ASan + UBSan) for a bounded time, then merges what it
# found into the committed corpus tests/fuzz/corpus/csv/, which the test suite replays as regression
# tests (ReliabilityCsvCorpus). Usage: bash scripts/fuzz_csv.sh [seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash scripts/setup.sh clang libclang-rt-14-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. \
  tests/fuzz/csv_fuzzer.cpp examples/csv.cpp -o "$work/csv_fuzzer"
mkdir -p "$work/new"
corpus=tests/fuzz/corpus/csv
"$work/csv_fuzzer" -max_total_time="$seconds" -max_len=512 -timeout=5 -print_final_stats=1 \
  "$work/new" "$corpus" 2>&1 | tail -n 12
# Keep only inputs that add coverage to what is committed.
"$work/csv_fuzzer" -merge=1 "$corpus" "$work/new" 2>&1 | tail -n 2
echo "corpus: $(ls "$corpus" | wc -l) files in $corpus"
