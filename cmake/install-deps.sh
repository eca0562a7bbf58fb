#!/usr/bin/env bash
# Installs the Debian 12 packages sae's build, examples and tests need, skipping what is present
# (Open MPI for sae::mpi, the programs' --mpi modes and their tests; the rest builds without it).
# --arm64 adds Debian's aarch64 cross compiler and qemu-user, for the ARM build and its tests
# (cmake/toolchains/aarch64-linux-gnu.cmake); --fuzz adds clang and its libFuzzer runtime
# (tests/fuzz/run.sh).
set -euo pipefail
packages=(cmake g++ make libeigen3-dev libomp-dev libboost-test-dev libcxxopts-dev libopenblas-pthread-dev gnuplot-nox
          libopenmpi-dev openmpi-bin)
for arg in "$@"; do
  case "$arg" in
    --arm64) packages+=(g++-aarch64-linux-gnu qemu-user) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "install-deps: unknown option '$arg' (known: --arm64, --fuzz)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all packages present"
fi
