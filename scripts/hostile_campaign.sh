#!/usr/bin/env bash
# A hostile campaign against the nadaraya_watson program, run as a new user would: flag values
# that are almost numbers, paths that cannot work, files that are not what they claim, full and
# read-only file systems, file size and descriptor limits, tools that lie, signals, concurrent runs
# on one checkpoint. Every case states what must happen (an exit status and words on stderr, or a
# success with whole outputs) and the invariants checked after every case:
#   - a failure prints exactly one line "nadaraya_watson: error: ..." and never "internal error";
#   - exit 2 (bad input) comes before the first epoch;
#   - a watched --out (and checkpoint) is byte for byte as it was after a failure;
#   - no staging directory or temporary file is left anywhere.
# The cases that mount a tmpfs or bind mount need root; without it they are counted as skipped.
# Prints each failing case, then a table of counts per category and the total; exit status 0 when
# no case failed. docs/program.md ("The hostile campaign") lists the categories and counts.
# Usage: bash scripts/hostile_campaign.sh [path/to/nadaraya_watson] (default build/nadaraya_watson);
# VERBOSE=1 prints every case with its exit status and error line.
set -u
cd "$(dirname "$0")/.." || exit 1
NW=$(realpath "${1:-build/nadaraya_watson}")
[ -x "$NW" ] || { echo "no program at $NW (build the target nadaraya_watson)" >&2; exit 1; }
W=$(mktemp -d /tmp/tapegrad_campaign.XXXXXX)
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
  rm -rf "$W" /dev/shm/tapegrad_campaign_out
}
trap cleanup EXIT
ROOT=0
if [ "$(id -u)" = 0 ] && mkdir -p "$W/.probe" && mount -t tmpfs -o size=64k tmpfs "$W/.probe" \
  2>/dev/null; then
  umount "$W/.probe" && ROOT=1
fi
rmdir "$W/.probe" 2>/dev/null
HAVE_GNUPLOT=0
command -v gnuplot >/dev/null && HAVE_GNUPLOT=1

declare -A PASS FAIL SKIP
CATS=()
CAT=""
category() {
  CAT=$1
  CATS+=("$1")
  PASS[$1]=0 FAIL[$1]=0 SKIP[$1]=0
}
pass() { PASS[$CAT]=$((PASS[$CAT] + 1)); }
fail() {
  FAIL[$CAT]=$((FAIL[$CAT] + 1))
  echo "FAIL [$CAT] $1: $2"
  echo "     stderr: $(head -c 400 "$W/stderr")"
}
skip() { SKIP[$CAT]=$((SKIP[$CAT] + 1)); }

# A digest of every file (names and bytes) under a directory, or "absent".
snap() {
  if [ -e "$1" ] || [ -L "$1" ]; then
    (cd "$1" 2>/dev/null && find . -type f -exec sha256sum {} + | sort && find . | sort) | sha256sum
  else
    echo absent
  fi
}

# Staging directories and temporaries left under $W (the campaign's own scratch excluded).
debris_all() {
  find "$W" \( -name '*staging*' -o -name '*.tmp.[0-9]*' -o -name 'graph.*.tmp' \) \
    -not -path "$W/keep/*" -prune 2>/dev/null
}
debris() { debris_all | head -3; }

