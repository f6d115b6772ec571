#!/usr/bin/env bash
# The layers of docs/architecture.md, checked: every #include "..." of the library and the programs
# points down (or sideways where the table allows), never up.
#   ops/kernels  <- autograd <- ops (ops/fused) <- models | optim | data | io <- examples
# Usage: bash tests/reliability/test_layers.sh [repository root]. Prints each violation as
# "file:line: includes X (layer A may not include layer B)" and exits 1 when there is one.
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"

layer_of() {  # the layer a path belongs to
  case "$1" in
    ops/kernels/*) echo kernels ;;
    autograd/*) echo autograd ;;
    ops/*) echo ops ;;
    models/*) echo models ;;
    optim/*) echo optim ;;
    data/*) echo data ;;
    io/*) echo io ;;
    examples/*) echo examples ;;
    tapegrad.h) echo umbrella ;;
    *) echo other ;;
  esac
}

allowed() {  # may layer $1 include layer $2?
  case "$1:$2" in
    kernels:kernels) return 0 ;;
    autograd:kernels | autograd:autograd) return 0 ;;
    ops:kernels | ops:autograd | ops:ops) return 0 ;;
    models:kernels | models:autograd | models:ops | models:models) return 0 ;;
    optim:kernels | optim:autograd | optim:optim) return 0 ;;
    data:kernels | data:autograd | data:data) return 0 ;;
    io:kernels | io:autograd | io:optim | io:io) return 0 ;;
    umbrella:examples | umbrella:other) return 1 ;;
    umbrella:*) return 0 ;;
    examples:*) return 0 ;;
  esac
  return 1
}

violations=0
checked=0
while IFS= read -r file; do
  from=$(layer_of "$file")
  [ "$from" = other ] && continue
  while IFS=: read -r line target; do
    to=$(layer_of "$target")
    checked=$((checked + 1))
    if ! allowed "$from" "$to"; then
      echo "$file:$line: includes $target (layer $from may not include layer $to)"
      violations=$((violations + 1))
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" |
           sed -E 's/^([0-9]+):[^"]*"([^"]+)".*/\1:\2/')
done < <(find autograd ops models optim data io examples tapegrad.h \
           \( -name '*.h' -o -name '*.cpp' \) 2>/dev/null | sort)

echo "layers: $checked includes checked, $violations pointing up"
[ "$checked" -gt 0 ] || { echo "layers: no include found: wrong root?" >&2; exit 1; }
[ "$violations" -eq 0 ]
