#!/bin/sh
# check_bad_input.sh PROGRAM OUTDIR ARGS...: runs PROGRAM ARGS... --out OUTDIR and checks the
# bad-input contract: exit status 2, exactly one line on stderr, OUTDIR not created. The exercises
# and the nadaraya_watson program (its --dataset/--task/--loss/--widths combinations) use it.
set -u
exe=$1 out=$2
shift 2
rm -rf "$out"
err=$("$exe" "$@" --out "$out" 2>&1 >/dev/null)
status=$?
lines=$(printf '%s\n' "$err" | wc -l)
echo "status $status, stderr: $err"
[ "$status" -eq 2 ] || { echo "FAIL: expected exit status 2"; exit 1; }
[ "$lines" -eq 1 ] || { echo "FAIL: expected one line on stderr, got $lines"; exit 1; }
[ ! -e "$out" ] || { echo "FAIL: $out was written"; exit 1; }
echo "ok"