# run_case NAME STATUS FRAGMENT ARGS...: runs the program in $W with ARGS (and --no-plots unless
# PLOTS=1) and checks STATUS, FRAGMENT on stderr (for a failure), and the invariants above.
# Environment knobs, reset after each case: PREFIX (shell code before the program, e.g. a ulimit),
# WATCH (a directory that must be unchanged after a failure), AFTER=1 (the failure may come after
# training), CHECK (shell code that must succeed afterwards), PLOTS=1, STDIN (a file for stdin).
run_case() {
  local name=$1 want=$2 fragment=$3
  shift 3
  local before=""
  [ -n "${WATCH:-}" ] && before=$(snap "$WATCH")
  local plots=(--no-plots)
  [ "${PLOTS:-0}" = 1 ] && plots=()
  (cd "$W" && timeout 60 bash -c "${PREFIX:-} exec \"\$0\" \"\$@\"" "$NW" "${plots[@]}" "$@" \
    >"$W/stdout" 2>"$W/stderr" <"${STDIN:-/dev/null}")
  local rc=$? problem=""
  if [ "$rc" != "$want" ]; then
    problem="exit $rc, expected $want"
  elif [ "$want" != 0 ]; then
    local errors
    errors=$(grep -c '^nadaraya_watson: ' "$W/stderr")
    if [ "$errors" != 1 ]; then problem="$errors error lines"; fi
    if grep -q 'internal error' "$W/stderr"; then problem="internal error"; fi
    if ! grep -qF -- "$fragment" "$W/stderr"; then problem="no '$fragment' on stderr"; fi
    if [ "$want" = 2 ] && [ "${AFTER:-0}" != 1 ] && grep -q '^epoch ' "$W/stdout"; then
      problem="exit 2 after training"
    fi
    if [ -n "${WATCH:-}" ] && [ "$(snap "$WATCH")" != "$before" ]; then
      problem="$WATCH changed"
    fi
  fi
  local left
  left=$(debris)
  if [ -n "$left" ]; then  # reported, then removed so that the next case is judged on its own
    problem="${problem:+$problem; }debris: $left"
    debris_all | xargs -r rm -rf
  fi
  if [ -n "${CHECK:-}" ] && ! (cd "$W" && bash -c "$CHECK") >/dev/null 2>&1; then
    problem="${problem:+$problem; }check failed: $CHECK"
  fi
  if [ -z "$problem" ]; then pass; else fail "$name" "$problem"; fi
  if [ -n "${VERBOSE:-}" ]; then echo "[$CAT] $name: exit $rc: $(grep -m1 '^nadaraya_watson' "$W/stderr")"; fi
  PREFIX="" WATCH="" AFTER=0 CHECK="" PLOTS=0 STDIN=""
}

# A mount of a tmpfs (size, extra options) at $W/$1, or a skip of the case when not root.
tmpfs_at() {
  mkdir -p "$W/$1"
  mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$W/$1" && MOUNTS+=("$W/$1")
}
unmount() { umount -l "$W/$1" && rmdir "$W/$1"; }
epochs_of() { grep -ao '"epochs_done":[0-9]*' "$W/$1" | cut -d: -f2; }
# Fills the file system holding $W/$1 until $2 KiB are free.
leave_free() {
  rm -f "$W/$1/filler"
  local free
  free=$(df -k --output=avail "$W/$1" | tail -1)
  [ "$free" -gt "$2" ] && head -c $(((free - $2) * 1024)) /dev/zero >"$W/$1/filler"
}
PREFIX="" WATCH="" AFTER=0 CHECK="" PLOTS=0 STDIN=""
mkdir -p "$W/keep"
printf 'x,y\n0,1\n1,2\n2,3\n' >"$W/t3.csv"
printf 'x\n0.5\n1.5\n' >"$W/q.csv"
(cd "$W" && "$NW" --epochs 1 --no-plots --save keep/ck --out keep/first >/dev/null 2>&1)
(cd "$W" && "$NW" --epochs 1 --no-plots --dtype float64 --save keep/ck64 --out keep/f64 \
  >/dev/null 2>&1)
(cd "$W" && "$NW" --epochs 1 --no-plots --dataset surface --save keep/ck2d --out keep/s2 \
  >/dev/null 2>&1)
[ $HAVE_GNUPLOT = 1 ] && (cd "$W" && "$NW" --epochs 1 --out keep/figs >/dev/null 2>&1)

# ---- integer flags: decimal integers only, quoted as typed ---------------------------------------
category "integer flags"
for flag in --epochs --n-train --threads --memory-budget; do
  for v in 0x10 0X1f +5 " 5" "5 " 5.0 1e3 5abc 0b101 0o7 "5,000" 9223372036854775808 \
    -9223372036854775809 99999999999999999999 "１" "٣"; do
    run_case "$flag '$v'" 2 "$flag must be an integer from" "$flag" "$v" --out o
  done
  run_case "$flag ''" 2 "$flag: the value is empty" "$flag" "" --out o
done
run_case "--epochs 007" 0 "" --epochs 007 --out o
run_case "--n-train 0002 (the least)" 0 "" --n-train 0002 --epochs 1 --out o
run_case "--threads 256 (the most)" 0 "" --threads 256 --epochs 1 --train t3.csv --out o
run_case "--memory-budget 1048576 (the most)" 0 "" --memory-budget 1048576 --epochs 1 --out o
run_case "--epochs 1000001" 2 "got '1000001'" --epochs 1000001 --out o
run_case "--seed 0x10" 2 "--seed must be an integer" --seed 0x10 --out o
run_case "--seed +1" 2 "--seed must be an integer" --seed +1 --out o
run_case "--seed 18446744073709551616" 2 "got '18446744073709551616'" --seed 18446744073709551616 \
  --out o

