#!/usr/bin/env bash
# The main job: builds the example and runs the chapter end to end. Arguments go to nadaraya_watson
# and relative paths are taken from where you run this, e.g.
#   bash scripts/chapter.sh --train my.csv --dtype float64 --out results/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/build/nadaraya_watson" ]; then
  echo "building nadaraya_watson (the first time takes a minute or two)..." >&2
fi
QUIET=1 BUILD_TARGET=nadaraya_watson bash "$root/scripts/build.sh"
exec "$root/build/nadaraya_watson" "$@"
