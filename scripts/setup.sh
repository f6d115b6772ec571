#!/usr/bin/env bash
# Installs the Debian packages tapegrad needs, if any are missing. Idempotent and quiet when all is
# there. Usage: bash scripts/setup.sh [extra-package ...]
# When CXX names clang (CC=clang CXX=clang++ bash scripts/test.sh), clang and its OpenMP runtime
# (libomp-dev, which gcc does not need) are installed too.
set -euo pipefail

packages=(g++ cmake make libxtensor-dev libxtensor-blas-dev libopenblas-dev googletest libgtest-dev
          libcli11-dev nlohmann-json3-dev gnuplot-nox graphviz pkg-config "$@")
case "${CXX:-}" in
  *clang*) packages+=(clang libomp-dev) ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq >/dev/null
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