# ---- number flags: decimal numbers only ----------------------------------------------------------
category "number flags"
for flag in --lr --sigma --w-init; do
  for v in 0x10 0x1p-2 " 1" "1 " "1,5" 1e . - e5 1..2 0.5f 1e400 nan inf -inf; do
    run_case "$flag '$v'" 2 "$flag" "$flag" "$v" --out o
  done
  for v in .5 +0.5 5E-1; do
    run_case "$flag $v" 0 "" "$flag" "$v" --epochs 1 --out o
  done
done
run_case "--lr -1" 2 "--lr must be >= 0" --lr -1 --out o
run_case "--sigma 0" 2 "--sigma must be positive" --sigma 0 --out o
run_case "--sigma 1e-40 (float32 reciprocal overflows)" 2 "too small for float32" --sigma 1e-40 \
  --out o

# ---- names: exact words only ----------------------------------------------------------------------
category "names"
for args in "--kernel Gaussian" "--kernel gaussian\ " "--dtype Float32" "--dtype f32" \
  "--impl FUSED" "--task Regression" "--widths shared\ " "--loss Squared" "--dataset moon" \
  "--dataset CHAPTER"; do
  eval "set -- $args"
  run_case "$args" 2 "$1" "$@" --out o
done
for flag in --impl --dataset --loss --kernel --dtype --task --widths; do
  run_case "$flag ''" 2 "$flag: the value is empty" "$flag" "" --out o
done

# ---- --out: every problem before the first epoch; odd but legal paths work ------------------------
category "--out paths"
ln -s loop_a "$W/loop_b" && ln -s loop_b "$W/loop_a"
ln -s "$W/nowhere/x" "$W/dangling"
echo x >"$W/a_file"
mkfifo "$W/a_fifo"
deep=$W
while [ ${#deep} -lt 4200 ]; do deep="$deep/$(printf 'd%.0s' {1..200})"; done
run_case "loop" 2 "a loop of symbolic links" --out loop_a
run_case "loop/sub" 2 "a loop of symbolic links" --out loop_a/sub
run_case "dangling link" 2 "which does not exist" --out dangling
run_case "dangling/sub" 2 "which does not exist" --out dangling/sub
run_case "4 KB path" 2 "too long" --out "$deep"
run_case "through a file" 2 "a_file is not a directory" --out a_file/out
run_case "a regular file" 2 "exists and is not a directory" --out a_file
run_case "a FIFO" 2 "exists and is not a directory" --out a_fifo
run_case "/dev/null" 2 "exists and is not a directory" --out /dev/null
run_case "the root" 2 "cannot be the root" --out /
run_case "256-byte name" 2 "File name too long" --out "$(printf 'n%.0s' {1..256})"
run_case "/proc/x" 2 "cannot create" --out /proc/x
run_case "/sys/x" 2 "cannot create" --out /sys/x
mkdir -p "$W/withdir/training.json"
run_case "an output name is a directory" 2 "training.json is a directory" --out withdir
N240=$(printf 'n%.0s' {1..240})
N255=$(printf 'm%.0s' {1..255})
CHECK="test -f $N240/predictions.csv" run_case "240-byte name" 0 "" --epochs 1 --out "$N240"
CHECK="test -f $N255/predictions.csv" run_case "255-byte name" 0 "" --epochs 1 --out "$N255"
CHECK="test -f sl/predictions.csv" run_case "trailing slash" 0 "" --epochs 1 --out sl/
CHECK="test -f dbl/x/predictions.csv" run_case "a//b" 0 "" --epochs 1 --out dbl//x
CHECK="test -f y/predictions.csv" run_case "./x/../y" 0 "" --epochs 1 --out ./x/../y
CHECK="test -f 'with space/predictions.csv'" run_case "spaces" 0 "" --epochs 1 --out "with space"
CHECK="test -f 'ünï/predictions.csv'" run_case "UTF-8 name" 0 "" --epochs 1 --out "ünï"
CHECK="test -f ./-o/predictions.csv" run_case "a name starting with -" 0 "" --epochs 1 --out=-o
CHECK="find . -maxdepth 2 -path './nl*/predictions.csv' | grep -q ." \
  run_case "a newline in the name" 0 "" --epochs 1 --out "nl
x"
mkdir -p "$W/real_out" && ln -s real_out "$W/link_out"
CHECK="test -L link_out && test -f real_out/predictions.csv" \
  run_case "a link to a directory" 0 "" --epochs 1 --out link_out
mkdir -p "$W/so" && echo secret >"$W/keep/outside" && ln -s "$W/keep/outside" "$W/so/training.json"
CHECK="grep -q secret keep/outside && test ! -L so/training.json" \
  run_case "an output is a link to a file outside" 0 "" --epochs 1 --out so
mkdir -p "$W/deep/er" && CHECK="test -f deep/er/est/predictions.csv" \
  run_case "missing parents" 0 "" --epochs 1 --out deep/er/est
mkdir "$W/gone" && (cd "$W/gone" && rmdir "$W/gone" && timeout 60 "$NW" --no-plots --out rel \
  >"$W/stdout" 2>"$W/stderr")
if [ $? = 2 ] && grep -q "cannot resolve it against the current directory" "$W/stderr"; then pass; else
  fail "relative --out from a deleted directory" "exit or message"
fi

# ---- --save: refused before the first epoch, or saved where it says -------------------------------
category "--save paths"
mkdir -p "$W/sv"
ln -s "$W/sv/missing/ck" "$W/sv/dangling_missing_dir"
ln -s "$W/sv/new_ck" "$W/sv/dangling_ok"
ln -s "$W/sv/target_ck" "$W/sv/link_ck"
ln -s sv_loop_a "$W/sv_loop_b" && ln -s sv_loop_b "$W/sv_loop_a"
run_case "loop" 2 "a loop of symbolic links" --save sv_loop_a --out o
run_case "link into a missing directory" 2 "does not exist" --save sv/dangling_missing_dir --out o
run_case "a FIFO" 2 "not a regular file" --save a_fifo --out o
run_case "a directory" 2 "is a directory" --save sv --out o
# A private null device, never /dev/null itself: a program that renamed its checkpoint onto a
# device as root would replace the system's device node.
if [ "$(id -u)" = 0 ] && mknod -m 666 "$W/sv/null" c 1 3 2>/dev/null; then
  CHECK="test -c sv/null" run_case "a character device" 2 "not a regular file" --save sv/null \
    --out o
else
  skip
fi
run_case "256-byte name" 2 "File name too long" --save "sv/$(printf 'c%.0s' {1..256})" --out o
run_case "through a file" 2 "--save" --save a_file/ck --out o
run_case "missing directory" 2 "does not exist" --save nodir/ck --out o
run_case "4 KB path" 2 "--save" --save "$deep/ck" --out o
run_case "the --train file" 2 "--save would overwrite the --train file" --train t3.csv \
  --save t3.csv --out o
run_case "an --out file" 2 "is the --out file" --save o/training.json --out o
run_case "--save ''" 2 "--save: the value is empty" --save "" --out o
CHECK="test -f sv/$(printf 'c%.0s' {1..250})" run_case "250-byte name" 0 "" --epochs 1 \
  --save "sv/$(printf 'c%.0s' {1..250})" --out o
CHECK="test -L sv/dangling_ok && test -f sv/new_ck" run_case "a dangling link into a directory" \
  0 "" --epochs 1 --save sv/dangling_ok --out o
CHECK="test -L sv/link_ck && test -f sv/target_ck" run_case "a link to a file" 0 "" --epochs 1 \
  --save sv/link_ck --out o
cp "$W/keep/ck" "$W/sv/ck_res"
CHECK="grep -q '\"epochs_done\":3' sv/ck_res" run_case "--save equal to --resume" 0 "" --epochs 2 \
  --resume sv/ck_res --save sv/ck_res --out o

# ---- --resume: refused before it is read whole -----------------------------------------------------
category "--resume files"
mkdir -p "$W/rs"
: >"$W/rs/empty"
printf 'tapegrad-checkpoint 1\n' >"$W/rs/magic_only"
head -c 20 /dev/urandom >"$W/rs/noise"
echo "not a checkpoint" >"$W/rs/big" && truncate -s 2G "$W/rs/big"
printf 'tapegrad-checkpoint 1\n' >"$W/rs/big_magic" && truncate -s 2G "$W/rs/big_magic"
printf 'tapegrad-checkpoint 1\n' >"$W/rs/mib" && truncate -s 1048577 "$W/rs/mib"
head -c -1 "$W/keep/ck" >"$W/rs/short"
cp "$W/keep/ck" "$W/rs/flipped" && printf 'X' | dd of="$W/rs/flipped" bs=1 seek=60 conv=notrunc \
  2>/dev/null
ln -s "$W/rs/nothing" "$W/rs/dangling"
ln -s rs_loop_a "$W/rs_loop_b" && ln -s rs_loop_b "$W/rs_loop_a"
run_case "a FIFO" 2 "is a FIFO" --resume a_fifo --out o
run_case "/dev/zero" 2 "is a character device" --resume /dev/zero --out o
run_case "/dev/null" 2 "is a character device" --resume /dev/null --out o
run_case "a directory" 2 "is a directory" --resume rs --out o
run_case "empty" 2 "bad magic" --resume rs/empty --out o
run_case "magic only" 2 "truncated" --resume rs/magic_only --out o
run_case "20 random bytes" 2 "bad magic" --resume rs/noise --out o
run_case "2 GiB without magic" 2 "bad magic" --resume rs/big --out o
PREFIX="ulimit -v 1500000;" run_case "2 GiB with magic, ulimit -v 1.5 GB" 2 "larger than a" \
  --resume rs/big_magic --out o
run_case "1 MiB + 1 byte" 2 "at most 1048576 bytes" --resume rs/mib --out o
run_case "one byte short" 2 "checkpoint rs/short" --resume rs/short --out o
run_case "a flipped byte" 2 "checkpoint rs/flipped" --resume rs/flipped --out o
run_case "float64 into float32" 2 "dtype" --resume keep/ck64 --out o
run_case "d = 2 into d = 1" 2 "checkpoint keep/ck2d" --resume keep/ck2d --out o
run_case "dangling link" 2 "No such file or directory" --resume rs/dangling --out o
run_case "loop" 2 "Too many levels of symbolic links" --resume rs_loop_a --out o
run_case "missing" 2 "No such file or directory" --resume rs/missing --out o
run_case "/proc/self/status (size 0)" 2 "bad magic" --resume /proc/self/status --out o
run_case "--resume ''" 2 "--resume: the value is empty" --resume "" --out o
CHECK="grep -q 'after 1 epochs' stdout" run_case "a good checkpoint" 0 "" --epochs 1 \
  --resume keep/ck --out o

# ---- --train and --query files ---------------------------------------------------------------------
category "input files"
run_case "--train /dev/null" 2 "empty file" --train /dev/null --out o
run_case "--train a directory" 2 "is a directory" --train rs --out o
run_case "--train a dangling link" 2 "rs/dangling" --train rs/dangling --out o
run_case "--train a loop" 2 "rs_loop_a" --train rs_loop_a --out o
run_case "--train 4 KB path" 2 "File name too long" --train "$deep/t.csv" --out o
run_case "--train ''" 2 "--train: the value is empty" --train "" --out o
run_case "--query ''" 2 "--query: the value is empty" --query "" --out o
run_case "--query = --train" 2 "expected the header" --train t3.csv --query t3.csv --out o
printf 'x,y\r0,1\r1,2\r' >"$W/cr.csv"
run_case "CR-only line ends" 2 "cr.csv" --train cr.csv --out o
head -c 300000000 /dev/zero >"$W/zeros.csv" 2>/dev/null
run_case "300 MB of NUL bytes" 2 "binary data" --train zeros.csv --out o
rm -f "$W/zeros.csv"
run_case "--train /dev/zero" 2 "binary data" --train /dev/zero --out o
STDIN=$W/t3.csv CHECK="test -f o/predictions.csv" run_case "--train /dev/stdin" 0 "" --epochs 1 \
  --train /dev/stdin --out o
CHECK="test -f o/predictions.csv" run_case "--train <(process substitution)" 0 "" --epochs 1 \
  --train <(printf 'x,y\n0,1\n1,2\n2,2\n') --out o
CHECK="test -f o/predictions.csv" run_case "--query a FIFO with a writer" 0 "" --epochs 1 \
  --train t3.csv --query <(cat "$W/q.csv") --out o

# ---- file systems: mount points, full disks, read-only, limits ------------------------------------
category "file systems"
if [ $ROOT = 1 ]; then
  tmpfs_at mnt 8m
  CHECK="test -f mnt/predictions.csv" PLOTS=$HAVE_GNUPLOT run_case "--out a mount point" 0 "" \
    --epochs 1 --out mnt
  mkdir -p "$W/mnt/real" && ln -s "$W/mnt/real" "$W/to_mnt"
  CHECK="test -f mnt/real/predictions.csv" run_case "--out a link to another disk" 0 "" \
    --epochs 1 --out to_mnt
  mkdir -p "$W/bsrc" "$W/bnd" && mount --bind "$W/bsrc" "$W/bnd" && MOUNTS+=("$W/bnd")
  CHECK="test -f bsrc/predictions.csv" run_case "--out a bind mount" 0 "" --epochs 1 --out bnd
  cp "$W/keep/ck" "$W/fs_ck"
  CHECK="grep -aq '\"epochs_done\":4' fs_ck" \
    run_case "--resume ck --save ck, --out a mount point" 0 "" --epochs 3 --resume fs_ck \
    --save fs_ck --out mnt
  CHECK="test -f /dev/shm/tapegrad_campaign_out/predictions.csv && rm -rf /dev/shm/tapegrad_campaign_out" \
    run_case "--out on /dev/shm" 0 "" --epochs 1 --out /dev/shm/tapegrad_campaign_out
  unmount bnd 2>/dev/null
  unmount mnt
  # A full disk at every stage: the figures (~250 KB), plots.gp (~190 KB), the CSVs (~55 KB).
  tmpfs_at full 2m
  (cd "$W" && "$NW" --epochs 1 --out full/o --save keep/full_ck >/dev/null 2>&1)
  cp "$W/keep/full_ck" "$W/keep/full_ck.before"
  for room in 480 400 300 260 200 128 64 32 16 8 0; do
    leave_free full "$room"
    want=1
    if [ $HAVE_GNUPLOT = 1 ]; then
      WATCH=full/o AFTER=1 PLOTS=1 CHECK="cmp -s keep/full_ck keep/full_ck.before" \
        run_case "disk full, ${room} KiB free, with figures" "$want" \
        "left as it was" --epochs 1 --seed 9 --resume keep/full_ck --save keep/full_ck --out full/o
    else
      skip
    fi
  done
  leave_free full 4
  WATCH=full/o run_case "disk full: staging with 4 KiB free (CSVs)" 1 "No space left on device" \
    --epochs 1 --out full/o
  rm -f "$W/full/filler"
  cp "$W/keep/ck" "$W/full/ck"
  leave_free full 0
  run_case "disk full: the checkpoint's own disk" 1 "No space left on device" --epochs 1 \
    --resume full/ck --save full/ck --out o_full
  CHECK="cmp -s full/ck keep/ck" run_case "  ... the checkpoint unchanged" 1 \
    "No space left on device" --epochs 1 --resume full/ck --save full/ck --out o_full
  unmount full
  tmpfs_at ino 1m nr_inodes=3
  run_case "no inodes left" 1 "No space left on device" --epochs 1 --out ino/o
  unmount ino
  tmpfs_at ro 64k ro
  run_case "read-only --out" 2 "Read-only file system" --out ro
  run_case "read-only under --out" 2 "Read-only file system" --out ro/sub
  run_case "read-only --save" 2 "Read-only file system" --save ro/ck --out o
  unmount ro
  tmpfs_at ro2 64k && cp "$W/keep/ck" "$W/t3.csv" "$W/ro2/" && mount -o remount,ro "$W/ro2"
  CHECK="test -f o/predictions.csv" run_case "--resume and --train from a read-only disk" 0 "" \
    --epochs 1 --resume ro2/ck --out o
  run_case "--save onto a read-only checkpoint" 2 "Read-only file system" --resume ro2/ck \
    --save ro2/ck --out o
  unmount ro2
else
  for _ in $(seq 32); do skip; done
fi
(cd "$W" && "$NW" --epochs 1 --no-plots --out lim >/dev/null 2>&1)
for blocks in 1 4 16 30; do
  WATCH=lim PREFIX="ulimit -f $blocks;" run_case "ulimit -f $blocks" 1 "File too large" \
    --epochs 1 --seed 2 --out lim
done
if [ $HAVE_GNUPLOT = 1 ]; then
  (cd "$W" && "$NW" --epochs 1 --out limf >/dev/null 2>&1)
  for blocks in 100 150 200; do
    WATCH=limf PREFIX="ulimit -f $blocks;" PLOTS=1 AFTER=1 run_case "ulimit -f $blocks, figures" \
      1 "left as it was" --epochs 1 --seed 2 --out limf
  done
else
  skip && skip && skip
fi
PREFIX="ulimit -f 1;" CHECK="test -f keep/lim_ck" run_case "ulimit -f 1, outputs under 1 KiB" \
  0 "" --epochs 1 --train t3.csv --query q.csv --save keep/lim_ck --out lim_tiny
WATCH=lim PREFIX="ulimit -n 5;" PLOTS=$HAVE_GNUPLOT AFTER=1 run_case "ulimit -n 5" 1 \
  "left as it was" --epochs 1 --seed 2 --out lim

# ---- tools that fail or lie --------------------------------------------------------------------------
category "tools"
mkdir -p "$W/bin"
png=$(find "$W/keep/figs" -name 'loss.png' 2>/dev/null | head -1)
figures="pred_average.png pred_nonparametric.png pred_parametric.png attention_nonparametric.png"
figures="$figures attention_parametric.png loss.png kernels.png gaussian_widths.png"
figures="$figures gaussian_widths_attention.png"
fake() { # fake TOOL BODY
  printf '#!/bin/sh\n%s\n' "$2" >"$W/bin/$1"
  chmod +x "$W/bin/$1"
}
tool_case() { # tool_case NAME STATUS FRAGMENT ARGS...
  local name=$1 want=$2 frag=$3
  shift 3
  WATCH=lim PREFIX="PATH=$W/bin:\$PATH;" PLOTS=1 AFTER=1 run_case "$name" "$want" "$frag" \
    --epochs 1 --seed 3 --out lim "$@"
  rm -f "$W/bin/"*
}
fake gnuplot "exit 0"
tool_case "gnuplot draws nothing" 1 "is missing"
fake gnuplot "for f in $figures; do : > \$f; done"
tool_case "gnuplot draws empty files" 1 "is empty (0 bytes)"
fake gnuplot "for f in $figures; do printf '\\211PNG\\r\\n\\032\\nhalf' > \$f; done"
tool_case "gnuplot draws half PNGs" 1 "cut short"
fake gnuplot "for f in $figures; do echo GIF89a > \$f; done"
tool_case "gnuplot draws GIFs" 1 "not a PNG"
fake gnuplot "exit 3"
tool_case "gnuplot exits 3" 1 "gnuplot exited with status 3"
fake gnuplot "kill -9 \$\$"
tool_case "gnuplot killed by SIGKILL" 1 "killed by signal 9"
fake gnuplot "kill -SEGV \$\$"
tool_case "gnuplot killed by SIGSEGV" 1 "killed by signal 11"
if [ -n "$png" ]; then
  fake gnuplot "for f in $figures; do cp '$png' \$f; done"
  WATCH="" PREFIX="PATH=$W/bin:\$PATH;" PLOTS=1 CHECK="test -f lim2/kernels.png" \
    run_case "gnuplot draws whole PNGs" 0 "" --epochs 1 --out lim2
  rm -f "$W/bin/"*
else
  skip
fi
printf '#!/bin/sh\nexit 0\n' >"$W/bin/gnuplot" && chmod -x "$W/bin/gnuplot"
PREFIX="PATH=$W/bin;" PLOTS=1 CHECK="grep -q 'gnuplot not found' stderr" \
  run_case "gnuplot not executable: figures skipped" 0 "" --epochs 1 --out lim3
rm -f "$W/bin/"*
fake dot "exit 3"
tool_case "dot exits 3" 1 "dot exited with status 3" --no-plots --graph
fake dot "for a; do case \$a in *.png*) : > \$a;; esac; done"
tool_case "dot draws an empty graph.png" 1 "graph.png is empty" --no-plots --graph
fake dot "for a; do case \$a in *.png*) printf '\\211PNG\\r\\n\\032\\nx' > \$a;; esac; done"
tool_case "dot draws half a PNG" 1 "cut short" --no-plots --graph
fake dot "kill -9 \$\$"
tool_case "dot killed" 1 "killed by signal 9" --no-plots --graph

# ---- concurrency and signals -------------------------------------------------------------------------
category "concurrency and signals"
cp "$W/keep/ck" "$W/cc"
(cd "$W" && for i in 1 2 3; do
  "$NW" --epochs 2 --no-plots --resume cc --save cc --out "c$i" >"c$i.txt" 2>&1 &
done && wait)
if [ "$(epochs_of cc)" = 7 ]; then pass; else fail "three runs on one checkpoint" "$(epochs_of cc)"; fi
cp "$W/keep/ck" "$W/cc2"
(cd "$W" && ("$NW" --epochs 3 --no-plots --resume cc2 --save cc2 --out d1 >/dev/null 2>&1 &
  sleep 0.02; "$NW" --epochs 1 --no-plots --save cc2 --out d2 >/dev/null 2>&1; wait))
if [ -n "$(epochs_of cc2)" ] && [ -z "$(debris)" ]; then pass; else fail "resume-save and save" "x"; fi
(cd "$W" && for s in 1 2 3 4; do "$NW" --seed $s --n-train 300 --epochs 2 --no-plots --out shared \
  >/dev/null 2>&1 & done && wait)
seed=$(grep -o '"seed": [0-9]*' "$W/shared/training.json" | grep -o '[0-9]*$')
(cd "$W" && "$NW" --seed "$seed" --n-train 300 --epochs 2 --no-plots --out solo >/dev/null 2>&1)
if cmp -s "$W/shared/predictions.csv" "$W/solo/predictions.csv"; then pass; else
  fail "four runs into one --out" "a mix"
fi
sig_case() { # sig_case SIGNAL OUT
  local before
  before=$(snap "$W/$2")
  python3 - "$NW" "$W" "$1" "$2" <<'EOF'
import os, signal, subprocess, sys, time
nw, w, sig, out = sys.argv[1:]
p = subprocess.Popen([nw, "--n-train", "1000", "--epochs", "1000000", "--no-plots", "--out", out],
                     cwd=w, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)
                                         for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)])
time.sleep(1.0)
p.send_signal(getattr(signal, sig))
sys.exit(0 if p.wait() == -getattr(signal, sig) else 1)
EOF
  local rc=$?
  if [ $rc = 0 ] && [ "$(snap "$W/$2")" = "$before" ] && [ -z "$(debris)" ]; then pass; else
    fail "$1 during training into $2" "rc $rc, debris $(debris)"
  fi
  debris_all | xargs -r rm -rf
}
(cd "$W" && "$NW" --epochs 1 --no-plots --out sigout >/dev/null 2>&1)
for sig in SIGINT SIGTERM SIGHUP SIGQUIT; do
  sig_case $sig sigout
  sig_case $sig sig_new/deeper
done
(cd "$W" && exec "$NW" --n-train 1000 --epochs 1000000 --no-plots --out killed >/dev/null 2>&1) &
killed_pid=$!
sleep 1 && kill -9 "$killed_pid"
wait "$killed_pid" 2>/dev/null
left=$(debris_all | wc -l)
(cd "$W" && "$NW" --epochs 1 --no-plots --out killed >/dev/null 2>&1)
if [ "$left" = 1 ] && [ -z "$(debris)" ]; then pass; else
  fail "SIGKILL, then a rerun removes the staging" "left $left, then $(debris)"
fi

# ---- output streams ---------------------------------------------------------------------------------
category "output streams"
if (cd "$W" && "$NW" --epochs 1 --no-plots --out st1 >&- 2>/dev/null) &&
  [ -f "$W/st1/predictions.csv" ]; then pass; else fail "stdout closed" "exit or outputs"; fi
(cd "$W" && "$NW" --epochs 1 --no-plots --out st2 --bogus >/dev/null 2>&-)
if [ $? = 2 ] && [ ! -e "$W/st2" ]; then pass; else fail "stderr closed, bad flag" "x"; fi
(cd "$W" && "$NW" --epochs 1 --no-plots --out st3 --bogus >/dev/null 2>/dev/full)
if [ $? = 2 ]; then pass; else fail "stderr /dev/full, bad flag" "x"; fi
if (cd "$W" && "$NW" --epochs 1 --no-plots --out st4 >/dev/full 2>/dev/null) &&
  [ -f "$W/st4/predictions.csv" ]; then pass; else fail "stdout /dev/full" "exit or outputs"; fi

# ---- the counts ---------------------------------------------------------------------------------------
total_pass=0 total_fail=0 total_skip=0
printf '\n%-26s %6s %6s %7s\n' category passed failed skipped
for c in "${CATS[@]}"; do
  printf '%-26s %6d %6d %7d\n' "$c" "${PASS[$c]}" "${FAIL[$c]}" "${SKIP[$c]}"
  total_pass=$((total_pass + PASS[$c])) total_fail=$((total_fail + FAIL[$c]))
  total_skip=$((total_skip + SKIP[$c]))
done
printf '%-26s %6d %6d %7d\n' total $total_pass $total_fail $total_skip
echo "$((total_pass + total_fail + total_skip)) cases: $total_pass passed, $total_fail failed," \
  "$total_skip skipped"
[ $total_fail = 0 ]
